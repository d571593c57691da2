"""The outbox: write every message intent first, claim atomically, record the outcome.

Rows are keyed `campaign:business_date:user_id` under a unique constraint, so planning the
same campaign run twice adds nothing. Statuses:

    queued -> sending -> sent | failed | bounced | deferred (quiet hours, retried later)
    deferred -> sending (at its first allowed moment, by any later run of the campaign)
             -> expired (not sendable within the campaign's `valid_hours`)
    sending  -> unknown (a crash left the outcome unknown on a provider that takes no
                idempotency key, e.g. SMTP: reported, never resent blindly)
    suppressed not eligible: opted out, unreachable, suppressed, or frequency-capped
    holdout    eligible, but kept out on purpose to measure uplift ("would have been sent")

A worker renews the lease of its claimed rows while it works (`renew`), and `record` accepts
an outcome only from the worker holding the claim. A row left in `sending` by a crash is
claimed again after the lease (or at once after `reclaim`); its key is the provider's
idempotency key, and channels reconcile before resending (see channels.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast, get_args

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    MetaData,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from yunying.errors import PermanentError
from yunying.lifecycle.holdout import MODULUS, campaign_mix, holdout_condition
from yunying.lifecycle.states import latest_date, not_computed_for
from yunying.messaging.campaign import Campaign, Channel
from yunying.messaging.status import (
    HOLDOUT_REASON,
    SENDING_OFF_REF,
    OutboxStatus,
    SendOutcome,
    Suppressed,
    contacted_within,
    status_after,
    written_while_sending_off,
)
from yunying.messaging.variants import variant_sql
from yunying.store.engine import is_postgres, upsert_insert, utcnow
from yunying.store.models import LifecycleState, OutboxMessage, Suppression, TopicSuppression, User

LEASE = dt.timedelta(minutes=10)
PLAN_LOCK = 0x59554E59  # the PostgreSQL advisory lock under which a night's plans run
MAX_ATTEMPTS = 5
STATUSES = tuple(status.value for status in OutboxStatus)
UNKNOWN_REASON = (
    "outcome unknown: a crash interrupted the send and the provider takes no idempotency key;"
    " check the provider's log, not resent"
)


@dataclass(frozen=True)
class Claimed:
    id: int
    key: str
    user_id: str
    channel: str
    attempts: int
    # Carried on the row, never parsed back out of the key: user ids may contain ':'.
    campaign: str = ""
    business_date: dt.date | None = None
    variant: str | None = None


class Outcome(NamedTuple):
    """Immutable, and a tuple: the cheapest to make when a batched send's columns of
    outcomes are read (batch_channel.Outcomes)."""

    id: int
    status: SendOutcome
    reason: str | None = None
    provider_ref: str | None = None
    not_before: dt.datetime | None = None


def reachable(channel: str) -> ColumnElement[bool]:
    """Present, opted in and not suppressed (on that channel or all): who a channel reaches,
    for the outbox and for segments alike."""
    not_suppressed = ~exists().where(
        Suppression.user_id == User.user_id, Suppression.channel.in_((channel, "any"))
    )
    if channel == "email":
        return and_(User.email.is_not(None), User.email_opt_in, not_suppressed)
    if channel == "sms":
        return and_(User.phone.is_not(None), User.sms_opt_in, not_suppressed)
    if channel == "push":
        return and_(User.push_token.is_not(None), User.push_opt_in, not_suppressed)
    if channel == "wechat":
        return and_(User.openid.is_not(None), User.wechat_opt_in, not_suppressed)
    return not_suppressed


def plan(
    session: Session,
    campaign: Campaign,
    business_date: dt.date,
    only_users: list[str] | None = None,
    now: dt.datetime | None = None,
    audience: Select[tuple[str]] | None = None,
) -> dict[str, int]:
    """Write one outbox row per targeted user (set-based); returns the run's counts.

    Targets are the campaign's lifecycle segment (within `audience`, a segment's user ids,
    when given), or exactly `only_users` (e.g. winners)."""
    planned = stage_plan(session, campaign, business_date, only_users, now, audience)
    picked = select(*planned.c).where(true()).order_by(planned.c.user_id)  # SQLite: WHERE
    statement = upsert_insert(session, OutboxMessage).from_select(PLANNED_COLUMNS, picked)
    session.execute(statement.on_conflict_do_nothing())
    planned.drop(session.connection())
    return counts(session, campaign.name, business_date)


PLANNED_COLUMNS = [
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
    "tier",
]


def stage_plan(
    session: Session,
    campaign: Campaign,
    business_date: dt.date,
    only_users: list[str] | None = None,
    now: dt.datetime | None = None,
    audience: Select[tuple[str]] | None = None,
) -> Table:
    """The rows `plan` would write, in a temporary table (the session's connection only),
    with the outbox's `PLANNED_COLUMNS`; the caller drops it. Writes nothing else."""
    computed = latest_date(session)
    if only_users is None and computed != business_date:
        raise PermanentError(not_computed_for(computed, business_date))
    # A user who turned the campaign's topic off (preference page) is reachable on no channel.
    topic_on = ~exists().where(
        TopicSuppression.user_id == User.user_id, TopicSuppression.topic == campaign.topic
    )
    whens: list[tuple[Any, Any]] = [
        (topic_on & reachable(name), literal(name)) for name in campaign.channels
    ]
    channel = case(
        *whens,
        else_=null(),
    )
    cap_start = dt.datetime.combine(business_date, dt.time()) - dt.timedelta(
        days=campaign.frequency_cap_days
    )
    # A held-out user counts as contacted on their row's date, as a sent one does: otherwise
    # held-out users come back every night while sent ones wait, and the holdout grows. A
    # message written to a file while sending was off reached no one.
    recently_contacted = exists().where(
        OutboxMessage.user_id == User.user_id,
        or_(
            and_(
                OutboxMessage.status == OutboxStatus.SENT,
                OutboxMessage.sent_at >= cap_start,
                ~written_while_sending_off(OutboxMessage.provider_ref),
            ),
            and_(
                # An unknown outcome may have reached the user: as conservative as a send.
                OutboxMessage.status.in_((OutboxStatus.HOLDOUT, OutboxStatus.UNKNOWN)),
                OutboxMessage.business_date >= cap_start.date(),
                ~written_while_sending_off(OutboxMessage.provider_ref),
            ),
        ),
        literal(campaign.frequency_cap_days > 0),  # 0 turns the cap off
    )
    earlier = aliased(OutboxMessage)
    # Deferred on an earlier date (sent when due) or in flight: one message at a time.
    # Earlier `queued` rows (a run that never finished) are never sent: no block.
    still_pending = exists().where(
        earlier.user_id == User.user_id,
        earlier.campaign == campaign.name,
        earlier.business_date < business_date,
        earlier.status.in_((OutboxStatus.SENDING, OutboxStatus.DEFERRED)),
    )
    # At most one marketing message per user a night: a user another campaign has planned
    # (to send or to hold out, which keeps its holdout clean) is not eligible here.
    capped = campaign.cross_campaign_cap and only_users is None
    other = aliased(OutboxMessage)
    taken_tonight = exists().where(
        other.user_id == User.user_id,
        other.business_date == business_date,
        other.campaign != campaign.name,
        other.status != OutboxStatus.SUPPRESSED,
        ~other.campaign.like("reward-won%"),
        literal(capped),
    )
    if capped and is_postgres(session):  # planners of one night take turns: no double claim
        session.execute(select(func.pg_advisory_xact_lock(PLAN_LOCK)))
    held_out = holdout_condition(User.holdout_bucket, campaign.name, campaign.holdout_percent)
    # The holdout is drawn among users who would have been sent, so that held-out and
    # assigned-to-send compare like with like (intent to treat; see reports/effects.py).
    # Tonight's other campaign is checked before the frequency cap, which it also trips once
    # sent, so that the reason names it.
    status = case(
        (channel.is_(None), OutboxStatus.SUPPRESSED),
        (taken_tonight, OutboxStatus.SUPPRESSED),
        (recently_contacted, OutboxStatus.SUPPRESSED),
        (still_pending, OutboxStatus.SUPPRESSED),
        (held_out, OutboxStatus.HOLDOUT),
        else_=OutboxStatus.QUEUED,
    )
    reason = case(
        (~topic_on, Suppressed.TOPIC_OFF.value),
        (channel.is_(None), Suppressed.UNREACHABLE.value),
        (taken_tonight, Suppressed.TAKEN_TONIGHT.value),
        (recently_contacted, contacted_within(campaign.frequency_cap_days)),
        (still_pending, Suppressed.PENDING.value),
        (held_out, HOLDOUT_REASON),
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
        literal(now or utcnow()),
        variant_sql(User.holdout_bucket, campaign.name, campaign.variants),
        LifecycleState.tier,
    ).order_by(User.user_id)
    if only_users is None:
        candidates = candidates.join(LifecycleState, LifecycleState.user_id == User.user_id).where(
            LifecycleState.state.in_(campaign.segment)
        )
        if audience is not None:
            candidates = candidates.where(User.user_id.in_(audience))
    else:
        candidates = candidates.outerjoin(
            LifecycleState, LifecycleState.user_id == User.user_id
        ).where(User.user_id.in_(only_users))
    if campaign.daily_max is not None:
        candidates = _fair_share(candidates, campaign.name, business_date, campaign.daily_max)
    # The candidates are picked into a scratch table first: computed while inserting, each
    # user's checks of the outbox (cap, pending, taken tonight) re-read every row inserted
    # so far when PostgreSQL scans a table it last saw empty (quadratic in the audience).
    planned = _scratch_table("outbox_planned", PLANNED_COLUMNS)
    # Left by a plan that failed on this connection (SQLite runs DDL outside transactions).
    planned.drop(session.connection(), checkfirst=True)
    planned.create(session.connection())
    session.execute(insert(planned).from_select(PLANNED_COLUMNS, candidates))
    return planned


def _scratch_table(name: str, columns: list[str]) -> Table:
    """A temporary table with these columns of the outbox (the session's connection only)."""
    outbox = OutboxMessage.__table__
    return Table(
        name,
        MetaData(),
        *(Column(column, outbox.c[column].type) for column in columns),
        prefixes=["TEMPORARY"],
    )


def _fair_share(
    candidates: Select[Any], campaign: str, business_date: dt.date, daily_max: int
) -> Select[Any]:
    """`daily_max` of the candidates, taking turns across days: users whose last turn in this
    campaign is oldest (or who never had one) first, ties in an order shuffled per date, so
    no range of user ids is always first and nobody waits while others go again."""
    last_turn = (
        select(OutboxMessage.user_id, func.max(OutboxMessage.business_date).label("last"))
        .where(OutboxMessage.campaign == campaign, OutboxMessage.business_date < business_date)
        .group_by(OutboxMessage.user_id)
        .subquery()
    )
    multiplier, offset = campaign_mix(f"{campaign}:{business_date.isoformat()}")
    shuffled = (
        sql_cast(User.holdout_bucket, BigInteger) * literal(multiplier, BigInteger)
        + literal(offset, BigInteger)
    ) % MODULUS
    return (
        candidates.outerjoin(last_turn, last_turn.c.user_id == User.user_id)
        .order_by(None)
        .order_by(last_turn.c.last.is_not(None), last_turn.c.last, shuffled, User.user_id)
        .limit(daily_max)
    )


def claim(
    session: Session,
    campaign: str,
    business_date: dt.date,
    worker: str,
    limit: int,
    now: dt.datetime | None = None,
    lease: dt.timedelta = LEASE,
    blind_channels: Collection[str] = (),
) -> list[Claimed]:
    """Atomically take up to `limit` sendable rows for this worker: the run's queued rows,
    deferred rows of this and earlier dates of the campaign that are due, and rows whose
    lease lapsed. A lapsed row on a `blind_channels` channel (no idempotency key, no lookup)
    that was handed to its provider is marked `unknown` instead: resending it could deliver
    it twice."""
    now = now or utcnow()
    lapsed = and_(
        OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_at < now - lease
    )
    if blind_channels:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.campaign == campaign,
                OutboxMessage.business_date == business_date,
                OutboxMessage.channel.in_(list(blind_channels)),
                OutboxMessage.handed_at.is_not(None),
                lapsed,
            )
            .values(status=OutboxStatus.UNKNOWN, reason=UNKNOWN_REASON, claimed_by=None)
            .execution_options(synchronize_session=False)
        )
    due = or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now)
    sendable = or_(
        and_(
            OutboxMessage.business_date == business_date,
            or_(
                and_(OutboxMessage.status.in_((OutboxStatus.QUEUED, OutboxStatus.DEFERRED)), due),
                lapsed,
            ),
        ),
        and_(
            OutboxMessage.business_date < business_date,
            OutboxMessage.status == OutboxStatus.DEFERRED,
            due,
        ),
    )
    ids = (
        select(OutboxMessage.id)
        .where(OutboxMessage.campaign == campaign, sendable)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if is_postgres(session):
        ids = ids.with_for_update(skip_locked=True)
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids.scalar_subquery()))
        .values(
            status=OutboxStatus.SENDING,
            claimed_by=worker,
            claimed_at=now,
            handed_at=None,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(
            OutboxMessage.id,
            OutboxMessage.key,
            OutboxMessage.user_id,
            OutboxMessage.channel,
            OutboxMessage.attempts,
            OutboxMessage.campaign,
            OutboxMessage.business_date,
            OutboxMessage.variant,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted(
        (Claimed(*row) for row in session.execute(statement)), key=lambda claimed: claimed.id
    )


def mark_held_out_while_sending_off(
    session: Session, campaign: str, business_date: dt.date
) -> None:
    """The date's held-out rows, planned while sending is off, marked as its files are: an
    evaluation's holdout is capped no more than its messages, which reached no one."""
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.campaign == campaign,
            OutboxMessage.business_date == business_date,
            OutboxMessage.status == OutboxStatus.HOLDOUT,
            OutboxMessage.provider_ref.is_(None),
        )
        .values(provider_ref=f"{SENDING_OFF_REF}holdout")
        .execution_options(synchronize_session=False)
    )


