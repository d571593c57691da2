"""What the faster users and orders loads keep: an orders load recounts paid orders and spend
and folds the orders into last activity in one upsert (as the two statements it replaced
did), and a first users load still leaves PostgreSQL knowing the table's size."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, text

from yunying.config import Settings
from yunying.sources.config import Entity
from yunying.sources.load import load_events, load_rows, validate
from yunying.sources.write.text import events_text
from yunying.store.engine import is_postgres, session_scope
from yunying.store.models import ActiveDay, UserFacts


def _load(
    engine: Engine,
    settings: Settings,
    entity: Entity,
    records: list[dict[str, object]],
    as_activity: bool = True,
) -> None:
    rows, rejects = validate(entity, records, {}, settings.zone)
    assert not rejects
    with session_scope(engine) as session:
        if entity == "events":
            load_events(session, events_text(rows, is_postgres(session)), ())
        else:
            load_rows(session, entity, rows, uuid.uuid4().hex, orders_are_activity=as_activity)


def _order(
    order_id: str, user: str, amount: str, at: str, status: str = "paid"
) -> dict[str, object]:
    return {
        "order_id": order_id,
        "user_id": user,
        "amount": amount,
        "created_at": at,
        "status": status,
    }


def _facts(engine: Engine) -> dict[str, tuple[object, ...]]:
    with session_scope(engine) as session:
        return {
            f.user_id: (f.order_count, f.revenue, f.last_order_at, f.last_active_at, f.event_count)
            for f in session.scalars(select(UserFacts))
        }


def _days(engine: Engine) -> set[tuple[str, dt.date]]:
    with session_scope(engine) as session:
        return {(d.user_id, d.day) for d in session.scalars(select(ActiveDay))}


def test_orders_fold_counts_and_activity_without_losing_later_events(
    engine: Engine, settings: Settings
) -> None:
    # u1 was active after its orders (an event): its last activity stays the event's.
    _load(
        engine,
        settings,
        "events",
        [{"event_id": "e1", "user_id": "u1", "name": "open", "occurred_at": "2026-10-09T08:00"}],
    )
    _load(
        engine,
        settings,
        "orders",
        [
            _order("o1", "u1", "10.00", "2026-10-01T12:00:00Z"),
            _order("o2", "u1", "5.50", "2026-10-03T12:00:00Z", status="refunded"),
            _order("o3", "u2", "7.25", "2026-10-02T12:00:00Z"),
        ],
    )
    # A later load of u2's order: counts are recounted over all of u2's paid orders.
    _load(engine, settings, "orders", [_order("o4", "u2", "1.00", "2026-10-05T12:00:00Z")])
    facts = _facts(engine)
    assert facts["u1"] == (
        1,
        Decimal("10.00"),
        dt.datetime(2026, 10, 1, 12),
        dt.datetime(2026, 10, 9, 8),
        1,
    )
    assert facts["u2"] == (
        2,
        Decimal("8.25"),
        dt.datetime(2026, 10, 5, 12),
        dt.datetime(2026, 10, 5, 12),
        0,
    )
    # A refunded order is activity too (the customer was there), as it was before.
    assert {("u1", dt.date(2026, 10, 3)), ("u2", dt.date(2026, 10, 5))} <= _days(engine)


def test_orders_not_activity_count_but_leave_activity_alone(
    engine: Engine, settings: Settings
) -> None:
    _load(
        engine,
        settings,
        "orders",
        [_order("o1", "u1", "10.00", "2026-10-01T12:00:00Z")],
        as_activity=False,
    )
    assert _facts(engine)["u1"] == (1, Decimal("10.00"), dt.datetime(2026, 10, 1, 12), None, 0)
    assert _days(engine) == set()


def test_an_orders_day_another_writer_adds_meanwhile_is_kept_once(
    engine: Engine, settings: Settings
) -> None:
    """PostgreSQL looks the orders' new (user, day) pairs up instead of using ON CONFLICT: a
    pair another writer adds meanwhile fails the insert on the key, which then runs again."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's look-up of new active days")
    day = dt.date(2026, 10, 5)
    with engine.connect() as other:
        pending = other.begin()
        other.execute(
            text("INSERT INTO active_days (user_id, day) VALUES ('u1', :day)"), {"day": day}
        )
        # Committed while the load's insert waits on the pair's key: after its look-up.
        committing = threading.Timer(1.0, pending.commit)
        committing.start()
        try:
            _load(
                engine,
                settings,
                "orders",
                [
                    _order("o1", "u1", "5.00", "2026-10-05T12:00:00Z"),
                    _order("o2", "u2", "7.00", "2026-10-05T12:00:00Z"),
                ],
            )
        finally:
            committing.join()
    assert _days(engine) == {("u1", day), ("u2", day)}
    facts = _facts(engine)
    assert (facts["u1"][0], facts["u1"][1]) == (1, Decimal("5.00"))
    assert (facts["u2"][0], facts["u2"][1]) == (1, Decimal("7.00"))
