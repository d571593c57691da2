"""Lifecycle states (用户分层) and RFM tiers as of a business date, computed set-based.

States, with inactive days = business date - last active day (or the signup day when the
user was never active), all in the company's time zone; the ranges are half-open:

- `new`       signed up fewer than `new_days` ago (takes precedence over everything else);
- `active`    inactive < `active_days`;
- `returned`  active again after being `silent` or `churned`; stays `returned` for
              `returned_days` after the day it returned, then becomes `active`;
- `silent`    `active_days` <= inactive < `churn_days`;
- `churned`   inactive >= `churn_days`.

RFM scores 1..3 from configurable cut points (defaults): recency from inactive days (<7, <30),
frequency from paid orders (>=2, >=5), monetary from spend (>=100, >=500); tier `high` when
the sum >= 8, `mid` >= 5, else `low`. Orders count as of the business date: an order placed
after it does not raise an earlier date's tier.

A run for a date rewrites only the `lifecycle_states` rows whose state or scores changed
(state, since, and the state before that), adds one `lifecycle_transitions` row per user whose
state changed on that date, moves the users per state and tier in `lifecycle_counts` by
those changes, and records the date with a fingerprint of the lifecycle settings in
`lifecycle_runs`. `lifecycle_states` (and the counts) always describe the latest date run.
Rerunning the same date gives the same rows. A run whose settings differ from the last run's
looks at every user. An earlier date is recomputed with `recompute=True`: the states are put
back as they were before it (from the transitions) and the caller runs the dates from it on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Date,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    union,
    union_all,
)
from sqlalchemy.orm import Session

from yunying.config import LifecycleSettings
from yunying.errors import PermanentError
from yunying.lifecycle.spend_money import recount_spend_if_money_changed
from yunying.reports.effects import Money
from yunying.store.engine import is_postgres, upsert_insert, utcnow
from yunying.store.models import (
    ActiveDay,
    LifecycleCandidate,
    LifecycleCount,
    LifecycleRun,
    LifecycleScratch,
    LifecycleState,
    LifecycleTransition,
    Order,
    User,
    UserFacts,
)

STATES = ("new", "active", "returned", "silent", "churned")
TIERS = ("high", "mid", "low")


@dataclass(frozen=True)
class LifecycleSummary:
    business_date: dt.date
    by_state: dict[str, int]
    by_tier: dict[str, dict[str, int]]  # state -> tier -> users
    transitions: dict[tuple[str | None, str], int]
    # Why every user was looked at, when the run could not rely on the last one (settings
    # changed, a recomputed range), else None.
    recomputed_all: str | None = None


def latest_date(session: Session) -> dt.date | None:
    return session.scalar(select(func.max(LifecycleRun.business_date)))


def dates_to_compute(session: Session, business_date: dt.date, catch_up_days: int) -> list[dt.date]:
    """The dates from the day after the last computed one up to `business_date`, in order:
    a missed night is caught up, and a new store starts `catch_up_days` back so that
    transitions (and `returned`) are meaningful from the first run."""
    latest = latest_date(session)
    first = business_date - dt.timedelta(days=catch_up_days - 1)
    if latest is not None:
        missed = (business_date - latest).days - 1
        if missed > catch_up_days:  # skipped, they would leave states and transitions wrong
            after = latest + dt.timedelta(days=1)
            raise PermanentError(
                f"the lifecycle is computed up to {latest}: the {missed} nights missed after it"
                f" are more than catch_up_days ({catch_up_days}) catches up on its own; compute"
                f" them and {business_date} in order with"
                f" `yunying run lifecycle --from {after} --date {business_date}`"
            )
        first = min(latest + dt.timedelta(days=1), business_date)  # every missed date
    return [first + dt.timedelta(days=i) for i in range((business_date - first).days + 1)]


def settings_fingerprint(rules: LifecycleSettings) -> str:
    """A hash of the settings a run's states depend on (not how far back a new store starts)."""
    kept = rules.model_dump(mode="json", exclude={"catch_up_days"})
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


class DatePlan(NamedTuple):
    dates: list[dt.date]
    recompute: bool  # the first date is before the latest computed: states are put back first
    discards: dt.date | None  # the latest computed date, when the dates after the plan go