def expire_deferred(
    session: Session, campaign: str, valid: dt.timedelta, now: dt.datetime | None = None
) -> int:
    """Deferred rows of the campaign planned longer than `valid` ago will not be sent:
    `expired`, with the reason. Returns how many."""
    now = now or utcnow()
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.campaign == campaign,
            OutboxMessage.status == OutboxStatus.DEFERRED,
            OutboxMessage.created_at < now - valid,
        )
        .values(
            status=OutboxStatus.EXPIRED,
            reason=f"still deferred {_hours(valid)} after planning (the campaign's valid_hours)",
            not_before=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _hours(span: dt.timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def hand_over(
    session: Session, ids: Collection[int], worker: str, now: dt.datetime | None = None
) -> None:
    """Mark the rows this worker holds as handed to their provider, before they are: a crash
    then leaves `unknown` only these, on a channel that cannot tell what it received."""
    _set_where_held(session, ids, worker, handed_at=now or utcnow())


def renew(
    session: Session, ids: Collection[int], worker: str, now: dt.datetime | None = None
) -> int:
    """Extend the lease of the rows this worker still holds (a heartbeat)."""
    return _set_where_held(session, ids, worker, claimed_at=now or utcnow())


def _set_where_held(
    session: Session, ids: Collection[int], worker: str, **values: dt.datetime
) -> int:
    """Set `values` on those of the rows `ids` that `worker` still holds; returns how many."""
    if not ids:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(list(ids)),
            OutboxMessage.status == OutboxStatus.SENDING,
            OutboxMessage.claimed_by == worker,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def record(
    session: Session,
    outcomes: Iterable[Outcome],
    worker: str,
    now: dt.datetime | None = None,
    lease: dt.timedelta = LEASE,
) -> int:
    """Store each message's outcome in one executemany, but only where `worker` still holds
    the claim (its lease not lapsed, not reclaimed): a late worker must not overwrite what
    another worker did with the row since. Returns how many outcomes were refused."""
    now = now or utcnow()
    rows = []
    for outcome in outcomes:
        status = status_after(outcome.status)
        rows.append(
            {
                "b_id": outcome.id,
                "status": status,
                "reason": outcome.reason,
                "provider_ref": outcome.provider_ref,
                "not_before": outcome.not_before,
                "sent_at": now if status == OutboxStatus.SENT else None,
            }
        )
    if not rows:
        return 0
    table = cast(Table, OutboxMessage.__table__)
    result = session.connection().execute(
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.status == OutboxStatus.SENDING,
            table.c.claimed_by == worker,
            table.c.claimed_at >= now - lease,
        )
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
    return len(rows) - int(result.rowcount)


def reclaim(
    session: Session, campaign: str, business_date: dt.date, blind_channels: Collection[str]
) -> dict[str, int]:
    """After a confirmed crash: put the run's in-flight rows back in the queue at once
    (channels reconcile them before resending), or mark them `unknown` when they were handed
    to a channel that cannot reconcile. Returns {"requeued": n, "unknown": m}."""
    in_flight = and_(
        OutboxMessage.campaign == campaign,
        OutboxMessage.business_date == business_date,
        OutboxMessage.status == OutboxStatus.SENDING,
    )
    blind = and_(
        OutboxMessage.channel.in_(list(blind_channels)), OutboxMessage.handed_at.is_not(None)
    )
    unknown = session.execute(
        update(OutboxMessage)
        .where(in_flight, blind)
        .values(status=OutboxStatus.UNKNOWN, reason=UNKNOWN_REASON, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    requeued = session.execute(
        update(OutboxMessage)
        .where(in_flight)
        .values(
            status=OutboxStatus.QUEUED,
            claimed_by=None,
            claimed_at=None,
            handed_at=None,
            not_before=None,
        )
        .execution_options(synchronize_session=False)
    )
    return {
        "requeued": int(requeued.rowcount),  # type: ignore[attr-defined]
        "unknown": int(unknown.rowcount),  # type: ignore[attr-defined]
    }


@dataclass(frozen=True)
class InFlight:
    count: int
    reclaimed_at: dt.datetime | None  # when the earliest lease lapses


def in_flight(
    session: Session, campaign: str, business_date: dt.date, lease: dt.timedelta = LEASE
) -> InFlight:
    """Rows of the run still `sending`: held by another worker, or left by a crashed one."""
    count, earliest = session.execute(
        select(func.count(), func.min(OutboxMessage.claimed_at)).where(
            OutboxMessage.campaign == campaign,
            OutboxMessage.business_date == business_date,
            OutboxMessage.status == OutboxStatus.SENDING,
        )
    ).one()
    return InFlight(int(count), earliest + lease if earliest is not None else None)


def requeue_failed(session: Session, campaign: Campaign, business_date: dt.date) -> int:
    """Put failed rows back in the queue: "resend only the failed ones"."""
    return _requeue(session, campaign, business_date, OutboxStatus.FAILED)


# Set on a row whose user no longer takes it when it is requeued or about to be sent.
NO_LONGER_REACHABLE = "no longer reachable on its channel (unsubscribed or suppressed since)"


def consent_lapsed(topic: str) -> ColumnElement[bool]:
    """An outbox row whose user is no longer reachable on the row's channel (unsubscribed,
    opted out, suppressed) or has switched the campaign's `topic` off since it was planned."""
    still_reachable = or_(
        *(
            and_(
                OutboxMessage.channel == name,
                exists().where(User.user_id == OutboxMessage.user_id, reachable(name)),
            )
            for name in get_args(Channel)
        )
    )
    topic_off = exists().where(
        TopicSuppression.user_id == OutboxMessage.user_id, TopicSuppression.topic == topic
    )
    return or_(~still_reachable, topic_off)


# Set on a claimed row whose user another campaign reached after it was planned.
REACHED_SINCE = "another campaign reached this user since it was planned"


def withdraw_unwanted(
    session: Session, claimed: list[Claimed], campaign: Campaign
) -> tuple[list[Claimed], int]:
    """The claimed rows whose user still takes them, and how many others were suppressed: a
    message deferred by quiet hours, retried or resumed after a crash goes out hours after
    it was planned, and the user may have unsubscribed in between or, under the
    cross-campaign cap, been sent another campaign's message."""
    if not claimed:
        return claimed, 0
    ids = OutboxMessage.id.in_([c.id for c in claimed])
    other = aliased(OutboxMessage)
    reached_since = exists().where(
        other.user_id == OutboxMessage.user_id,
        other.campaign != OutboxMessage.campaign,
        other.status == OutboxStatus.SENT,
        other.sent_at >= OutboxMessage.created_at,
        ~written_while_sending_off(other.provider_ref),
        ~other.campaign.like("reward-won%"),
        literal(campaign.cross_campaign_cap),
    )
    withdrawn: set[int] = set()
    for lapsed, reason in (
        (consent_lapsed(campaign.topic), NO_LONGER_REACHABLE),
        (reached_since, REACHED_SINCE),
    ):
        withdrawn |= set(
            session.scalars(
                update(OutboxMessage)
                .where(ids, OutboxMessage.status == OutboxStatus.SENDING, lapsed)
                .values(
                    status=OutboxStatus.SUPPRESSED, reason=reason, not_before=None, claimed_by=None
                )
                .returning(OutboxMessage.id)
                .execution_options(synchronize_session=False)
            )
        )
    return [c for c in claimed if c.id not in withdrawn], len(withdrawn)


def _requeue(
    session: Session,
    campaign: Campaign,
    business_date: dt.date,
    status: OutboxStatus,
    users: Collection[str] | None = None,
) -> int:
    """The run's rows in `status` (of `users`, or all) back in the queue, but those whose user
    has since become unreachable on the row's channel, or switched the campaign's topic off,
    are suppressed: the consent that planned them is checked again. Returns how many were
    requeued."""
    run = and_(
        OutboxMessage.campaign == campaign.name,
        OutboxMessage.business_date == business_date,
        OutboxMessage.status == status,
        OutboxMessage.user_id.in_(list(users)) if users is not None else true(),
    )
    session.execute(
        update(OutboxMessage)
        .where(run, consent_lapsed(campaign.topic))
        .values(status=OutboxStatus.SUPPRESSED, reason=NO_LONGER_REACHABLE, not_before=None)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(
        update(OutboxMessage)
        .where(run)
        .values(status=OutboxStatus.QUEUED, attempts=0, reason=None, not_before=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def unknown_users(session: Session, campaign: str, business_date: dt.date) -> list[str]:
    """The users whose message of the run has an unknown outcome, in order."""
    return list(
        session.scalars(
            select(OutboxMessage.user_id)
            .where(
                OutboxMessage.campaign == campaign,
                OutboxMessage.business_date == business_date,
                OutboxMessage.status == OutboxStatus.UNKNOWN,
            )
            .order_by(OutboxMessage.user_id)
        )
    )


def requeue_unknown(
    session: Session, campaign: Campaign, business_date: dt.date, users: Collection[str]
) -> int:
    """Put the unknown messages of `users` back in the queue: a person checked the provider's
    log and found it never took them. Returns how many."""
    return _requeue(session, campaign, business_date, OutboxStatus.UNKNOWN, users)


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


def suppressions(session: Session, campaign: str | None, business_date: dt.date) -> dict[str, int]:
    """Suppressed rows of the date by their recorded reason, the most common first."""
    return reasons(session, campaign, business_date, OutboxStatus.SUPPRESSED)


def reasons(
    session: Session, campaign: str | None, business_date: dt.date, status: OutboxStatus
) -> dict[str, int]:
    """The date's rows in `status` by their recorded reason, the most common first."""
    query = select(OutboxMessage.reason, func.count()).where(
        OutboxMessage.business_date == business_date, OutboxMessage.status == status
    )
    if campaign is not None:
        query = query.where(OutboxMessage.campaign == campaign)
    rows = session.execute(query.group_by(OutboxMessage.reason)).all()
    return {reason or "": int(count) for reason, count in sorted(rows, key=lambda r: -r[1])}


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
            OutboxMessage.status == OutboxStatus.QUEUED,
        )
    )


def next_deferred_at(session: Session, campaign: str, business_date: dt.date) -> dt.datetime | None:
    """When the earliest message deferred by quiet hours (of this or an earlier date of the
    campaign) may go out: a run of the campaign at that moment sends it."""
    return session.scalar(
        select(func.min(OutboxMessage.not_before)).where(
            OutboxMessage.campaign == campaign,
            OutboxMessage.business_date <= business_date,
            OutboxMessage.status == OutboxStatus.DEFERRED,
        )
    )
