"""Send one batch of a campaign run: claim, render, honour quiet hours, deliver, record."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from yunying.config import Settings
from yunying.errors import TemplateError
from yunying.messaging.campaign import Campaign, QuietHours
from yunying.messaging.channels import Channel, channels_for
from yunying.messaging.outbox import MAX_ATTEMPTS, Outcome, claim, record
from yunying.messaging.providers import OutgoingMessage
from yunying.messaging.render import render
from yunying.messaging.unsubscribe import make_token, suppress, unsubscribe_key
from yunying.store.engine import session_scope, utcnow
from yunying.store.models import User, UserFacts


@dataclass
class BatchResult:
    claimed: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # reason -> count


def send_batch(
    engine: Engine,
    settings: Settings,
    campaign: Campaign,
    business_date: dt.date,
    worker: str,
    channels: dict[str, Channel],
    limit: int,
    now: dt.datetime | None = None,
    pace: Callable[[str, int], None] | None = None,
) -> BatchResult:
    """`pace(channel, n)` blocks until n more messages may go out on that channel (a rate
    limit shared by all workers); it is called per chunk of at most the channel's rate."""
    now = now or utcnow()
    with session_scope(engine) as session:
        claimed = claim(session, campaign.name, business_date, worker, limit, now)
    result = BatchResult(claimed=len(claimed))
    if not claimed:
        return result
    with session_scope(engine) as session:
        # Plain rows, not ORM objects: building a thousand User objects costs more than
        # rendering their messages.
        rows = session.execute(
            select(*RECIPIENT_COLUMNS, UserFacts.last_active_day)
            .join(UserFacts, UserFacts.user_id == User.user_id, isouter=True)
            .where(User.user_id.in_([c.user_id for c in claimed]))
        ).all()
    users = {row.user_id: (cast(Recipient, row), row.last_active_day) for row in rows}
    key = unsubscribe_key(settings)
    outcomes: list[Outcome] = []
    by_channel: dict[str, list[OutgoingMessage]] = defaultdict(list)
    for item in claimed:
        user, last_active = users[item.user_id]
        deferred_until = _quiet_until(campaign.quiet_hours, user.timezone, now)
        if deferred_until is not None:
            outcomes.append(Outcome(item.id, "deferred", "quiet hours", not_before=deferred_until))
            continue
        context = message_context(settings, user, last_active, business_date, item.channel, key)
        context["campaign"] = campaign.name
        try:
            rendered = render(
                campaign.template_for(item.variant), item.channel, user.locale, context
            )
        except TemplateError as exc:
            outcomes.append(Outcome(item.id, "failed", str(exc)))
            continue
        by_channel[item.channel].append(
            OutgoingMessage(
                item, address_of(user, item.channel), rendered, context["unsubscribe_url"]
            )
        )
    for channel, messages in by_channel.items():
        chunk = (
            settings.providers.rate_limits.get(channel, len(messages)) if pace else len(messages)
        )
        for start in range(0, len(messages), chunk):
            part = messages[start : start + chunk]
            if pace is not None:
                pace(channel, len(part))
            outcomes += channels[channel].send(part)
    attempts = {c.id: c.attempts for c in claimed}
    outcomes = [_retry_later_or_give_up(o, attempts[o.id], now) for o in outcomes]
    with session_scope(engine) as session:
        record(session, outcomes)
        by_id = {c.id: c for c in claimed}
        for outcome in outcomes:
            if outcome.status == "bounced":
                suppress(
                    session, by_id[outcome.id].user_id, by_id[outcome.id].channel, "hard bounce"
                )
    for outcome in outcomes:
        result.by_status[outcome.status] += 1
        if outcome.status in ("failed", "retry", "bounced") and outcome.reason:
            result.failures[outcome.reason[:120]] += 1
    return result


def send_all(
    engine: Engine,
    settings: Settings,
    campaign: Campaign,
    business_date: dt.date,
    worker: str,
    limit: int,
    now: dt.datetime | None = None,
) -> Counter[str]:
    """Send batches until none is due; returns the messages per outcome."""
    channels = channels_for(settings)
    totals: Counter[str] = Counter()
    while True:
        result = send_batch(engine, settings, campaign, business_date, worker, channels, limit, now)
        if not result.claimed:
            return totals
        totals.update(result.by_status)


def _retry_later_or_give_up(outcome: Outcome, attempts: int, now: dt.datetime) -> Outcome:
    if outcome.status != "retry":
        return outcome
    if attempts >= MAX_ATTEMPTS:
        return Outcome(outcome.id, "failed", f"gave up after {attempts} attempts: {outcome.reason}")
    backoff = dt.timedelta(seconds=2**attempts)
    return Outcome(outcome.id, "retry", outcome.reason, not_before=now + backoff)


class Recipient(Protocol):
    """What a message needs of its user: a `User` or a row of `RECIPIENT_COLUMNS`."""

    user_id: str
    email: str | None
    phone: str | None
    push_token: str | None
    locale: str
    timezone: str
    signup_day: dt.date


RECIPIENT_COLUMNS = (
    User.user_id,
    User.email,
    User.phone,
    User.push_token,
    User.locale,
    User.timezone,
    User.signup_day,
)


def message_context(
    settings: Settings,
    user: Recipient,
    last_active: dt.date | None,
    business_date: dt.date,
    channel: str,
    key: bytes,
) -> dict[str, Any]:
    token = make_token(key, user.user_id, channel)
    return {
        "user_id": user.user_id,
        "locale": user.locale,
        "days_inactive": (business_date - (last_active or user.signup_day)).days,
        "app_url": settings.public_url,
        "unsubscribe_url": f"{settings.public_url}/unsubscribe?token={token}",
    }


def address_of(user: Recipient, channel: str) -> str:
    if channel == "email":
        return user.email or ""
    if channel == "sms":
        return user.phone or ""
    if channel == "push":
        return user.push_token or ""
    return user.user_id


def _quiet_until(quiet: QuietHours | None, timezone: str, now: dt.datetime) -> dt.datetime | None:
    """When the user's local time is in quiet hours, the UTC time the window ends."""
    if quiet is None:
        return None
    zone = ZoneInfo(timezone)
    local = now.replace(tzinfo=dt.UTC).astimezone(zone)
    if not quiet.contains(local.time()):
        return None
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if end <= local:
        end += dt.timedelta(days=1)
    end = dt.datetime.combine(end.date(), quiet.end, tzinfo=zone)  # wall clock, DST-safe
    return end.astimezone(dt.UTC).replace(tzinfo=None)
