"""The daily report email (日报) for a business date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.alerts import ALERTS
from flows.common import default_business_date, run_name
from tasks.notify import tell_report
from tasks.report import daily_report
from tasks.secrets import load_settings
from yunying.config import Settings


@flow(
    name="daily-report",
    flow_run_name=lambda: run_name("daily-report"),
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def report(business_date: dt.date | None = None, force: bool = False) -> dict[str, Any]:
    settings = load_settings()
    return report_day(settings, business_date or default_business_date(settings), force)


def report_day(settings: Settings, day: dt.date, force: bool = False) -> dict[str, Any]:
    """The day's report in the current flow run: the report flow's or the nightly's."""
    result = daily_report(settings, day, force)
    if result["sent"]:  # a report already sent was announced then
        tell_report(settings, day.isoformat(), result["kpis"])
    return result


if __name__ == "__main__":
    report()
