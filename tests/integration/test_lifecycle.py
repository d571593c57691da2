"""Lifecycle states, tiers and transitions against a plain-Python reference computation."""

import datetime as dt
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.builders import company_settings, load_records, pull_all
from yunying.config import LifecycleSettings, Settings
from yunying.errors import PermanentError
from yunying.lifecycle.states import compute_lifecycle
from yunying.sources.config import FIELDS
from yunying.sources.load import load_rows, validate
from yunying.sources.pull import pull_source
from yunying.sources.validate.rows import EventRow
from yunying.store.engine import session_scope
from yunying.store.models import Event, LifecycleState, LifecycleTransition, Order, User

RULES_ZONE = ZoneInfo("Asia/Shanghai")
# Cut points differ from the defaults, so the test proves they are read from the settings.
RULES = LifecycleSettings(
    new_days=7,
    active_days=7,
    churn_days=30,
    returned_days=7,
    recency_days=(5, 20),
    frequency_orders=(1, 3),
    monetary_spend=(50, 300),
    tier_points=(6, 8),
)
FIRST = dt.date(2026, 10, 20)
LAST = dt.date(2026, 11, 3)  # spans the US DST change on 2026-11-01


def _utc(local: str, zone: str) -> str:
    moment = dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(dt.UTC).isoformat()