def plan_dates(
    session: Session,
    business_date: dt.date,
    first: dt.date | None,
    catch_up_days: int,
    discard_later: bool = False,
) -> DatePlan:
    """The dates a lifecycle run computes, in order, and whether the first is a recompute
    (an earlier date than the latest computed, whose states are put back first).

    Without `first`, the missed nights up to `business_date` (`dates_to_compute`), or, when
    `business_date` is before the latest computed date, from it on. With `first`, every date
    from `first`; either way a recompute goes on to the latest computed date, so the states
    and transitions after the range follow from the recomputed ones — unless
    `discard_later`: then the range ends at `business_date`, and the computed dates after it
    are forgotten (the recompute's rewind removes every run and transition from `first` on)."""
    latest = latest_date(session)
    if first is None:
        if latest is None or business_date > latest:
            return DatePlan(dates_to_compute(session, business_date, catch_up_days), False, None)
        first = business_date
    if first > business_date:
        raise PermanentError(f"--from {first} is after --date {business_date}")
    if latest is not None and first > latest + dt.timedelta(days=1):
        after = latest + dt.timedelta(days=1)
        raise PermanentError(
            f"--from {first} would leave {after} .. {first - dt.timedelta(days=1)} uncomputed"
            f" after the latest computed date, {latest}, and compute {first} from its states:"
            f" run `yunying run lifecycle --from {after} --date {business_date}`"
        )
    discards = latest if discard_later and latest is not None and latest > business_date else None
    last = business_date if latest is None or discards else max(business_date, latest)
    dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return DatePlan(dates, latest is not None and first <= latest, discards)


def not_computed_for(computed: dt.date | None, business_date: dt.date) -> str:
    """Why a campaign cannot plan on `business_date` when the states are for `computed`, and
    what to do. Campaigns plan on the latest computed date's states only, so recomputing the
    earlier date (which goes on to the latest) would not help."""
    if computed is None or computed < business_date:
        return (
            f"lifecycle states are for {computed or 'no date yet'}, not {business_date}: "
            f"run `yunying run lifecycle --date {business_date}` first"
        )
    return (
        f"lifecycle states are for {computed}, after {business_date}, and campaigns plan on "
        f"the latest computed date's states: run the campaign with `--date {computed}`; only "
        f"if the dates after {business_date} were computed by mistake, forget them with "
        f"`yunying run lifecycle --date {business_date} --discard-later` and run it again"
    )


def _way_back(latest: dt.date, business_date: dt.date) -> str:
    return (
        f"to recompute {business_date} through {latest}, run `yunying run lifecycle "
        f"--from {business_date} --date {latest}`; if the dates after {business_date} were "
        f"computed by mistake, forget them with `yunying run lifecycle --date {business_date} "
        "--discard-later`"
    )


class _LastRun(NamedTuple):
    business_date: dt.date
    computed_at: dt.datetime
    settings_fingerprint: str


# The columns of `lifecycle_states`, which the run's scratch table shares.
_COLUMNS = tuple(column.key for column in LifecycleState.__table__.columns)


def compute_lifecycle(
    session: Session,
    business_date: dt.date,
    rules: LifecycleSettings,
    recompute: bool = False,
    money: Money | None = None,
) -> LifecycleSummary:
    """Compute every user's state as of the date, writing only the users whose state or
    tier changed: the nightly cost is one read of users and facts, plus the changes.
    `recompute` first puts the states back as they were before the date (the dates after
    it are to be run again, in order, by the caller). Spend is in `money` (None: amounts as
    they are): the facts' recounted when they were counted in other money, a backfill's read
    from the orders."""
    fingerprint = settings_fingerprint(rules)
    # The date's own run is the one replaced (the latest may be under newer settings).
    replaced = (_latest_run(session, business_date) or _latest_run(session)) if recompute else None
    if recompute:
        _rewind(session, business_date)
    latest = _last_run(session, business_date)
    recomputed_all = _why_everyone(
        replaced or latest, fingerprint, business_date if recompute else None
    )
    before = replaced or latest
    if money is not None and recount_spend_if_money_changed(session, money) and before:
        recomputed_all = (
            f"currency or exchange_rates changed since the run for {before.business_date}:"
            " every user's spend recounted at today's rates and every user recomputed"
        )
    started = utcnow()
    candidates = (
        None if recomputed_all is not None else _candidates(session, business_date, latest, rules)
    )
    if candidates is not None:
        _tune_planner(session)
        _stage_candidates(session, candidates)
    spend = Order.amount if money is None else money.counted()
    _stage_changes(session, business_date, rules, spend, only_candidates=candidates is not None)
    rerun = latest is not None and latest.business_date == business_date
    _record_transitions(session, business_date, rerun)
    _apply(session, counts_moved=candidates is not None)
    _record_run(session, business_date, started, fingerprint)
    summary = summarise(session, business_date)
    return dataclasses.replace(summary, recomputed_all=recomputed_all)


