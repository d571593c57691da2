"""The outbox: write every message intent first, claim atomically, record the outcome.

Rows are keyed `campaign:business_date:user_id` under a unique constraint, so planning the
same campaign run twice adds nothing. Statuses:

    queued -> sending -> sent | failed | bounced | deferred (quiet hours, retried later)
    suppressed not eligible: opted out, unreachable, suppressed, or frequency-capped
    holdout    eligible, but kept out on purpose to measure uplift ("would have been sent")

A row left in `sending` by a crash is claimed again after the lease; its key is the
provider's idempotency key, and channels reconcile before resending (see channels.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Date,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from yunying.errors import PermanentError
from yunying.lifecycle.holdout import holdout_condition
from yunying.lifecycle.states import latest_date
from yunying.messaging.campaign import Campaign
from yunying.messaging.variants import variant_sql
from yunying.store.engine import is_postgres, upsert_insert, utcnow
from yunying.store.models import LifecycleState, OutboxMessage, Suppression, User

LEASE = dt.timedelta(minutes=10)
PLAN_LOCK = 0x59554E59  # the PostgreSQL advisory lock under which a night's plans run
MAX_ATTEMPTS = 5
STATUSES = ("queued", "sending", "sent", "failed", "bounced", "deferred", "holdout", "suppressed")


@dataclass(frozen=True)
class Claimed:
    id: int
    key: str
    user_id: str
    channel: str
    attempts: int
    variant: str | None = None


@dataclass(frozen=True)
class Outcome:
    id: int
    status: str  # sent | failed | bounced | deferred | retry
    reason: str | None = None
    provider_ref: str | None = None
    not_before: dt.datetime | None = None


def message_key(campaign: str, business_date: dt.date, user_id: str) -> str:
    return f"{campaign}:{business_date.isoformat()}:{user_id}"


def _reachable(channel: str) -> object:
    not_suppressed = ~exists().where(
        Suppression.user_id == User.user_id, Suppression.channel.in_((channel, "any"))
    )
    if channel == "email":
        return and_(User.email.is_not(None), User.email_opt_in, not_suppressed)
    if channel == "sms":
        return and_(User.phone.is_not(None), User.sms_opt_in, not_suppressed)
    if channel == "push":
        return and_(User.push_token.is_not(None), User.push_opt_in, not_suppressed)
    return not_suppressed


def plan(
    session: Session,
    campaign: Campaign,
    business_date: dt.date,
    only_users: list[str] | None = None,
    audience: Select[tuple[str]] | None = None,
) -> dict[str, int]:
    """Write one outbox row per targeted user (set-based); returns the run's counts.

    Targets are the campaign's lifecycle segment (within `audience`, a segment's user ids,
    when given), or exactly `only_users` (e.g. winners)."""
    computed = latest_date(session)
    if only_users is None and computed != business_date:
        raise PermanentError(
            f"lifecycle states are for {computed}, not {business_date}: "
            "run the lifecycle step for that date first"
        )
    whens: list[tuple[Any, Any]] = [(_reachable(name), literal(name)) for name in campaign.channels]
    channel = case(
        *whens,
        else_=null(),
    )
    cap_start = dt.datetime.combine(business_date, dt.time()) - dt.timedelta(
        days=campaign.frequency_cap_days
    )
    recently_contacted = exists().where(
        OutboxMessage.user_id == User.user_id,
        OutboxMessage.status == "sent",
        OutboxMessage.sent_at >= cap_start,
        literal(campaign.frequency_cap_days > 0),  # 0 turns the cap off
    )
    # At most one marketing message per user a night: a user another campaign has planned
    # (to send or to hold out, which keeps its holdout clean) is not eligible here.
    capped = campaign.cross_campaign_cap and only_users is None
    other = aliased(OutboxMessage)
    taken_tonight = exists().where(
        other.user_id == User.user_id,
        other.business_date == business_date,
        other.campaign != campaign.name,
        other.status != "suppressed",
        ~other.campaign.like("reward-won%"),
        literal(capped),
    )
    if capped and is_postgres(session):  # planners of one night take turns: no double claim
        session.execute(select(func.pg_advisory_xact_lock(PLAN_LOCK)))
    held_out = holdout_condition(User.holdout_bucket, campaign.name, campaign.holdout_percent)
    # The holdout is drawn among users who would have been sent, so that held-out and
    # assigned-to-send compare like with like (intent to treat; see reports/effects.py).
    status = case(
        (channel.is_(None), "suppressed"),
        (recently_contacted, "suppressed"),
        (taken_tonight, "suppressed"),
        (held_out, "holdout"),
        else_="queued",
    )
    reason = case(
        (channel.is_(None), "opted out or unreachable on every channel"),
        (recently_contacted, f"contacted within {campaign.frequency_cap_days} days"),
        (taken_tonight, "another campaign has this user tonight"),
        (held_out, "holdout group"),
        else_=null(),
    )
    prefix = f"{campaign.name}:{business_date.isoformat()}:"
    candidates = select(
        literal(prefix, String) + User.user_id,
        literal(campaign.name, String),
        literal(business_date, Date),
        User.user_id,
        channel,
        status,
        reason,
        literal(0),
        literal(utcnow()),
        variant_sql(User.holdout_bucket, campaign.name, campaign.variants),
    ).order_by(User.user_id)
    if only_users is None:
        candidates = candidates.join(LifecycleState, LifecycleState.user_id == User.user_id).where(
            LifecycleState.state.in_(campaign.segment)
        )
        if audience is not None:
            candidates = candidates.where(User.user_id.in_(audience))
    else:
        candidates = candidates.where(User.user_id.in_(only_users))
    if campaign.daily_max is not None:
        candidates = candidates.limit(campaign.daily_max)
    columns = [
        "key",
        "campaign",
        "business_date",
        "user_id",
        "channel",
        "status",
        "reason",
        "attempts",
        "created_at",
        "variant",
    ]
    statement = upsert_insert(session, OutboxMessage).from_select(columns, candidates)
    session.execute(statement.on_conflict_do_nothing())
    return counts(session, campaign.name, business_date)


def claim(
    session: Session,
    campaign: str,
    business_date: dt.date,
    worker: str,
    limit: int,
    now: dt.datetime | None = None,
) -> list[Claimed]:
    """Atomically take up to `limit` sendable rows for this worker."""
    now = now or utcnow()
    sendable = or_(
        and_(
            OutboxMessage.status.in_(("queued", "deferred")),
            or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now),
        ),
        and_(OutboxMessage.status == "sending", OutboxMessage.claimed_at < now - LEASE),
    )
    ids = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.campaign == campaign,
            OutboxMessage.business_date == business_date,
            sendable,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if is_postgres(session):
        ids = ids.with_for_update(skip_locked=True)
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids.scalar_subquery()))
        .values(
            status="sending",
            claimed_by=worker,
            claimed_at=now,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(
            OutboxMessage.id,
            OutboxMessage.key,
            OutboxMessage.user_id,
            OutboxMessage.channel,
            OutboxMessage.attempts,
            OutboxMessage.variant,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted(
        (Claimed(*row) for row in session.execute(statement)), key=lambda claimed: claimed.id
    )


def record(session: Session, outcomes: Iterable[Outcome]) -> None:
    """Store each message's outcome in one executemany per status."""
    now = utcnow()
    rows = []
    for outcome in outcomes:
        status = outcome.status
        if status == "retry":
            status = "queued"
        rows.append(
            {
                "b_id": outcome.id,
                "status": status,
                "reason": outcome.reason,
                "provider_ref": outcome.provider_ref,
                "not_before": outcome.not_before,
                "sent_at": now if status == "sent" else None,
            }
        )
    if not rows:
        return
    table = cast(Table, OutboxMessage.__table__)
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            status=bindparam("status"),
            reason=bindparam("reason"),
            provider_ref=bindparam("provider_ref"),
            not_before=bindparam("not_before"),
            sent_at=bindparam("sent_at"),
            claimed_by=None,
        ),
        rows,
    )


