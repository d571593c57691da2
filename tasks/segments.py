"""Count every segment file for a business date, keep the sizes, and show their trend."""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.reports.kpis import money_for
from yunying.segments.definition import SegmentLibrary
from yunying.segments.evaluate import record_sizes, size_history
from yunying.store.engine import session_scope

TREND_DAYS = 7


@task(name="segment-sizes", task_run_name="segment-sizes-{business_date}", **RETRY_TRANSIENT)
def segment_sizes(settings: Settings, business_date: dt.date) -> dict[str, int]:
    """One statement per segment file (all files are validated first: a bad one stops it)."""
    library = SegmentLibrary(settings.segment_dir)
    names = library.names()
    for name in names:
        library.check(library.get(name))
    with session_scope(engine_for(settings.store_url)) as session:
        sizes = record_sizes(
            session, library, names, business_date, settings.zone, money_for(settings)
        )
    with session_scope(engine_for(settings.store_url)) as session:
        history = size_history(session, names, business_date, TREND_DAYS)
    get_run_logger().info("users per segment on %s: %s", business_date, sizes)
    days = [business_date - dt.timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]
    create_table_artifact(
        key="segment-sizes",
        table=[
            {
                "segment": name,
                **{day.isoformat(): history[name].get(day, "") for day in days},
                "change": _change(history[name], business_date),
            }
            for name in names
        ],
        description=f"Users per segment over the {TREND_DAYS} days to {business_date}",
    )
    return sizes


def _change(history: dict[dt.date, int], day: dt.date) -> str:
    before = history.get(day - dt.timedelta(days=1))
    if before is None or day not in history:
        return ""
    return f"{history[day] - before:+d}"