def _latest_run(session: Session, business_date: dt.date | None = None) -> _LastRun | None:
    """The latest run, or the run of `business_date`."""
    query = select(
        LifecycleRun.business_date, LifecycleRun.computed_at, LifecycleRun.settings_fingerprint
    )
    if business_date is None:
        query = query.order_by(LifecycleRun.business_date.desc()).limit(1)
    else:
        query = query.where(LifecycleRun.business_date == business_date)
    row = session.execute(query).first()
    return None if row is None else _LastRun(*row)


def _last_run(session: Session, business_date: dt.date) -> _LastRun | None:
    """The latest run, refusing a date before it (that is a recompute)."""
    latest = _latest_run(session)
    if latest is None:
        return None
    if latest.business_date > business_date:
        raise PermanentError(
            f"lifecycle already computed for {latest.business_date}, after {business_date}: "
            + _way_back(latest.business_date, business_date)
        )
    return latest


def _why_everyone(
    latest: _LastRun | None, fingerprint: str, recomputed_from: dt.date | None
) -> str | None:
    """Why the run looks at every user rather than the candidates, or None: changed settings
    are named even on a recompute, so a new threshold never reads like a plain rerun."""
    changed = latest is not None and latest.settings_fingerprint != fingerprint
    if latest is not None and changed:
        return (
            f"lifecycle settings changed since the run for {latest.business_date}:"
            " every user recomputed"
            + (f" from {recomputed_from}" if recomputed_from is not None else "")
        )
    if recomputed_from is not None:
        return f"recomputed from {recomputed_from}"
    return None


def _tune_planner(session: Session) -> None:
    """PostgreSQL settings for a run over a few candidates, for this transaction only."""
    if not is_postgres(session):
        return
    # A few thousand key lookups beat hashing every row of a table; the default cost
    # of a random page read (4) assumes spinning disks and picks the hashing.
    session.execute(text("SET LOCAL random_page_cost = 1.1"))
    # JIT compiling these statements costs more than it saves on the few tens of
    # thousands of rows a night touches.
    session.execute(text("SET LOCAL jit = off"))
    # The candidates are looked up in key order (below), so each page of users,
    # facts and states is read once; PostgreSQL would still hash a scan of all users.
    session.execute(text("SET LOCAL enable_hashjoin = off"))


def _stage_candidates(session: Session, candidates: Select[tuple[str]]) -> None:
    """Materialise the candidates, with statistics and in key order, so the database looks
    the few of them up by key instead of hashing every user, fact and state row to join."""
    _empty(session, LifecycleCandidate)
    picked = candidates.subquery()
    session.execute(
        insert(LifecycleCandidate).from_select(
            ["user_id"], select(picked.c.user_id).order_by(picked.c.user_id)
        )
    )
    if is_postgres(session):
        session.execute(text("ANALYZE lifecycle_candidates"))


def _stage_changes(
    session: Session,
    business_date: dt.date,
    rules: LifecycleSettings,
    spend: Any,
    only_candidates: bool,
) -> None:
    """Fill the scratch table with the new rows of the users whose state or scores change,
    each with its stored state and tier as old_*."""
    day = literal(business_date, Date)
    fresh = _new_states(business_date, rules, spend, only_candidates).subquery()
    changed_today = fresh.c.old_since == day
    before_state, before_since = fresh.c.before_state, fresh.c.before_since
    same = fresh.c.state == before_state
    rows = select(
        fresh.c.user_id,
        fresh.c.state,
        case((same, before_since), else_=day),
        case((same & ~changed_today, fresh.c.old_prev_state), (same, None), else_=before_state),
        case((same & ~changed_today, fresh.c.old_prev_since), (same, None), else_=before_since),
        fresh.c.recency_score,
        fresh.c.frequency_score,
        fresh.c.monetary_score,
        fresh.c.tier,
        fresh.c.old_state,
        fresh.c.old_tier,
    ).where(
        fresh.c.old_state.is_(None)
        | (fresh.c.state != fresh.c.old_state)
        | (fresh.c.tier != fresh.c.old_tier)
        | (fresh.c.recency_score != fresh.c.old_recency_score)
        | (fresh.c.frequency_score != fresh.c.old_frequency_score)
        | (fresh.c.monetary_score != fresh.c.old_monetary_score)
    )
    _empty(session, LifecycleScratch)
    session.execute(
        insert(LifecycleScratch).from_select([*_COLUMNS, "old_state", "old_tier"], rows)
    )


