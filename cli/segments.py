"""`yunying segments show NAME | list | sizes`: segment files against the store."""

from __future__ import annotations

import datetime as dt

from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.lifecycle.business_dates import refuse_future
from yunying.lifecycle.states import latest_date
from yunying.reports.kpis import money_for
from yunying.segments.definition import Segment, SegmentLibrary
from yunying.segments.evaluate import record_sizes, show
from yunying.store.engine import create_store_engine, session_scope


def read_segments(library: SegmentLibrary) -> tuple[list[Segment], list[str]]:
    """Every good segment, and one problem per bad file (its own error): a bad file hides
    none of the others."""
    good, problems = [], []
    for each in library.names():
        try:
            good.append(library.get(each))
        except ConfigError as exc:
            problems.append(str(exc))
    return good, problems


def list_segments(settings: Settings) -> tuple[str, list[str]]:
    """Every good segment file's line, and the problems of the bad ones."""
    good, problems = read_segments(SegmentLibrary(settings.segment_dir))
    if not good and not problems:
        return f"no segment files in {settings.segment_dir}", []
    return "\n".join(f"{segment.name:32} {segment.description}" for segment in good), problems


def segments_command(
    settings: Settings, action: str, name: str | None, business_date: dt.date | None
) -> tuple[str, list[str]]:
    """The text to print, and the problems of bad segment files `sizes` left out."""
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
                money = money_for(settings)
                return show(session, library, name, day, settings.zone, money).text(), []
            good, problems = read_segments(library)
            names = [segment.name for segment in good]
            sizes = record_sizes(session, library, names, day, settings.zone, money_for(settings))
            return "\n".join(f"{n:32} {sizes[n]}" for n in names), problems
    finally:
        engine.dispose()
