"""Errors a new user meets when pointing Yunying at their data: each says what to do, and
nothing is stored from what it refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from yunying.config import Settings, load_settings
from yunying.errors import ConfigError, PermanentError
from yunying.sources.config import FileSource, SqlSource
from yunying.sources.pull import pull_source
from yunying.store.engine import session_scope
from yunying.store.models import Order, RejectedRecord, SourceWatermark, User


def _stored(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _customers(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id TEXT, created TEXT)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?)",
            [(f"c{i}", "2026-10-01T00:00:00Z") for i in range(30)],
        )


def test_a_mapping_to_a_missing_column_is_refused_before_anything_loads(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _customers(tmp_path / "shop.db")
    source = SqlSource(
        name="shop-users",
        entity="users",
        url=f"sqlite:///{tmp_path / 'shop.db'}",
        table="customers",
        mapping={"user_id": "id", "signup_at": "created_at"},  # the column is `created`
    )
    settings = settings.model_copy(update={"sources": [source]})
    with pytest.raises(ConfigError) as refused:
        pull_source(engine, settings.source("shop-users"), settings.pull_rules, "test")
    message = str(refused.value)
    assert "mapping signup_at = 'created_at'" in message
    assert "Its columns: id, created" in message
    assert _stored(engine, User) == _stored(engine, RejectedRecord) == 0
    assert _stored(engine, SourceWatermark) == 0


def test_an_unmapped_required_field_names_the_mapping_to_add(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _customers(tmp_path / "shop.db")
    source = SqlSource(
        name="shop-users", entity="users", url=f"sqlite:///{tmp_path / 'shop.db'}",
        table="customers", mapping={"signup_at": "created"},
    )  # fmt: skip
    settings = settings.model_copy(update={"sources": [source]})
    with pytest.raises(ConfigError, match=r"user_id: the source has no column 'user_id'; map it"):
        pull_source(engine, settings.source("shop-users"), settings.pull_rules, "test")


def test_a_missing_sqlite_source_file_is_file_not_found_and_not_created(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such.db"
    source = SqlSource(name="gone", entity="users", url=f"sqlite:///{missing}", table="customers")
    settings = settings.model_copy(update={"sources": [source]})
    with pytest.raises(ConfigError, match="file not found") as refused:
        pull_source(engine, settings.source("gone"), settings.pull_rules, "test")
    assert str(missing) in str(refused.value)
    assert isinstance(refused.value, PermanentError)  # tasks do not retry it
    assert not missing.exists()


def test_a_batch_mostly_rejected_stops_the_pull_before_storing_it(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "orders.jsonl"
    good = [
        {"order_id": f"o{i}", "user_id": "u", "amount": "1.00", "created_at": "2026-10-01T00:00Z"}
        for i in range(40)
    ]
    bad = [
        {"order_id": f"x{i}", "user_id": "u", "amount": "lots", "created_at": "2026-10-01T00:00Z"}
        for i in range(160)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in good + bad))
    source = FileSource(name="orders", entity="orders", path=str(path))
    settings = settings.model_copy(update={"sources": [source]})
    with pytest.raises(PermanentError) as stopped:
        pull_source(engine, settings.source("orders"), settings.pull_rules, "test")
    message = str(stopped.value)
    assert "160 of 200 records of a batch rejected" in message
    assert "max_rejected_share" in message and "amount" in message
    assert _stored(engine, Order) == _stored(engine, RejectedRecord) == 0
    # Raised, the same batch loads its good rows and sets the bad ones aside.
    settings = settings.model_copy(update={"max_rejected_share": 0.9})
    stats = pull_source(engine, settings.source("orders"), settings.pull_rules, "test")
    assert (stats.inserted, stats.rejected) == (40, 160)


def test_a_bad_source_setting_names_a_variable_that_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "YUNYING_SOURCES", json.dumps([{"kind": "sql", "name": "db", "entity": "users"}])
    )
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert "sources.0.sql.url" in message and "JSON in YUNYING_SOURCES)" in message
    assert "YUNYING_SOURCES__" not in message


def test_json_records_may_leave_out_an_optional_mapped_field_not_a_required_one(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text(
        "".join(
            json.dumps({"uid": f"u{i}", "signup_at": "2026-10-01T00:00:00Z"}) + "\n"
            for i in range(3)
        )
    )
    optional = FileSource(
        name="users", entity="users", path=str(path), mapping={"user_id": "uid", "phone": "mobile"}
    )
    settings = settings.model_copy(update={"sources": [optional]})
    assert pull_source(engine, settings.source("users"), settings.pull_rules, "test").inserted == 3
    required = optional.model_copy(update={"name": "users2", "mapping": {"user_id": "id"}})
    settings = settings.model_copy(update={"sources": [required]})
    with pytest.raises(ConfigError, match="mapping user_id = 'id'.*Its columns: uid, signup_at"):
        pull_source(engine, settings.source("users2"), settings.pull_rules, "test")
