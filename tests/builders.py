"""Build test data through the real paths: the synthetic company's source database, pulled
into the store by the same code the nightly flow runs."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources
from yunying.sources.config import Entity
from yunying.sources.load import load_rows, validate
from yunying.sources.pull import LoadStats, pull_source
from yunying.sources.validate.rules import RecordDefaults

# Test users have consented on every channel unless a record says otherwise; what a source's
# silence means by default is tested through pulls (tests/integration/test_pull.py).
CONSENTED = RecordDefaults(opt_in=True)

END = dt.date(2026, 11, 1)


def company_settings(
    settings: Settings,
    tmp_path: Path,
    users: int = 300,
    seed: int = 11,
    end: dt.date = END,
    http_url: str | None = None,
) -> Settings:
    source_db = tmp_path / "source.db"
    if not source_db.exists():
        write_source_db(source_db, users, seed, end)
    return settings.model_copy(update={"sources": demo_sources(source_db, http_url)})


def load_records(
    session: Session, zone: ZoneInfo, entity: Entity, records: list[dict[str, Any]]
) -> None:
    """Load test records through the ingestion path (validation, upsert, facts); test data
    must be valid, so a rejected record is an error in the test."""
    rows, rejected = validate(entity, records, {}, zone, defaults=CONSENTED)
    if rejected:
        raise ValueError(f"invalid test {entity}: {rejected}")
    load_rows(session, entity, rows, uuid.uuid4().hex)


def pull_all(engine: Engine, settings: Settings) -> dict[str, LoadStats]:
    return {s.name: pull_source(engine, s, settings.pull_rules, "test") for s in settings.sources}


DAY = dt.date(2026, 11, 1)


def silent_users(
    engine: Engine,
    settings: Settings,
    count: int,
    day: dt.date = DAY,
    user_id: Callable[[int], str] = "s{:05d}".format,
    **overrides: object,
) -> list[str]:
    """`count` users, all silent on `day` (last seen 10 days before), reachable on every channel;
    their lifecycle is computed for `day`. `user_id` names the i-th; `overrides` set fields on
    every user."""
    from yunying.lifecycle.states import compute_lifecycle
    from yunying.store.engine import session_scope

    last_seen = dt.datetime.combine(day - dt.timedelta(days=10), dt.time(4)).isoformat()
    users = [
        {
            "user_id": user_id(i),
            "signup_at": "2026-06-01T00:00:00Z",
            "email": f"s{i}@example.com",
            "phone": f"+8613900{i:06d}",
            "push_token": f"tok{i}",
            "locale": "en" if i % 2 else "zh-CN",
            "timezone": "Asia/Shanghai",
            **overrides,
        }
        for i in range(count)
    ]
    events = [
        {
            "event_id": f"{u['user_id']}-e",
            "user_id": u["user_id"],
            "name": "app_open",
            "occurred_at": last_seen,
        }
        for i, u in enumerate(users)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        compute_lifecycle(session, day, settings.lifecycle)
    return [u["user_id"] for u in users]
