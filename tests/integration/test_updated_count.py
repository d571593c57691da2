"""A whole-table source read again reports as updated only the rows that changed: a nightly
re-read of unchanged customers and orders is "0 updated", not every row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, select

from yunying.config import Settings
from yunying.sources.config import SqlSource
from yunying.sources.pull import pull_source
from yunying.store.engine import session_scope
from yunying.store.models import Order, User


def test_a_reread_whole_table_counts_only_changed_rows_as_updated(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as db:
        db.execute("CREATE TABLE customers (id TEXT, created TEXT, mail TEXT, opt TEXT)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?)",
            [(f"c{i}", "2026-10-01T08:00:00Z", f"c{i}@example.com", "yes") for i in range(30)],
        )
        db.execute("CREATE TABLE purchases (no TEXT, customer TEXT, total TEXT, at TEXT)")
        db.executemany(
            "INSERT INTO purchases VALUES (?, ?, ?, ?)",
            [(f"p{i}", f"c{i % 30}", "19.90", "2026-10-02T09:30:00+02:00") for i in range(50)],
        )
    url = f"sqlite:///{shop}"
    users = SqlSource(
        name="db-users", entity="users", url=url, table="customers",
        mapping={"user_id": "id", "signup_at": "created", "email": "mail", "email_opt_in": "opt"},
    )  # fmt: skip
    orders = SqlSource(
        name="db-orders", entity="orders", url=url, table="purchases",
        mapping={"order_id": "no", "user_id": "customer", "amount": "total", "created_at": "at"},
    )  # fmt: skip
    settings = settings.model_copy(update={"sources": [users, orders]})
    counts = []
    for _ in range(2):
        counts.append(
            [
                (s.inserted, s.updated)
                for s in (
                    pull_source(engine, settings.source(n), settings.pull_rules, "t")
                    for n in ("db-users", "db-orders")
                )
            ]
        )
    assert counts == [[(30, 0), (50, 0)], [(0, 0), (0, 0)]]

    with sqlite3.connect(shop) as db:
        db.execute("UPDATE customers SET mail = 'new@example.com' WHERE id = 'c3'")
        db.execute("UPDATE purchases SET total = '5.00' WHERE no IN ('p1', 'p2')")
    third = [
        pull_source(engine, settings.source(n), settings.pull_rules, "t")
        for n in ("db-users", "db-orders")
    ]
    assert [(s.inserted, s.updated) for s in third] == [(0, 1), (0, 2)]
    with session_scope(engine) as session:
        assert session.scalar(select(User.email).where(User.user_id == "c3")) == "new@example.com"
        assert str(session.scalar(select(Order.amount).where(Order.order_id == "p1"))) == "5.00"