def hard_cases(zone: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Users on the thresholds, around local midnight, and a user who returns then goes silent."""
    users, events = [], []

    def user(uid: str, signup: str) -> None:
        users.append({"user_id": uid, "signup_at": _utc(signup, zone), "locale": "en"})

    def active(uid: str, local: str) -> None:
        events.append(
            {
                "event_id": f"{uid}-{local}",
                "user_id": uid,
                "name": "app_open",
                "occurred_at": _utc(local, zone),
            }
        )

    user("h-no-events", "2026-09-01T10:00:00")
    # Never active: the signup day is what crosses the recency and churn thresholds.
    for days_before in (1, 15, 25):
        user(f"h-quiet-{days_before}", f"{FIRST - dt.timedelta(days=days_before)}T10:00:00")
    for offset in (6, 7, 30, 31):  # active/silent and silent/churned edges on FIRST
        uid = f"h-edge-{offset}"
        user(uid, "2026-08-01T10:00:00")
        active(uid, f"{FIRST - dt.timedelta(days=offset)}T12:00:00")
    user("h-midnight", "2026-08-01T10:00:00")
    active("h-midnight", f"{FIRST - dt.timedelta(days=7)}T23:59:59")  # local day matters
    active("h-midnight", f"{FIRST - dt.timedelta(days=6)}T00:00:01")
    user("h-boomerang", "2026-08-01T10:00:00")
    active("h-boomerang", "2026-09-25T09:00:00")  # silent by FIRST
    active("h-boomerang", "2026-10-22T09:00:00")  # returns
    user("h-dst", "2026-08-01T10:00:00")
    active("h-dst", "2026-11-01T01:30:00")  # the repeated hour in Los Angeles
    user("h-new", f"{FIRST + dt.timedelta(days=3)}T08:00:00")
    return users, events


def reference_states(
    users: dict[str, tuple[dt.date, list[tuple[dt.date, float]]]],
    active_days: dict[str, set[dt.date]],
    dates: list[dt.date],
) -> list[dict[str, tuple[str, str]]]:
    """Straightforward per-user rules; returns {user: (state, tier)} per date."""
    results = []
    previous: dict[str, tuple[str, dt.date]] = {}
    for day in dates:
        today: dict[str, tuple[str, str]] = {}
        for uid, (signup, paid) in users.items():
            if signup > day:
                continue
            # RFM as of the date: only the orders placed up to it.
            orders = sum(1 for placed, _ in paid if placed <= day)
            revenue = sum(amount for placed, amount in paid if placed <= day)
            seen = [d for d in active_days.get(uid, ()) if d <= day]
            reference = max(seen) if seen else signup
            idle = (day - reference).days
            prev_state, prev_since = previous.get(uid, (None, None))
            if (day - signup).days < RULES.new_days:
                state = "new"
            elif idle < RULES.active_days:
                came_back = prev_state in ("silent", "churned")
                still_returning = (
                    prev_state == "returned" and (day - prev_since).days < RULES.returned_days
                )
                state = "returned" if came_back or still_returning else "active"
            elif idle < RULES.churn_days:  # half-open: idle exactly churn_days is churned
                state = "silent"
            else:
                state = "churned"
            recency = 3 if idle < 5 else 2 if idle < 20 else 1
            frequency = 3 if orders >= 3 else 2 if orders >= 1 else 1
            monetary = 3 if revenue >= 300 else 2 if revenue >= 50 else 1
            total = recency + frequency + monetary
            tier = "high" if total >= 8 else "mid" if total >= 6 else "low"
            today[uid] = (state, tier)
            since = prev_since if state == prev_state else day
            previous[uid] = (state, since)
        results.append(today)
    return results


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/Los_Angeles"])
@pytest.mark.parametrize("nightly", [False, True], ids=["backfill", "nightly"])
def test_states_tiers_and_transitions_match_reference(
    engine: Engine, settings: Settings, tmp_path: Path, zone: str, nightly: bool
) -> None:
    """`backfill`: every event is in the store before the first date, so each run looks at
    every user; `nightly`: each day's events arrive before that day's run, so runs after the
    first look only at the users who can have changed."""
    settings = company_settings(settings.model_copy(update={"timezone": zone}), tmp_path, users=250)
    users, events = hard_cases(zone)
    arriving: dict[str, list[EventRow]] = defaultdict(list)  # local day -> events
    if nightly:
        for source in settings.sources:
            if source.entity != "events":
                pull_source(engine, settings.source(source.name), settings.pull_rules, "test")
        with sqlite3.connect(tmp_path / "source.db") as source_db:
            company = source_db.execute("SELECT event_uuid, uid, type, ts FROM src_events")
            events += [dict(zip(FIELDS["events"], row, strict=True)) for row in company]
        rows, _ = validate("events", events, {}, settings.zone)  # malformed ones set aside
        for row in rows:
            arriving[max(row[4], str(FIRST))].append(row)
        events = []
    else:
        pull_all(engine, settings)
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)

    with session_scope(engine) as session:
        user_rows = session.execute(select(User.user_id, User.signup_at)).all()
        event_rows = session.execute(select(Event.user_id, Event.occurred_at)).all()
        order_rows = session.execute(
            select(Order.user_id, Order.amount, Order.created_at).where(Order.status == "paid")
        ).all()
    zone_info = ZoneInfo(zone)

    def local(moment: dt.datetime) -> dt.date:
        return moment.replace(tzinfo=dt.UTC).astimezone(zone_info).date()

    spend: dict[str, list[tuple[dt.date, float]]] = defaultdict(list)
    for uid, amount, placed in order_rows:
        spend[uid].append((local(placed), float(amount)))
    reference_users = {uid: (local(s), spend[uid]) for uid, s in user_rows}
    seen: dict[str, set[dt.date]] = defaultdict(set)
    for uid, moment in event_rows:
        seen[uid].add(local(moment))
    with session_scope(engine) as session:  # a placed order is activity, whatever its status
        for uid, moment in session.execute(select(Order.user_id, Order.created_at)):
            seen[uid].add(local(moment))
    for row in (row for day_rows in arriving.values() for row in day_rows):
        seen[row[1]].add(dt.date.fromisoformat(row[4]))

    dates = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    expected = reference_states(reference_users, seen, dates)
    previous: dict[str, str] = {}
    for day, want in zip(dates, expected, strict=True):
        with session_scope(engine) as session:
            load_rows(session, "events", arriving.pop(str(day), []), "test")
            summary = compute_lifecycle(session, day, RULES)
            got = {
                uid: (state, tier)
                for uid, state, tier in session.execute(
                    select(LifecycleState.user_id, LifecycleState.state, LifecycleState.tier)
                )
            }
            moved = {
                uid: (before, after)
                for uid, before, after in session.execute(
                    select(
                        LifecycleTransition.user_id,
                        LifecycleTransition.from_state,
                        LifecycleTransition.to_state,
                    ).where(LifecycleTransition.business_date == day)
                )
            }
        assert got == want, f"states differ on {day}"
        counted = {(st, t): n for st, tiers in summary.by_tier.items() for t, n in tiers.items()}
        assert {k: n for k, n in counted.items() if n} == Counter(want.values()), day
        want_moves = {
            uid: (previous.get(uid), s) for uid, (s, _) in want.items() if previous.get(uid) != s
        }
        assert moved == want_moves, f"transitions differ on {day}"
        previous = {uid: s for uid, (s, _) in want.items()}

    first_day = expected[0]
    assert first_day["h-no-events"][0] == "churned"
    assert [first_day[f"h-edge-{n}"][0] for n in (6, 7, 30, 31)] == [
        "active",
        "silent",
        "churned",
        "churned",
    ]
    assert first_day["h-midnight"][0] == "active"
    states_of_boomerang = [day["h-boomerang"][0] for day in expected]
    assert "returned" in states_of_boomerang and states_of_boomerang[-1] == "silent"
    assert {s for day in expected for s, _ in day.values()} == {
        "new",
        "active",
        "returned",
        "silent",
        "churned",
    }


def test_rerun_changes_nothing_and_an_earlier_date_names_the_recompute(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = company_settings(settings, tmp_path, users=150)
    pull_all(engine, settings)
    day = dt.date(2026, 10, 30)
    snapshot = []
    for _ in range(2):
        with session_scope(engine) as session:
            summary = compute_lifecycle(session, day, RULES)
            rows = session.execute(
                select(LifecycleState).order_by(LifecycleState.user_id)
            ).scalars()
            snapshot.append(([(r.user_id, r.state, r.since, r.prev_state) for r in rows], summary))
    assert snapshot[0] == snapshot[1]
    with session_scope(engine) as session, pytest.raises(PermanentError, match="--from"):
        compute_lifecycle(session, day - dt.timedelta(days=1), RULES)


def test_late_events_are_counted_on_the_next_run(engine: Engine, settings: Settings) -> None:
    zone = settings.zone
    with session_scope(engine) as session:
        load_records(
            session, zone, "users", [{"user_id": "late", "signup_at": "2026-08-01T00:00:00Z"}]
        )
        load_records(
            session,
            zone,
            "events",
            [
                {
                    "event_id": "l-1",
                    "user_id": "late",
                    "name": "app_open",
                    "occurred_at": "2026-10-01T04:00:00Z",
                }
            ],
        )
        assert compute_lifecycle(session, dt.date(2026, 10, 20), RULES).by_state["silent"] == 1
    with session_scope(engine) as session:  # an event from yesterday arrives a day late
        load_records(
            session,
            zone,
            "events",
            [
                {
                    "event_id": "l-2",
                    "user_id": "late",
                    "name": "app_open",
                    "occurred_at": "2026-10-20T04:00:00Z",
                }
            ],
        )
        summary = compute_lifecycle(session, dt.date(2026, 10, 21), RULES)
    assert summary.by_state["returned"] == 1
    assert summary.transitions == {("silent", "returned"): 1}


def test_a_new_store_catches_up_and_missed_nights_are_filled(engine: Engine) -> None:
    from yunying.lifecycle.states import dates_to_compute

    day = dt.date(2026, 11, 10)
    with session_scope(engine) as session:
        load_records(
            session, RULES_ZONE, "users", [{"user_id": "a", "signup_at": "2026-01-01T00:00:00Z"}]
        )
        assert dates_to_compute(session, day, 5) == [
            day - dt.timedelta(days=n) for n in (4, 3, 2, 1, 0)
        ]
        compute_lifecycle(session, day - dt.timedelta(days=3), RULES)
        assert dates_to_compute(session, day, 5) == [day - dt.timedelta(days=n) for n in (2, 1, 0)]
        assert dates_to_compute(session, day - dt.timedelta(days=3), 5) == [
            day - dt.timedelta(days=3)
        ]


def test_a_backfilled_dates_spend_is_in_the_companys_money(
    engine: Engine, settings: Settings
) -> None:
    """Both users ordered again after the date, so their spend then is read from orders:
    20 USD at 7.1 is 142 (monetary 2, from 100); 150 NZD, with no rate, counts nothing."""
    from decimal import Decimal

    from yunying.reports.effects import Money

    day = dt.date(2026, 10, 10)
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", [
            {"user_id": u, "signup_at": "2026-09-01T00:00:00Z"} for u in ("usd", "nzd")
        ])  # fmt: skip
        load_records(session, settings.zone, "orders", [
            {"order_id": f"{u}-then", "user_id": u, "amount": amount, "currency": u.upper(),
             "created_at": "2026-10-05T04:00:00Z"}
            for u, amount in (("usd", "20"), ("nzd", "150"))
        ] + [
            {"order_id": f"{u}-later", "user_id": u, "amount": "1", "currency": "CNY",
             "created_at": "2026-10-13T04:00:00Z"}
            for u in ("usd", "nzd")
        ])  # fmt: skip
        money = Money("CNY", (("USD", Decimal("7.1")),))
        compute_lifecycle(session, day, settings.lifecycle, money=money)
        rows = session.execute(select(LifecycleState.user_id, LifecycleState.monetary_score))
        scores = {user: score for user, score in rows}
    assert scores == {"usd": 2, "nzd": 1}
