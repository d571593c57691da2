"""The campaign review (复盘): compute it, archive the page, email it, show it in Prefect."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.reports.daily_email import deliver
from yunying.reports.review_page import email, markdown
from yunying.reports.review_run import build_review
from yunying.reports.running import RunningCampaign, windows_closing
from yunying.store.engine import session_scope


@task(name="campaign-review", task_run_name="review-{campaign}-{as_of}", **RETRY_TRANSIENT)
def campaign_review(
    settings: Settings,
    campaign: str,
    as_of: dt.date,
    only_date: dt.date | None = None,
    send_email: bool = True,
) -> dict[str, Any]:
    built = build_review(settings, engine_for(settings.store_url), campaign, as_of, only_date)
    eml = None
    if send_email:
        eml = deliver(
            settings, email(settings, built.page, built.locale), f"review-{campaign}-{as_of}"
        )
    create_markdown_artifact(
        key=RunningCampaign.artifact_key(campaign), markdown=markdown(built.page)
    )
    get_run_logger().info("review of %s as of %s: %s", campaign, as_of, built.path)
    return {"html": str(built.path), "eml": str(eml or ""), "lines": built.page.lines}


@task(name="closing-campaigns", **RETRY_TRANSIENT)
def closing_campaigns(settings: Settings, as_of: dt.date) -> list[str]:
    with session_scope(engine_for(settings.store_url)) as session:
        return [c.name for c in windows_closing(session, settings.campaign_dir, as_of)]