def _record_transitions(session: Session, business_date: dt.date, rerun: bool) -> None:
    """One transition per staged user whose state changed on the date (replacing, on a
    rerun of the date, the ones an earlier run of it recorded for those users)."""
    day = literal(business_date, Date)
    scratch = LifecycleScratch
    if rerun:
        session.execute(
            delete(LifecycleTransition).where(
                LifecycleTransition.business_date == business_date,
                LifecycleTransition.user_id.in_(select(scratch.user_id)),
            )
        )
    session.execute(
        insert(LifecycleTransition).from_select(
            ["user_id", "business_date", "from_state", "to_state"],
            select(scratch.user_id, day, scratch.prev_state, scratch.state).where(
                scratch.since == day
            ),
        )
    )


def _apply(session: Session, counts_moved: bool) -> None:
    """Write the staged rows into `lifecycle_states` and bring the counts up to date: moved
    by the staged changes, or (`counts_moved` False, every user looked at) counted again."""
    scratch = LifecycleScratch
    if counts_moved:
        _count_changes(session)
    upsert = upsert_insert(session, LifecycleState).from_select(
        _COLUMNS,
        # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT.
        select(*(getattr(scratch, name) for name in _COLUMNS)).where(true()),
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=["user_id"],
        set_={name: upsert.excluded[name] for name in _COLUMNS if name != "user_id"},
    )
    session.execute(upsert)
    _empty(session, scratch)
    if not counts_moved:
        _count_all(session)
        if is_postgres(session):
            # Every row may be new: give the planner of the next nights the table's size.
            session.execute(text("ANALYZE lifecycle_states"))


def _record_run(
    session: Session, business_date: dt.date, started: dt.datetime, fingerprint: str
) -> None:
    run = upsert_insert(session, LifecycleRun).values(
        business_date=business_date, computed_at=started, settings_fingerprint=fingerprint
    )
    session.execute(
        run.on_conflict_do_update(
            index_elements=["business_date"],
            set_={
                "computed_at": run.excluded.computed_at,
                "settings_fingerprint": run.excluded.settings_fingerprint,
            },
        )
    )


def _rewind(session: Session, business_date: dt.date) -> None:
    """Put `lifecycle_states` back as of the day before `business_date`, from the transitions
    before it (a user's last one gives state and since, the one before it prev_since), and
    forget the runs and transitions from that date on. The scores are unknown (0), so the
    next run rewrites every row; users first seen from that date on are dropped."""
    session.execute(
        delete(LifecycleTransition).where(LifecycleTransition.business_date >= business_date)
    )
    session.execute(delete(LifecycleRun).where(LifecycleRun.business_date >= business_date))
    session.execute(delete(LifecycleState))
    t = LifecycleTransition
    ordered = (
        select(
            t.user_id,
            t.to_state,
            t.business_date,
            t.from_state,
            func.lag(t.business_date)
            .over(partition_by=t.user_id, order_by=t.business_date)
            .label("before"),
            func.row_number()
            .over(partition_by=t.user_id, order_by=t.business_date.desc())
            .label("newest"),
        )
        .where(t.business_date < business_date)
        .subquery()
    )
    session.execute(
        insert(LifecycleState).from_select(
            _COLUMNS,
            select(
                ordered.c.user_id,
                ordered.c.to_state,
                ordered.c.business_date,
                ordered.c.from_state,
                ordered.c.before,
                literal(0),
                literal(0),
                literal(0),
                literal(""),
            ).where(ordered.c.newest == 1),
        )
    )


def _empty(session: Session, table: type[LifecycleScratch | LifecycleCandidate]) -> None:
    # PostgreSQL's DELETE leaves dead rows the next run has to scan past.
    if is_postgres(session):
        session.execute(text(f"TRUNCATE {table.__tablename__}"))
    else:
        session.execute(delete(table))


