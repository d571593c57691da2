"""The activity warning says what holds: with users stored and the orders source refused (a
mapping to a missing column), it names the missing orders, not a setting left at its default."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cli.main import main
from yunying.config import Settings


@pytest.mark.usefixtures("prefect")
def test_a_refused_orders_source_is_not_called_orders_not_being_activity(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as db:
        db.execute("CREATE TABLE customers (id TEXT, created TEXT)")
        db.execute("INSERT INTO customers VALUES ('c1', '2026-10-01T00:00:00Z')")
        db.execute("CREATE TABLE purchases (no TEXT, customer TEXT, total TEXT, at TEXT)")
        db.execute("INSERT INTO purchases VALUES ('p1', 'c1', '9.90', '2026-10-02T00:00:00Z')")
    url = f"sqlite:///{shop}"
    sources = [
        {"kind": "sql", "name": "db-users", "entity": "users", "url": url, "table": "customers",
         "mapping": {"user_id": "id", "signup_at": "created"}},
        {"kind": "sql", "name": "db-orders", "entity": "orders", "url": url, "table": "purchases",
         "mapping": {"order_id": "no", "user_id": "customer", "amount": "totl",
                     "created_at": "at"}},
    ]  # fmt: skip
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps(sources))
    assert main(["run", "pull"]) == 2
    said = capsys.readouterr().err + caplog.text
    assert "mapping amount = 'totl'" in said
    assert "no events and no orders" in said
    assert "orders_are_activity = false" not in said
