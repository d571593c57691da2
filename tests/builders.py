"""Build test data through the real paths: the synthetic company's source database, pulled
into the store by the same code the nightly flow runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine

from yunying.config import Settings
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources
from yunying.sources.load import LoadStats
from yunying.sources.pull import pull_source

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


def pull_all(engine: Engine, settings: Settings) -> dict[str, LoadStats]:
    return {s.name: pull_source(engine, settings, s.name, "test") for s in settings.sources}


DAY = dt.date(2026, 11, 1)


def silent_users(
    engine: Engine, settings: Settings, count: int, day: dt.date = DAY, **overrides: object
) -> list[str]:
    """`count` users, all silent on `day` (last seen 10 days before), reachable on every channel;
    their lifecycle is computed for `day`. `overrides` set fields on every user."""
    from yunying.lifecycle.states import compute_lifecycle
    from yunying.sources.load import load_rows, validate
    from yunying.store.engine import session_scope

    last_seen = dt.datetime.combine(day - dt.timedelta(days=10), dt.time(4)).isoformat()
    users = [
        {
            "user_id": f"s{i:05d}",
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
            "event_id": f"s{i}-e",
            "user_id": u["user_id"],
            "name": "app_open",
            "occurred_at": last_seen,
        }
        for i, u in enumerate(users)
    ]
    with session_scope(engine) as session:
        rows, bad = validate("users", users, {}, settings.zone)
        load_rows(session, "users", rows, "silent-users")
        rows, bad_events = validate("events", events, {}, settings.zone)
        load_rows(session, "events", rows, "silent-events")
        compute_lifecycle(session, day, settings.lifecycle)
    if bad or bad_events:
        raise ValueError(f"test users invalid: {bad or bad_events}")
    return [u["user_id"] for u in users]
