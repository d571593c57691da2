"""Compute the day's KPIs, archive the report, email it once, and show it in the Prefect UI."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.lifecycle.business_dates import refuse_unfinished
from yunying.reports.artifact import report_markdown
from yunying.reports.daily_email import publish_report, words_for
from yunying.reports.kpis import compute_kpis, money_for
from yunying.reports.review_page import markdown as review_markdown
from yunying.reports.review_run import build_review
from yunying.reports.running import RunningCampaign, running_campaigns
from yunying.store.days_zone import check_days_zone
from yunying.store.engine import session_scope

# Said where people read it: the CLI's flag, and the flow parameter for a deployment run.
ALREADY_SENT_HINT = "send it again with `yunying run report --force` (flow parameter force=True)"


@task(name="daily-report", task_run_name="daily-report-{business_date}", **RETRY_TRANSIENT)
def daily_report(settings: Settings, business_date: dt.date, force: bool = False) -> dict[str, Any]:
    refuse_unfinished(business_date, settings.zone, "business_date")
    engine = engine_for(settings.store_url)
    with session_scope(engine) as session:
        check_days_zone(session, settings.zone.key)
        kpis = compute_kpis(session, business_date, settings.zone, money_for(settings))
        running = running_campaigns(session, settings.campaign_dir, business_date)
    linked = [review_link(settings, name, business_date) for name in (c.name for c in running)]
    # Its own transaction, which starts by claiming the date's send (see publish_report).
    with session_scope(engine) as session:
        files = publish_report(session, settings, kpis, force=force, running=linked)
    logger = get_run_logger()
    if files.sent:
        logger.info("report for %s sent: %s", business_date, files.subject)
    else:
        logger.info("report for %s was already sent; %s", business_date, ALREADY_SENT_HINT)
    markdown = report_markdown(kpis, words_for(settings, kpis), str(files.html_path), linked)
    create_markdown_artifact(key="daily-report", markdown=markdown)
    return {
        "html": str(files.html_path),
        "eml": str(files.eml_path or ""),
        "sent": files.sent,
        "kpis": kpis.as_json(),
    }


def review_link(settings: Settings, campaign: str, business_date: dt.date) -> RunningCampaign:
    """The campaign's review as of the report's date: its page beside the report, and its
    artifact refreshed, so the report's link shows the latest figures."""
    built = build_review(settings, engine_for(settings.store_url), campaign, business_date)
    key = RunningCampaign.artifact_key(campaign)
    create_markdown_artifact(key=key, markdown=review_markdown(built.page))
    last = built.review.last_date or business_date
    return RunningCampaign(campaign, last, built.page.lines, built.path.name, key)
