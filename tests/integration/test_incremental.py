"""Incremental reads: each pull reads what is new, and not everything again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, func, select

from tests.builders import company_settings
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.demo.sources import EVENT_MAPPING
from yunying.sources.config import HttpSource, SqlSource
from yunying.sources.pull import pull_source
from yunying.store.engine import session_scope
from yunying.store.models import Event, RejectedRecord


def test_page_number_pagination_resumes_at_its_last_page(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = company_settings(settings, tmp_path, users=60)
    with LocalServer(source_db=tmp_path / "source.db") as server:
        source = HttpSource(
            name="api", entity="events", url=server.url + "/events/pages",
            pagination="page", items_path="data.items", page_size=200, mapping=EVENT_MAPPING,
        )  # fmt: skip
        settings = settings.model_copy(update={"sources": [source]})
        first = pull_source(engine, settings.source("api"), settings.pull_rules, "t")
        total = sqlite3.connect(tmp_path / "source.db").execute("SELECT count(*) FROM src_events")
        assert first.pulled == total.fetchone()[0] > 400
        last_page = first.pulled - (first.pulled - 1) // 200 * 200
        assert first.watermark == str((first.pulled - 1) // 200 + 1)
        again = pull_source(engine, settings.source("api"), settings.pull_rules, "t")
    assert again.pulled == last_page  # only the last page, read again
    assert again.inserted == 0


def test_an_incremental_sql_source_stores_a_bad_last_row_once(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """`>=` the watermark reads the rows at the watermark again (rows sharing its value may
    arrive later); a rejected one among them is not stored again."""
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as shop:
        shop.execute("CREATE TABLE ev (id TEXT, uid TEXT, kind TEXT, at TEXT, seq INTEGER)")
        shop.executemany(
            "INSERT INTO ev VALUES (?, ?, ?, ?, ?)",
            [(f"e{i}", "u1", "open", "2026-10-01T00:00:00Z", i) for i in range(5)]
            + [("e5", "u1", "open", "not a time", 5)],
        )
    source = SqlSource(
        name="ev", entity="events", url=f"sqlite:///{db}", table="ev",
        incremental_column="seq",
        mapping={"event_id": "id", "user_id": "uid", "name": "kind", "occurred_at": "at"},
    )  # fmt: skip
    settings = settings.model_copy(update={"sources": [source]})
    for _ in range(3):
        pull_source(engine, settings.source("ev"), settings.pull_rules, "t")
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(RejectedRecord)) == 1
        assert session.scalar(select(func.count()).select_from(Event)) == 5
