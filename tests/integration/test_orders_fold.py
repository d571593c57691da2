"""Orders all new to the store are added to the per-user facts (a first load, each batch of
it); a batch with an order the store has is recounted. Both ways must leave the facts and
active days a count of every stored order gives."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import threading
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select, text

from yunying.config import Settings
from yunying.sources.config import FileSource
from yunying.sources.load import load_events, load_rows, validate
from yunying.sources.pull import pull_source
from yunying.sources.write.facts import fold_new_orders
from yunying.sources.write.sqlite import NEW_ORDERS
from yunying.sources.write.text import events_text
from yunying.store.engine import is_postgres, session_scope
from yunying.store.models import ActiveDay, Order, UserFacts

Record = dict[str, object]


def _load(engine: Engine, settings: Settings, entity: str, records: list[Record]) -> None:
    rows, rejects = validate(entity, records, {}, settings.zone)  # type: ignore[arg-type]
    assert not rejects
    with session_scope(engine) as session:
        if entity == "events":
            load_events(session, events_text(rows, is_postgres(session)), ())  # type: ignore[arg-type]
        else:
            load_rows(session, entity, rows, uuid.uuid4().hex)  # type: ignore[arg-type]


def _orders(count: int, seed: int) -> list[Record]:
    """Orders of 12 users over ten days: most users order more than once a batch."""
    pick = random.Random(seed)
    return [
        {
            "order_id": f"o{seed}-{i}",
            "user_id": f"u{pick.randrange(12)}",
            "amount": f"{pick.randrange(1, 5000) / 100:.2f}",
            "status": pick.choice(["paid", "paid", "refunded", "cancelled"]),
            "created_at": f"2026-10-{pick.randrange(1, 11):02d}T{pick.randrange(24):02d}:00:00Z",
        }
        for i in range(count)
    ]


def _facts(engine: Engine) -> dict[str, tuple[object, ...]]:
    with session_scope(engine) as session:
        return {
            f.user_id: (f.order_count, f.revenue, f.last_order_at, f.last_active_at, f.event_count)
            for f in session.scalars(select(UserFacts))
        }


def _days(engine: Engine) -> set[tuple[str, dt.date]]:
    with session_scope(engine) as session:
        return {(d.user_id, d.day) for d in session.scalars(select(ActiveDay))}


def _expected(
    engine: Engine, event_at: dt.datetime | None = dt.datetime(2026, 10, 5, 9)
) -> tuple[dict[str, tuple[object, ...]], set[tuple[str, dt.date]]]:
    """The facts and days counted afresh from every stored order, plus u0's event."""
    with session_scope(engine) as session:
        orders = list(session.scalars(select(Order)))
    facts: dict[str, tuple[object, ...]] = {}
    for user in {order.user_id for order in orders}:
        mine = [order for order in orders if order.user_id == user]
        paid = [order for order in mine if order.status == "paid"]
        last = max(order.created_at for order in mine)
        facts[user] = (
            len(paid),
            sum((order.amount for order in paid), Decimal(0)),
            max((order.created_at for order in paid), default=None),
            max(last, event_at) if event_at and user == "u0" else last,
            1 if event_at and user == "u0" else 0,
        )
    days = {(order.user_id, order.day) for order in orders}
    return facts, days | ({("u0", event_at.date())} if event_at else set())


