"""Count every segment file for a business date and show how each grows or shrinks."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.alerts import ALERTS
from flows.common import default_business_date, run_name
from tasks.secrets import load_settings
from tasks.segments import segment_sizes


@flow(
    name="segments",
    flow_run_name=lambda: run_name("segments"),
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def segments(business_date: dt.date | None = None) -> dict[str, int]:
    """`business_date` defaults to yesterday, as the scheduled deployment runs it."""
    settings = load_settings()
    return segment_sizes(settings, business_date or default_business_date(settings))


if __name__ == "__main__":
    segments()
