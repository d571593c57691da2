"""Lifecycle settings that change, ranges recomputed on a store with later dates, and
orders as activity, each against an independent computation."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import Engine, select

from tests.builders import load_records
from tests.integration.test_lifecycle import RULES, reference_states
from yunying.config import LifecycleSettings, Settings
from yunying.lifecycle.states import compute_lifecycle, plan_dates
from yunying.sources.load import load_rows, validate
from yunying.store.engine import session_scope
from yunying.store.models import ActiveDay, LifecycleState, LifecycleTransition

D = dt.date(2026, 10, 31)


def _users_and_events(count: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Users signed up long ago, each last seen a different number of days before D (some
    never seen, none on D itself), and a few new ones."""
    users, events = [], []
    for i in range(count):
        uid = f"u{i:04d}"
        signup = D - dt.timedelta(days=200 if i % 10 else i % 5)
        users.append({"user_id": uid, "signup_at": f"{signup}T02:00:00Z"})
        if i % 7:
            for back in {1 + i % 61, 1 + (i * 3) % 90}:
                day = D - dt.timedelta(days=back)
                events.append(
                    {
                        "event_id": f"{uid}-{back}",
                        "user_id": uid,
                        "name": "app_open",
                        "occurred_at": f"{day}T03:00:00Z",
                    }
                )
    return users, events


def _fresh_state(
    signup: dt.date, last_seen: dt.date | None, day: dt.date, r: LifecycleSettings
) -> str:
    """The state a first computation gives (no earlier state, so never `returned`)."""
    idle = (day - (last_seen or signup)).days
    if (day - signup).days < r.new_days:
        return "new"
    if idle < r.active_days:
        return "active"
    return "silent" if idle < r.churn_days else "churned"


def test_changed_thresholds_recompute_every_user(engine: Engine, settings: Settings) -> None:
    users, events = _users_and_events(400)
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        first = compute_lifecycle(session, D - dt.timedelta(days=1), RULES)
        assert first.recomputed_all is None
    narrower = RULES.model_copy(update={"active_days": 3, "churn_days": 14})
    with session_scope(engine) as session:
        summary = compute_lifecycle(session, D, narrower)
        got = dict(session.execute(select(LifecycleState.user_id, LifecycleState.state)).all())
    assert summary.recomputed_all is not None and "settings changed" in summary.recomputed_all
    last_seen: dict[str, dt.date] = {}
    for event in events:
        day = dt.date.fromisoformat(str(event["occurred_at"])[:10])
        uid = str(event["user_id"])
        last_seen[uid] = max(day, last_seen.get(uid, day))
    want = {
        str(u["user_id"]): _fresh_state(
            dt.date.fromisoformat(str(u["signup_at"])[:10]),
            last_seen.get(str(u["user_id"])),
            D,
            narrower,
        )
        for u in users
    }
    assert got == want
    assert sum(summary.by_state.values()) == len(users)
    # The same settings again: back to looking only at the users who can have changed.
    with session_scope(engine) as session:
        assert compute_lifecycle(session, D, narrower).recomputed_all is None


def _run(engine: Engine, dates: list[dt.date], recompute: bool = False) -> None:
    for i, day in enumerate(dates):
        with session_scope(engine) as session:
            compute_lifecycle(session, day, RULES, recompute and i == 0)


def test_a_range_recomputed_on_a_store_with_later_dates_matches_a_fresh_run(
    engine: Engine, settings: Settings
) -> None:
    """Late events for days already computed, then `--from` a date inside the computed range
    to a date before its end: every date from there on equals a run from scratch."""
    users, events = _users_and_events(300)
    late = [e for e in events if str(e["occurred_at"])[:10] == str(D - dt.timedelta(days=12))]
    on_time = [e for e in events if e not in late]
    assert late
    first = D - dt.timedelta(days=25)
    dates = [first + dt.timedelta(days=i) for i in range(26)]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", on_time)
    _run(engine, dates)
    with session_scope(engine) as session:
        load_records(session, settings.zone, "events", late)
        planned, recompute, _ = plan_dates(
            session, D - dt.timedelta(days=5), D - dt.timedelta(days=15), 14
        )
    assert planned == dates[10:] and recompute  # on to D, the latest computed date
    _run(engine, planned, recompute)

    seen: dict[str, set[dt.date]] = defaultdict(set)
    for event in events:
        seen[str(event["user_id"])].add(dt.date.fromisoformat(str(event["occurred_at"])[:10]))
    reference_users = {
        str(u["user_id"]): (dt.date.fromisoformat(str(u["signup_at"])[:10]), []) for u in users
    }
    expected = reference_states(reference_users, seen, dates)  # type: ignore[arg-type]
    with session_scope(engine) as session:
        states = dict(session.execute(select(LifecycleState.user_id, LifecycleState.state)).all())
        moves = defaultdict(dict)
        for day, uid, before, after in session.execute(
            select(
                LifecycleTransition.business_date,
                LifecycleTransition.user_id,
                LifecycleTransition.from_state,
                LifecycleTransition.to_state,
            )
        ):
            moves[day][uid] = (before, after)
    assert states == {uid: state for uid, (state, _) in expected[-1].items()}
    previous: dict[str, str] = {}
    for day, want in zip(dates, expected, strict=True):
        want_moves = {
            uid: (previous.get(uid), s) for uid, (s, _) in want.items() if previous.get(uid) != s
        }
        assert moves.get(day, {}) == want_moves, f"transitions differ on {day}"
        previous = {uid: s for uid, (s, _) in want.items()}


def test_orders_alone_make_users_active(engine: Engine, settings: Settings) -> None:
    """A store with users and orders but no events: an order's local day is an active day,
    whatever the order's status; with the setting off, orders are not activity."""
    users = [
        {"user_id": f"o{i}", "signup_at": "2026-06-01T00:00:00Z", "timezone": "America/New_York"}
        for i in range(4)
    ]
    orders = [  # o0 bought yesterday, o1 (refunded) 10 days ago, o2 40 days ago, o3 never
        {"order_id": "a", "user_id": "o0", "amount": "12.50", "status": "paid",
         "created_at": "2026-10-31T03:00:00Z"},
        {"order_id": "b", "user_id": "o1", "amount": "3", "status": "refunded",
         "created_at": "2026-10-21T03:00:00Z"},
        {"order_id": "c", "user_id": "o2", "amount": "9", "status": "paid",
         "created_at": "2026-09-21T03:00:00Z"},
    ]  # fmt: skip
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "orders", orders)
        summary = compute_lifecycle(session, D, RULES)
        states = dict(session.execute(select(LifecycleState.user_id, LifecycleState.state)).all())
        days = set(session.execute(select(ActiveDay.user_id, ActiveDay.day)).tuples())
    assert states == {"o0": "active", "o1": "silent", "o2": "churned", "o3": "churned"}
    assert summary.by_state["active"] == 1
    assert days == {
        ("o0", dt.date(2026, 10, 31)),
        ("o1", dt.date(2026, 10, 21)),
        ("o2", dt.date(2026, 9, 21)),
    }


def test_orders_are_not_activity_when_turned_off(engine: Engine, settings: Settings) -> None:
    rows, _ = validate(
        "orders",
        [{"order_id": "a", "user_id": "x", "amount": "1", "created_at": "2026-10-31T03:00:00Z"}],
        {},
        settings.zone,
    )
    with session_scope(engine) as session:
        load_rows(session, "orders", rows, "l1", orders_are_activity=False)
        assert session.scalar(select(ActiveDay.user_id)) is None
