"""`yunying segments show NAME | list | sizes`: segment files against the store."""

from __future__ import annotations

import datetime as dt

from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.lifecycle.business_dates import refuse_future
from yunying.lifecycle.states import latest_date
from yunying.segments.definition import SegmentLibrary
from yunying.segments.evaluate import record_sizes, show
from yunying.store.engine import create_store_engine, session_scope


def list_segments(settings: Settings) -> tuple[str, list[str]]:
    """Every good segment file's line, and one problem per bad file (its own error): a bad
    file hides none of the others."""
    library = SegmentLibrary(settings.segment_dir)
    lines, problems = [], []
    for each in library.names():
        try:
            segment = library.get(each)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        lines.append(f"{each:32} {segment.description}")
    if not lines and not problems:
        return f"no segment files in {settings.segment_dir}", []
    return "\n".join(lines), problems


def segments_command(
    settings: Settings, action: str, name: str | None, business_date: dt.date | None
) -> str:
    if business_date is not None:  # before any advice to compute that date
        refuse_future(business_date, settings.zone, "--date")
    library = SegmentLibrary(settings.segment_dir)
    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            day = business_date or latest_date(session)
            if day is None:
                raise ConfigError("no lifecycle run yet: pass --date or run the nightly first")
            if action == "show":
                if not name:
                    raise ConfigError("segments show needs a segment name: yunying segments list")
                return show(session, library, name, day, settings.zone).text()
            names = library.names()
            sizes = record_sizes(session, library, names, day, settings.zone)
            return "\n".join(f"{n:32} {sizes[n]}" for n in names)
    finally:
        engine.dispose()
