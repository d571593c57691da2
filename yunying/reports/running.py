"""The campaigns running on a date, and where the daily report points for their latest
figures: the review (复盘) page beside the report, and the review's Prefect artifact."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yunying.messaging.campaign import MAX_WITHIN_DAYS, Campaign, find_campaign
from yunying.store.models import OutboxMessage


@dataclass(frozen=True)
class RunningCampaign:
    campaign: str
    last_sent: dt.date
    lines: list[str]  # the review's headline sentences as of the report's date
    page: str  # the review page's file name, in the report folder beside the daily report
    artifact: str  # the key of the review's Prefect artifact

    @staticmethod
    def artifact_key(campaign: str) -> str:
        return f"review-{campaign.replace('_', '-')}"


def running_campaigns(session: Session, campaign_dir: Path, day: dt.date) -> list[Campaign]:
    """Campaign files that planned messages on a date whose measurement window is still open
    on `day` (sent on `day` included), by name. Outbox rows of no campaign file (reward
    notifications, deleted files) have no review to link."""
    earliest = day - dt.timedelta(days=MAX_WITHIN_DAYS)
    last_planned = session.execute(
        select(OutboxMessage.campaign, func.max(OutboxMessage.business_date))
        .where(OutboxMessage.business_date.between(earliest, day))
        .group_by(OutboxMessage.campaign)
        .order_by(OutboxMessage.campaign)
    ).all()
    running = []
    for name, last in last_planned:
        if not (campaign_dir / f"{name}.toml").is_file():
            continue
        chosen = find_campaign(campaign_dir, name)
        if last + dt.timedelta(days=chosen.objective.within_days) >= day:
            running.append(chosen)
    return running
