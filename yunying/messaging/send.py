"""Send one batch of a campaign run: claim, render, honour quiet hours, deliver, record."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from yunying.config import Settings
from yunying.errors import TemplateError
from yunying.masking import mask_text
from yunying.messaging import unsubscribe as links
from yunying.messaging.campaign import Campaign, QuietHours
from yunying.messaging.channels import Channel, HttpChannel, SmtpChannel
from yunying.messaging.outbox import (
    LEASE,
    MAX_ATTEMPTS,
    Claimed,
    Outcome,
    claim,
    expire_deferred,
    hand_over,
    record,
    renew,
    withdraw_unwanted,
)
from yunying.messaging.providers import OutgoingMessage
from yunying.messaging.render import render
from yunying.messaging.sending import campaign_channels
from yunying.messaging.unsubscribe import make_token, suppress, unsubscribe_key
from yunying.messaging.wechat import WeChatChannel
from yunying.store.engine import session_scope, utcnow
from yunying.store.models import ActiveDay, User


@dataclass
class BatchResult:
    claimed: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # reason -> count
    refused: int = 0  # outcomes not recorded: this worker no longer held the claim
    expired: int = 0  # deferred rows past the campaign's valid_hours
    withdrawn: int = 0  # of `claimed`, suppressed: the user unsubscribed since the plan


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
    lease: dt.timedelta = LEASE,
) -> BatchResult:
    """`pace(channel, n)` blocks until n more messages may go out on that channel (a rate
    limit shared by all workers); it is called per chunk of at most the channel's rate.

    Outcomes are recorded as they come (HTTP providers: in groups of at most the send
    concurrency; SMTP: every `SmtpChannel.RECORD_EVERY` messages; other channels: per
    chunk), and the batch's lease is renewed while it works, so a crash leaves at most the
    messages truly in flight unrecorded."""
    started, start = now or utcnow(), time.monotonic()

    def clock() -> dt.datetime:  # `now` moves on with real time, also when a test sets it
        return started + dt.timedelta(seconds=time.monotonic() - start)

    blind = blind_channels(channels)
    result = BatchResult()
    with session_scope(engine) as session:
        result.expired = expire_deferred(
            session, campaign.name, dt.timedelta(hours=campaign.valid_hours), started
        )
        claimed = claim(session, campaign.name, business_date, worker, limit, started, lease, blind)
        result.claimed = len(claimed)
        claimed, result.withdrawn = withdraw_unwanted(session, claimed, campaign)
    if not claimed:
        return result
    with _Heartbeat(engine, [c.id for c in claimed], worker, clock, lease):
        _send_claimed(
            engine, settings, campaign, worker, channels, claimed, clock, pace, lease, result
        )
    return result


def _send_claimed(
    engine: Engine,
    settings: Settings,
    campaign: Campaign,
    worker: str,
    channels: dict[str, Channel],
    claimed: list[Claimed],
    clock: Callable[[], dt.datetime],
    pace: Callable[[str, int], None] | None,
    lease: dt.timedelta,
    result: BatchResult,
) -> None:
    now = clock()
    with session_scope(engine) as session:
        # Plain rows, not ORM objects: building a thousand User objects costs more than
        # rendering their messages.
        as_of = max(c.business_date or now.date() for c in claimed)
        rows = session.execute(
            select(*RECIPIENT_COLUMNS, last_active_by(as_of)).where(
                User.user_id.in_([c.user_id for c in claimed])
            )
        ).all()
    users = {row.user_id: (cast(Recipient, row), row.last_active_day) for row in rows}
    key = unsubscribe_key(settings)
    recorder = _Recorder(engine, worker, claimed, clock, lease, result)
    unsent: list[Outcome] = []
    by_channel: dict[str, list[OutgoingMessage]] = defaultdict(list)
    for item in claimed:
        user, last_active = users[item.user_id]
        deferred_until = quiet_until(campaign.quiet_hours, user.timezone, now)
        if deferred_until is not None:
            unsent.append(Outcome(item.id, "deferred", "quiet hours", not_before=deferred_until))
            continue
        day = item.business_date or now.date()
        context = message_context(settings, user, last_active, day, item.channel, key)
        context["campaign"] = campaign.name
        template = campaign.template_for(item.variant)
        context.update(
            links.recipient_links(
                settings.public_url, key, item.user_id, item.channel, campaign.topic
            )
        )
        try:
            rendered = render(template, item.channel, user.locale, context, settings.template_dir)
        except TemplateError as exc:
            unsent.append(Outcome(item.id, "failed", str(exc)))
            continue
        if campaign.track_clicks:
            rendered = links.track_rendered(rendered, key, settings.public_url, item.id)
        by_channel[item.channel].append(
            OutgoingMessage(
                item,
                address_of(user, item.channel),
                rendered,
                context["unsubscribe_url"],
                {**context, "template": template},
            )
        )
    recorder(unsent)
    blind = blind_channels(channels)

    def handing(ids: list[int]) -> None:
        with session_scope(engine) as session:
            hand_over(session, ids, worker, clock())

    for channel, messages in by_channel.items():
        chunk = (
            settings.providers.rate_limits.get(channel, len(messages)) if pace else len(messages)
        )
        sender = channels[channel]
        for start in range(0, len(messages), chunk):
            part = messages[start : start + chunk]
            if pace is not None:
                pace(channel, len(part))
            if isinstance(sender, SmtpChannel):
                recorder(sender.send(part, on_outcomes=recorder, on_handing=handing))
                continue
            if channel in blind:  # WeChat: all of the part may be in flight at once
                handing([m.claimed.id for m in part])
            if isinstance(sender, HttpChannel):
                sender.send(part, on_outcomes=recorder)
            else:
                recorder(sender.send(part))


def blind_channels(channels: dict[str, Channel]) -> frozenset[str]:
    """Channels whose provider neither deduplicates on the key nor can be asked what it
    sent: SMTP and WeChat. A message a crash left in flight there is `unknown`, never resent."""
    return frozenset(
        name for name, sender in channels.items() if isinstance(sender, SmtpChannel | WeChatChannel)
    )


class _Recorder:
    """Records a group of outcomes in one transaction; called as outcomes come."""

    def __init__(
        self,
        engine: Engine,
        worker: str,
        claimed: list[Claimed],
        clock: Callable[[], dt.datetime],
        lease: dt.timedelta,
        result: BatchResult,
    ) -> None:
        self.engine, self.worker, self.clock, self.lease = engine, worker, clock, lease
        self.by_id = {c.id: c for c in claimed}
        self.result = result
        self.lock = threading.Lock()

    def __call__(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        now = self.clock()
        # Providers' replies often quote the address or number: stored and logged masked.
        outcomes = [
            _retry_later_or_give_up(
                o._replace(reason=mask_text(o.reason)) if o.reason else o,
                self.by_id[o.id].attempts,
                now,
            )
            for o in outcomes
        ]
        with self.lock, session_scope(self.engine) as session:
            refused = record(session, outcomes, self.worker, now, self.lease)
            for outcome in outcomes:
                if outcome.status == "bounced":
                    row = self.by_id[outcome.id]
                    suppress(session, row.user_id, row.channel, "hard bounce")
        with self.lock:
            self.result.refused += refused
            for outcome in outcomes:
                self.result.by_status[outcome.status] += 1
                if outcome.status in ("failed", "retry", "bounced") and outcome.reason:
                    self.result.failures[outcome.reason[:120]] += 1


class _Heartbeat:
    """Renews the batch's lease every quarter lease while the batch is being sent (a paced
    batch of thousands outlives one lease)."""

    def __init__(
        self,
        engine: Engine,
        ids: list[int],
        worker: str,
        clock: Callable[[], dt.datetime],
        lease: dt.timedelta,
    ) -> None:
        self.engine, self.ids, self.worker, self.clock = engine, ids, worker, clock
        self.interval = lease.total_seconds() / 4
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="outbox-lease", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                with session_scope(self.engine) as session:
                    renew(session, self.ids, self.worker, self.clock())
            except SQLAlchemyError:
                continue  # the next beat tries again; a lapsed lease only refuses records


def send_all(
    engine: Engine,
    settings: Settings,
    campaign: Campaign,
    business_date: dt.date,
    worker: str,
    limit: int,
    now: dt.datetime | None = None,
    lease: dt.timedelta = LEASE,
) -> Counter[str]:
    """Send batches until none is due; returns the messages per outcome."""
    channels = campaign_channels(engine, settings)  # the file outbox while sending is off
    totals: Counter[str] = Counter()
    while True:
        result = send_batch(
            engine, settings, campaign, business_date, worker, channels, limit, now, lease=lease
        )
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
    openid: str | None
    locale: str
    timezone: str
    signup_day: dt.date


def last_active_by(day: dt.date) -> Any:
    """A user's last active day up to `day`: a backfilled date or orders pulled after
    midnight must not make "days since your last visit" negative."""
    return (
        select(func.max(ActiveDay.day))
        .where(ActiveDay.user_id == User.user_id, ActiveDay.day <= day)
        .correlate(User)
        .scalar_subquery()
        .label("last_active_day")
    )


RECIPIENT_COLUMNS = (
    User.user_id,
    User.email,
    User.phone,
    User.push_token,
    User.openid,
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
        "preferences_url": f"{settings.public_url}/preferences?token={token}",
    }


def address_of(user: Recipient, channel: str) -> str:
    if channel == "email":
        return user.email or ""
    if channel == "sms":
        return user.phone or ""
    if channel == "push":
        return user.push_token or ""
    if channel == "wechat":
        return user.openid or ""
    return user.user_id


def quiet_until(quiet: QuietHours | None, timezone: str, now: dt.datetime) -> dt.datetime | None:
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
