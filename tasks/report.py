"""Compute the day's KPIs, archive the report, email it once, and show it in the Prefect UI."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.reports.daily_email import publish_report
from yunying.reports.kpis import compute_kpis
from yunying.store.engine import session_scope


@task(name="daily-report", task_run_name="daily-report-{business_date}", **RETRY_TRANSIENT)
def daily_report(settings: Settings, business_date: dt.date, force: bool = False) -> dict[str, Any]:
    with session_scope(engine_for(settings.store_url)) as session:
        kpis = compute_kpis(session, business_date, settings.zone)
        files = publish_report(session, settings, kpis, force=force)
    logger = get_run_logger()
    if files.sent:
        logger.info("report for %s sent: %s", business_date, files.subject)
    else:
        logger.info("report for %s was already sent; pass force=True to send again", business_date)
    lines = [
        f"# Daily report {business_date}",
        "",
        "| KPI | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in _headline(kpis.as_json()).items()),
        "",
        f"Archived at `{files.html_path}`.",
    ]
    create_markdown_artifact(key="daily-report", markdown="\n".join(lines))
    return {
        "html": str(files.html_path),
        "eml": str(files.eml_path or ""),
        "sent": files.sent,
        "kpis": kpis.as_json(),
    }


def _headline(data: dict[str, Any]) -> dict[str, Any]:
    names = [
        "dau",
        "wau",
        "mau",
        "stickiness",
        "new_users",
        "d1_retention",
        "d7_retention",
        "orders",
        "revenue",
        "paying_users",
        "arpu",
        "arppu",
        "transitions",
    ]
    return {name: data[name] for name in names}
