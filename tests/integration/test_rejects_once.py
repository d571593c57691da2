"""A rejected row read again is set aside only once: a whole-table source (as `yunying init`
writes them, without `incremental_column`) reads its bad rows on every pull. Stores
migrated from before keep one of each."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select, text

from cli.main import main
from yunying.config import Settings
from yunying.sources.write.marks import raw_hash
from yunying.store.engine import session_scope
from yunying.store.migrate import alembic_config, upgrade
from yunying.store.models import RejectedRecord


def _rejected(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(RejectedRecord.source, RejectedRecord.raw).order_by(RejectedRecord.id)
        )
        return [(source, raw) for source, raw in rows]


@pytest.mark.usefixtures("prefect")
def test_a_whole_table_sources_bad_rows_are_set_aside_once(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as db:
        db.execute("CREATE TABLE customers (id TEXT, created TEXT)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?)",
            [(f"c{i}", "2026-10-01T00:00:00Z") for i in range(20)]
            + [(f"b{i}", "not a time") for i in range(3)]
            + [("b0", "not a time either")],  # same id, another row: its own reject
        )
    source = {
        "kind": "sql", "name": "db-users", "entity": "users", "url": f"sqlite:///{shop}",
        "table": "customers", "mapping": {"user_id": "id", "signup_at": "created"},
    }  # fmt: skip
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps([source]))
    for _ in range(3):
        assert main(["run", "pull"]) == 0
    capsys.readouterr()
    stored = _rejected(engine)
    assert len(stored) == len(set(stored)) == 4
    # Seen without SQL, by reason, the commonest first.
    assert main(["rejects"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[:2] == [
        "source db-users: 4 row(s) set aside",
        "  4 x signup_at: … is not an ISO 8601 time (like 2026-11-01T08:30:00+08:00; without"
        " an offset, in the source's naive_times_in (else UTC))",
    ]
    assert shown[2].startswith("      e.g. row b") and "not a time" in shown[2]
    assert main(["rejects", "nosuch"]) == 2


def test_the_migration_keeps_the_first_of_each_rejected_row(store_url: str, engine: Engine) -> None:
    command.downgrade(alembic_config(store_url), "0014_rejects_key-1")  # before the key
    now = dt.datetime(2026, 11, 1)
    raws = ['{"id": "b1", "名": "坏"}', '{"id": "b2"}', '{"id": "b1", "名": "坏"}', '{"id": "b2"}']
    with session_scope(engine) as session:
        for run, raw in enumerate(raws * 2):  # pulls before the key stored each row again
            for source in ("db-users", "db-orders"):
                session.execute(
                    text(
                        "INSERT INTO rejected_records (source, run_id, raw, reason, created_at)"
                        " VALUES (:source, :run, :raw, 'signup_at: not a time', :now)"
                    ),
                    {"source": source, "run": str(run), "raw": raw, "now": now},
                )
    upgrade(store_url)
    with session_scope(engine) as session:
        kept = session.execute(
            select(RejectedRecord.source, RejectedRecord.run_id, RejectedRecord.raw_hash).order_by(
                RejectedRecord.source, RejectedRecord.run_id
            )
        ).all()
    assert [(source, run) for source, run, _ in kept] == [
        ("db-orders", "0"), ("db-orders", "1"), ("db-users", "0"), ("db-users", "1")
    ]  # fmt: skip
    # Keyed as a pull keys them, so the same rows read again are not stored again.
    assert {key for _, _, key in kept} == {raw_hash(raws[0]), raw_hash(raws[1])}