def _count_changes(session: Session) -> None:
    """Move the users per state and tier by the rows in the scratch table: +1 for each new
    row, -1 for the row it replaces."""
    scratch = LifecycleScratch
    moves = union_all(
        select(scratch.state, scratch.tier, literal(1).label("users")),
        select(scratch.old_state, scratch.old_tier, literal(-1)).where(
            scratch.old_state.is_not(None)
        ),
    ).subquery()
    upsert = upsert_insert(session, LifecycleCount).from_select(
        ["state", "tier", "users"],
        select(moves.c.state, moves.c.tier, func.sum(moves.c.users))
        .where(true())
        .group_by(moves.c.state, moves.c.tier),
    )
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["state", "tier"],
            set_={"users": LifecycleCount.users + upsert.excluded.users},
        )
    )


def _count_all(session: Session) -> None:
    session.execute(delete(LifecycleCount))
    session.execute(
        insert(LifecycleCount).from_select(
            ["state", "tier", "users"],
            select(LifecycleState.state, LifecycleState.tier, func.count()).group_by(
                LifecycleState.state, LifecycleState.tier
            ),
        )
    )


def _candidates(
    session: Session, business_date: dt.date, latest: _LastRun | None, rules: LifecycleSettings
) -> Select[tuple[str]] | None:
    """The users whose state or scores can have changed since the last run, or None for all.

    Without new facts a user's inactive days only grow, so the state can change only where a
    threshold is crossed between the last run and this date: those users are found through
    indexes on their last active (or signup) day, plus everyone whose record or facts changed
    since the last run, the new signups, `returned` users whose window ends, and on a rerun
    everyone who changed on this date."""
    if latest is None:
        return None
    newest_activity = session.scalar(select(func.max(UserFacts.last_active_day)))
    if newest_activity is not None and newest_activity > business_date:
        return None  # a backfill: facts describe later days, so look at everyone
    last = latest.business_date

    def crossed(column: Any, days: int) -> Any:
        return column.between(
            last - dt.timedelta(days=days) + dt.timedelta(days=1),
            business_date - dt.timedelta(days=days),
        )

    thresholds = {
        rules.active_days,
        rules.churn_days,
        *rules.recency_days,
    }
    parts: list[Select[tuple[str]]] = [
        select(UserFacts.user_id).where(UserFacts.updated_at >= latest.computed_at),
        select(UserFacts.user_id).where(  # active since the last run date
            UserFacts.last_active_day > last, UserFacts.last_active_day <= business_date
        ),
        select(User.user_id).where(User.signup_day > last, User.signup_day <= business_date),
        # Orders placed since the last run date now count, even if loaded long before.
        select(Order.user_id).where(Order.day > last, Order.day <= business_date),
        select(User.user_id).where(crossed(User.signup_day, rules.new_days)),
        # A state's `since` is the date of the transition into it.
        select(LifecycleTransition.user_id).where(
            crossed(LifecycleTransition.business_date, rules.returned_days),
            LifecycleTransition.to_state == "returned",
        ),
        select(LifecycleTransition.user_id).where(
            LifecycleTransition.business_date == business_date
        ),
        select(UserFacts.user_id).where(
            or_(*(crossed(UserFacts.last_active_day, days) for days in sorted(thresholds)))
        ),
        # The signup day is the reference day only of users never active.
        select(User.user_id).where(
            or_(*(crossed(User.signup_day, days) for days in sorted(thresholds))),
            ~exists().where(
                UserFacts.user_id == User.user_id, UserFacts.last_active_day.is_not(None)
            ),
        ),
    ]
    return union(*parts)  # type: ignore[return-value]


