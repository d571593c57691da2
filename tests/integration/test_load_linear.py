"""First loads are linear: a batch of users or orders into an empty store costs per row what
a small batch costs, on both stores (a plan made on an empty table's statistics once joined
the first 20,000 orders to themselves in a nested loop)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.builders import company_settings, pull_all
from yunying.config import Settings
from yunying.sources.config import Entity
from yunying.sources.load import load_rows, validate
from yunying.store.engine import is_postgres, session_scope


def _records(entity: Entity, count: int, prefix: str) -> list[dict[str, object]]:
    if entity == "users":
        return [
            {"user_id": f"{prefix}{i}", "signup_at": "2026-01-01T00:00:00Z"} for i in range(count)
        ]
    return [
        {
            "order_id": f"{prefix}{i}",
            "user_id": f"{prefix}u{i // 2}",
            "amount": "12.30",
            "created_at": "2026-10-01T00:00:00Z",
        }
        for i in range(count)
    ]


def _seconds_per_row(engine: Engine, settings: Settings, entity: Entity, count: int) -> float:
    rows, _ = validate(entity, _records(entity, count, uuid.uuid4().hex[:6]), {}, settings.zone)
    started = time.perf_counter()
    with session_scope(engine) as session:
        load_rows(session, entity, rows, uuid.uuid4().hex)
    return (time.perf_counter() - started) / count


def _emptied(engine: Engine, entity: Entity) -> Engine:
    with session_scope(engine) as session:  # empty again, as a new store is
        for table in (entity, "user_facts", "active_days"):
            session.execute(text(f"DELETE FROM {table}"))
    return engine


@pytest.mark.parametrize("entity", ["users", "orders"])
def test_a_first_batch_costs_per_row_what_a_small_one_does(
    engine: Engine, settings: Settings, entity: Entity
) -> None:
    # The first batch into the new store, as a company's first pull; then small batches into
    # the emptied tables, the best of two (the machine is shared: a slow run is noise).
    large = _seconds_per_row(engine, settings, entity, 16_000)
    small = min(_seconds_per_row(_emptied(engine, entity), settings, entity, 2_000) for _ in "ab")
    # Quadratic, 8 times the rows would cost 8 times as much per row (the nested loop: ~40x).
    assert large < 4 * small, f"{large * 1e6:.0f} us/row at 16k vs {small * 1e6:.0f} at 2k"


def test_a_first_batch_of_orders_some_known_costs_per_row_what_a_small_one_does(
    engine: Engine, settings: Settings
) -> None:
    # One order of each batch already stored and, on PostgreSQL, analyzed as autovacuum may
    # have: the batch is upserted and its users' orders recounted, a statement planned on
    # the young table's statistics.
    def seconds_per_row(count: int) -> float:
        records = _records("orders", count, uuid.uuid4().hex[:6])
        rows, _ = validate("orders", records, {}, settings.zone)
        with session_scope(engine) as session:
            load_rows(session, "orders", rows[:1], uuid.uuid4().hex)
            if is_postgres(session):
                session.execute(text("ANALYZE orders"))
        started = time.perf_counter()
        with session_scope(engine) as session:
            load_rows(session, "orders", rows, uuid.uuid4().hex)
        return (time.perf_counter() - started) / count

    large = seconds_per_row(16_000)
    small = min(seconds_per_row(2_000) for _ in "ab" if _emptied(engine, "orders"))
    assert large < 4 * small, f"{large * 1e6:.0f} us/row at 16k vs {small * 1e6:.0f} at 2k"


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_first_pull_leaves_the_tables_analyzed_for_the_lifecycle(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # The lifecycle and reports run right after the night's pull, before autovacuum would.
    pull_all(engine, company_settings(settings, tmp_path, users=200))
    with session_scope(engine) as session:
        counted = dict(
            session.execute(
                text(
                    "SELECT relname, reltuples FROM pg_class"
                    " WHERE relname IN ('users', 'orders') AND relnamespace = CAST("
                    " current_schema() AS regnamespace)"
                )
            ).all()
        )
        stored = {t: session.scalar(text(f"SELECT COUNT(*) FROM {t}")) for t in counted}
        sampled = set(
            session.execute(
                text(
                    "SELECT tablename, attname FROM pg_stats"
                    " WHERE tablename IN ('users', 'orders') AND schemaname = current_schema()"
                )
            ).all()
        )
    assert counted == {table: float(rows) for table, rows in stored.items()} and len(counted) == 2
    # Only the columns rows are found and joined by: sampling every text column costs as much
    # as upserting the rows.
    assert sampled == {("users", "user_id"), ("orders", "user_id"), ("orders", "status")}
