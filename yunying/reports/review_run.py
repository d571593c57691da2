"""One review from a campaign name: load the file, compute, write the page (CLI and task)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, distinct, func, select
from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.messaging.campaign import find_campaign
from yunying.reports.kpis import money_for
from yunying.reports.review import Review, compute_review
from yunying.reports.review_page import Page, page, write_page
from yunying.reports.words import Words
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage


def refuse_a_date_without_rows(session: Session, campaign: str, day: dt.date) -> None:
    """ConfigError naming the dates the campaign did run, when it has no outbox row on `day`:
    a review of that date alone would be empty and read as if the campaign never ran."""
    dates = session.execute(
        select(
            func.min(OutboxMessage.business_date),
            func.max(OutboxMessage.business_date),
            func.count(distinct(OutboxMessage.business_date)),
            func.count().filter(OutboxMessage.business_date == day),
        ).where(OutboxMessage.campaign == campaign)
    ).one()
    first, last, runs, on_day = dates
    if on_day:
        return
    ran = f"it ran on {runs} date(s), {first} to {last}" if runs else "it has not run yet"
    raise ConfigError(f"--date {day}: campaign {campaign} has no message on that date; {ran}")


@dataclass(frozen=True)
class BuiltReview:
    review: Review
    page: Page
    path: Path
    locale: str


def build_review(
    settings: Settings,
    engine: Engine,
    campaign: str,
    as_of: dt.date,
    only_date: dt.date | None = None,
) -> BuiltReview:
    chosen = find_campaign(settings.campaign_dir, campaign)
    with session_scope(engine) as session:
        review = compute_review(
            session, chosen, as_of, settings.zone, money_for(settings), only_date
        )
    view = page(review, Words(settings.default_locale, settings.currency))
    path = write_page(settings, review, view, settings.default_locale)
    return BuiltReview(review, view, path, settings.default_locale)