def _new_states(
    business_date: dt.date, rules: LifecycleSettings, spend: Any, only_candidates: bool
) -> Select[tuple[object, ...]]:
    """Every user's (or only the candidates') state and scores as of the date, with the
    state (and its since) before the date and the stored row's columns as old_*."""
    day = literal(business_date, Date)
    old = LifecycleState
    # Facts hold the latest activity; for a backfill the activity after the date is ignored
    # by looking the last active day up in active_days (one index seek per such user).
    last_active_then = (
        select(func.max(ActiveDay.day))
        .where(ActiveDay.user_id == User.user_id, ActiveDay.day <= day)
        .scalar_subquery()
    )
    last_active = case(
        (UserFacts.last_active_day.is_(None), None),
        (UserFacts.last_active_day <= day, UserFacts.last_active_day),
        else_=last_active_then,
    )
    # Likewise orders: the facts count every paid order so far, so a user with one that may
    # be after the date (in any time zone: UTC+14 is the earliest) is counted from `orders`.
    surely_before = dt.datetime.combine(business_date, dt.time()) + dt.timedelta(hours=10)
    facts_hold = UserFacts.last_order_at.is_(None) | (UserFacts.last_order_at < surely_before)

    def paid_then(measure: Any) -> Any:
        return (
            select(measure)
            .where(Order.user_id == User.user_id, Order.status == "paid", Order.day <= day)
            .scalar_subquery()
        )

    orders_then = case(
        (facts_hold, func.coalesce(UserFacts.order_count, 0)), else_=paid_then(func.count())
    )
    revenue_then = case(
        (facts_hold, func.coalesce(UserFacts.revenue, 0)),
        else_=paid_then(func.coalesce(func.sum(spend), 0)),
    )
    rows = (
        select(
            User.user_id.label("user_id"),
            User.signup_day.label("signup_day"),
            func.coalesce(last_active, User.signup_day).label("reference_day"),
            orders_then.label("orders"),
            revenue_then.label("revenue"),
            # The state before this date: a row changed on this very date (by an earlier run
            # of it) still remembers what it was before.
            case((old.since == day, old.prev_state), else_=old.state).label("before_state"),
            case((old.since == day, old.prev_since), else_=old.since).label("before_since"),
            *(getattr(old, name).label(f"old_{name}") for name in _KEPT),
        )
        .join(UserFacts, UserFacts.user_id == User.user_id, isouter=True)
        .join(old, old.user_id == User.user_id, isouter=True)
        .where(User.signup_day <= day)
    )
    if only_candidates:
        rows = rows.where(User.user_id.in_(select(LifecycleCandidate.user_id)))
    base = rows.subquery()
    active_cutoff = business_date - dt.timedelta(days=rules.active_days)
    churn_cutoff = business_date - dt.timedelta(days=rules.churn_days)
    new_cutoff = business_date - dt.timedelta(days=rules.new_days)
    returned_cutoff = business_date - dt.timedelta(days=rules.returned_days)
    is_active = base.c.reference_day > active_cutoff
    state = case(
        (base.c.signup_day > new_cutoff, "new"),
        (
            and_(
                is_active,
                or_(
                    base.c.before_state.in_(("silent", "churned")),
                    and_(base.c.before_state == "returned", base.c.before_since > returned_cutoff),
                ),
            ),
            "returned",
        ),
        (is_active, "active"),
        (base.c.reference_day > churn_cutoff, "silent"),
        else_="churned",
    )
    recent, lapsed = rules.recency_days
    recency = case(
        (base.c.reference_day > business_date - dt.timedelta(days=recent), 3),
        (base.c.reference_day > business_date - dt.timedelta(days=lapsed), 2),
        else_=1,
    )
    some, many = rules.frequency_orders
    frequency = case((base.c.orders >= many, 3), (base.c.orders >= some, 2), else_=1)
    low, high = rules.monetary_spend
    monetary = case((base.c.revenue >= high, 3), (base.c.revenue >= low, 2), else_=1)
    total = recency + frequency + monetary
    mid_points, high_points = rules.tier_points
    tier = case((total >= high_points, "high"), (total >= mid_points, "mid"), else_="low")
    return select(
        base.c.user_id,
        state.label("state"),
        recency.label("recency_score"),
        frequency.label("frequency_score"),
        monetary.label("monetary_score"),
        tier.label("tier"),
        base.c.before_state,
        base.c.before_since,
        *(base.c[f"old_{name}"] for name in _KEPT),
    )


# The columns of a user's stored row that the run compares with or carries over.
_KEPT = (
    "state", "since", "prev_state", "prev_since", "tier",
    "recency_score", "frequency_score", "monetary_score",
)  # fmt: skip


def summarise(session: Session, business_date: dt.date) -> LifecycleSummary:
    by_state = dict.fromkeys(STATES, 0)
    by_tier: dict[str, dict[str, int]] = {s: dict.fromkeys(TIERS, 0) for s in STATES}
    rows = session.execute(select(LifecycleCount.state, LifecycleCount.tier, LifecycleCount.users))
    for state, tier, count in rows:
        by_state[state] += count
        by_tier[state][tier] = count
    transitions = {
        (from_state, to_state): count
        for from_state, to_state, count in session.execute(
            select(LifecycleTransition.from_state, LifecycleTransition.to_state, func.count())
            .where(LifecycleTransition.business_date == business_date)
            .group_by(LifecycleTransition.from_state, LifecycleTransition.to_state)
        )
    }
    return LifecycleSummary(business_date, by_state, by_tier, transitions)