def is_postgres_engine(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def test_orders_in_several_batches_and_loaded_again_match_a_count_of_all_orders(
    engine: Engine, settings: Settings
) -> None:
    # u0 has facts (an event) before any order; its event count and activity are kept.
    opened: Record = {"event_id": "e1", "user_id": "u0", "name": "open"}
    _load(engine, settings, "events", [{**opened, "occurred_at": "2026-10-05T09:00"}])
    first, second = _orders(80, seed=1), _orders(60, seed=2)
    _load(engine, settings, "orders", first)  # every order new: added to the facts
    _load(engine, settings, "orders", second)  # new again, for the same users
    assert (_facts(engine), _days(engine)) == _expected(engine)
    # The first batch again, some orders changed: they are recounted, not added twice.
    for order in first[::3]:
        order["status"] = "refunded" if order["status"] == "paid" else "paid"
        order["amount"] = "1.23"
    _load(engine, settings, "orders", first + _orders(5, seed=3))
    assert (_facts(engine), _days(engine)) == _expected(engine)


def test_spend_is_counted_in_the_companys_money_when_pulled(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """RFM spend as the report counts money: USD at its rate, NZD (no rate) not at all, on a
    first load and when a pull changes a stored order (its user recounted)."""
    rules = replace(settings.pull_rules, currency="CNY", exchange_rates={"USD": Decimal("7.1")})
    orders = [
        ("a1", "u1", "10.00", "CNY"), ("a2", "u1", "2.00", "USD"), ("a3", "u2", "50.00", "NZD"),
        ("a4", "u2", "1.50", "CNY"), ("a5", "u3", "3.00", "USD"),
    ]  # fmt: skip

    def pull(name: str, changed: dict[str, str]) -> None:
        path = tmp_path / f"{name}.jsonl"
        lines = [
            json.dumps({"order_id": o, "user_id": u, "amount": changed.get(o, a),
                        "currency": c, "created_at": "2026-10-02T08:00:00Z"})
            for o, u, a, c in orders
        ]  # fmt: skip
        path.write_text("\n".join(lines) + "\n")
        source = FileSource(name=name, entity="orders", path=str(path))
        assert pull_source(engine, source, rules, "run").rejected == 0

    def spend() -> dict[str, Decimal]:
        with session_scope(engine) as session:
            rows = session.execute(select(UserFacts.user_id, UserFacts.revenue))
            return {user: Decimal(str(revenue)) for user, revenue in rows}

    pull("first", {})
    assert spend() == {"u1": Decimal("24.20"), "u2": Decimal("1.50"), "u3": Decimal("21.30")}
    pull("again", {"a2": "4.00"})  # a stored order changed: u1 recounted
    assert spend() == {"u1": Decimal("38.40"), "u2": Decimal("1.50"), "u3": Decimal("21.30")}


def test_sqlite_reads_only_the_batch_orders_back_not_the_table(
    engine: Engine, settings: Settings
) -> None:
    if is_postgres_engine(engine):
        pytest.skip("SQLite's plans")
    # Two orders a user, as in the demo's 30,000 users: through the index on user_id, grouping
    # by user needs no sort, and SQLite then read the whole table through it.
    orders = [
        {"order_id": f"o{i}", "user_id": f"u{i // 2}", "amount": "1.00", "created_at": "2026-10-01"}
        for i in range(2000)
    ]
    _load(engine, settings, "orders", orders)  # type: ignore[arg-type]
    with session_scope(engine) as session:
        session.execute(text("ANALYZE"))  # a store whose statistics were ever gathered
        for as_activity in (True, False):
            new_orders = NEW_ORDERS.format(spend="amount")
            for statement in fold_new_orders(new_orders, as_activity, postgres=False):
                plan = " ".join(
                    str(row[3])
                    for row in session.execute(
                        text(f"EXPLAIN QUERY PLAN {statement}"), {"before": 0, "now": ""}
                    )
                )
                assert "SEARCH orders USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
                assert "USING INDEX" not in plan and "SCAN orders" not in plan, plan


def test_a_users_facts_another_writer_adds_meanwhile_are_added_to(
    engine: Engine, settings: Settings
) -> None:
    """PostgreSQL: a pull of events adding u1's facts while a first orders load for u1 runs.
    The load waits on u1's key and adds its orders to what the other stored."""
    if not is_postgres_engine(engine):
        pytest.skip("PostgreSQL's concurrent writers (SQLite has one writer at a time)")
    with engine.connect() as other:
        pending = other.begin()
        other.execute(
            text(
                "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
                " order_count, revenue, updated_at) VALUES ('u1', '2026-10-09 08:00',"
                " '2026-10-09', 3, 0, 0, now())"
            )
        )
        committing = threading.Timer(1.0, pending.commit)
        committing.start()
        try:
            _load(
                engine,
                settings,
                "orders",
                [
                    {
                        "order_id": "o1",
                        "user_id": "u1",
                        "amount": "5.00",
                        "created_at": "2026-10-05T12:00:00Z",
                    }
                ],
            )
        finally:
            committing.join()
    assert _facts(engine)["u1"] == (
        1,
        Decimal("5.00"),
        dt.datetime(2026, 10, 5, 12),
        dt.datetime(2026, 10, 9, 8),
        3,
    )


def test_sqlite_no_other_pull_commits_between_where_the_table_ends_and_the_batch(
    engine: Engine, settings: Settings
) -> None:
    """Another pull stores order o1 (and counts it) just after this load's writer reads where
    the table ends, were it free to: the load's o1 would then be an update taken for a new
    order, and counted a second time. Holding SQLite's write lock, the writer keeps it out."""
    if is_postgres_engine(engine):
        pytest.skip("SQLite's one writer")
    other = sqlite3.connect(str(engine.url.database), timeout=0.2)
    tried: list[str] = []

    def other_pull_slips_in(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "MAX(rowid)" not in statement or tried:
            return
        try:
            other.execute(
                "INSERT INTO orders VALUES ('o1', 'u1', 5, 'CNY', 'paid',"
                " '2026-10-05 12:00:00.000000', '2026-10-05', 'other')"
            )
            other.execute(
                "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
                " order_count, revenue, last_order_at, updated_at) VALUES ('u1',"
                " '2026-10-05 12:00:00.000000', '2026-10-05', 0, 1, 5,"
                " '2026-10-05 12:00:00.000000', '2026-10-05 12:00:00.000000')"
            )
            other.execute("INSERT INTO active_days VALUES ('u1', '2026-10-05')")
            other.commit()
            tried.append("committed")
        except sqlite3.OperationalError as exc:  # locked: it waits for this load to end
            other.rollback()
            tried.append(str(exc))

    event.listen(engine, "after_cursor_execute", other_pull_slips_in)
    try:
        order = {"order_id": "o1", "user_id": "u1", "amount": "5.00"}
        _load(engine, settings, "orders", [{**order, "created_at": "2026-10-05T12:00:00Z"}])
    finally:
        event.remove(engine, "after_cursor_execute", other_pull_slips_in)
        other.close()
    assert (_facts(engine), _days(engine)) == _expected(engine, event_at=None)
    assert tried == ["database is locked"]
