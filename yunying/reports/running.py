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
    on `day` (sent on `day` included), by name."""
    return [c for c, last in _last_planned(session, campaign_dir, day) if _closes(c, last) >= day]


def windows_closing(session: Session, campaign_dir: Path, day: dt.date) -> list[Campaign]:
    """Campaign files whose last send's measurement window closed on `day`: due a review."""
    return [c for c, last in _last_planned(session, campaign_dir, day) if _closes(c, last) == day]


def _closes(campaign: Campaign, last_planned: dt.date) -> dt.date:
    return last_planned + dt.timedelta(days=campaign.objective.within_days)


def _last_planned(
    session: Session, campaign_dir: Path, day: dt.date
) -> list[tuple[Campaign, dt.date]]:
    """Each campaign file's last planned date up to `day`, within the longest window. Outbox
    rows of no campaign file (reward notifications, deleted files) have no review."""
    earliest = day - dt.timedelta(days=MAX_WITHIN_DAYS)
    last_planned = session.execute(
        select(OutboxMessage.campaign, func.max(OutboxMessage.business_date))
        .where(OutboxMessage.business_date.between(earliest, day))
        .group_by(OutboxMessage.campaign)
        .order_by(OutboxMessage.campaign)
    ).all()
    return [
        (find_campaign(campaign_dir, name), last)
        for name, last in last_planned
        if (campaign_dir / f"{name}.toml").is_file()
    ]