def requeue_failed(session: Session, campaign: str, business_date: dt.date) -> int:
    """Put failed rows back in the queue: "resend only the failed ones"."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.campaign == campaign,
            OutboxMessage.business_date == business_date,
            OutboxMessage.status == "failed",
        )
        .values(status="queued", attempts=0, reason=None, not_before=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def counts(session: Session, campaign: str | None, business_date: dt.date) -> dict[str, int]:
    query = select(OutboxMessage.status, func.count()).where(
        OutboxMessage.business_date == business_date
    )
    if campaign is not None:
        query = query.where(OutboxMessage.campaign == campaign)
    result = dict.fromkeys(STATUSES, 0)
    for status, count in session.execute(query.group_by(OutboxMessage.status)):
        result[status] = count
    return result


def counts_by_channel(
    session: Session, campaign: str, business_date: dt.date
) -> list[dict[str, object]]:
    query = (
        select(OutboxMessage.channel, OutboxMessage.status, func.count())
        .where(OutboxMessage.campaign == campaign, OutboxMessage.business_date == business_date)
        .group_by(OutboxMessage.channel, OutboxMessage.status)
    )
    table: dict[str, dict[str, object]] = {}
    for channel, status, count in session.execute(query):
        row = table.setdefault(
            channel or "-", {"channel": channel or "-", **dict.fromkeys(STATUSES, 0)}
        )
        row[status] = count
    return sorted(table.values(), key=lambda row: str(row["channel"]))


def next_retry_at(session: Session, campaign: str, business_date: dt.date) -> dt.datetime | None:
    """When the earliest requeued (not deferred) message of this run becomes sendable."""
    return session.scalar(
        select(func.min(OutboxMessage.not_before)).where(
            OutboxMessage.campaign == campaign,
            OutboxMessage.business_date == business_date,
            OutboxMessage.status == "queued",
        )
    )
