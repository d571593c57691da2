"""The nightly lifecycle step against a full scan of the events, on SQLite and PostgreSQL.

The store is filled with set-based SQL (users, events, and the per-user facts ingestion
keeps), the lifecycle runs once for the day before, a day's worth of new activity arrives for
1% of the users, and then both are timed on the same database:
- ours: `compute_lifecycle` for the business date (the nightly step);
- baseline: `SELECT user_id, MAX(occurred_at) FROM events GROUP BY user_id`, the scan a tool
  without per-user facts makes every night.
ratio = baseline seconds / our seconds (higher is better).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from yunying.config import LifecycleSettings
from yunying.lifecycle.states import compute_lifecycle
from yunying.store.engine import create_store_engine, session_scope, utcnow
from yunying.store.migrate import upgrade

DAY = dt.date(2026, 11, 1)
POSTGRES = os.environ.get(
    "YUNYING_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
).replace("postgresql://", "postgresql+psycopg://")


def run(users: int, seed: int, events_per_user: int = 50, store: str = "both") -> dict[str, Any]:
    return {
        "benchmark": "lifecycle",
        "users": users,
        "events": users * events_per_user,
        **on_both_stores(lambda url: _measure(url, users, events_per_user), store),
    }


def on_both_stores(
    measure: Callable[[str], dict[str, float]], store: str = "both"
) -> dict[str, dict[str, float]]:
    """Run `measure` on a fresh SQLite store, then on a fresh PostgreSQL schema (or on the
    one `store` names)."""
    figures = {}
    if store in ("both", "sqlite"):
        figures["sqlite"] = measure(
            f"sqlite:///{Path(tempfile.mkdtemp(prefix='yunying-bench-')) / 'store.db'}"
        )
    if store == "sqlite":
        return figures
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        figures["postgresql"] = measure(f"{POSTGRES}?options=-csearch_path%3D{schema}")
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    return figures


def _measure(url: str, users: int, per_user: int) -> dict[str, float]:
    upgrade(url)
    engine = create_store_engine(url)
    started = time.perf_counter()
    _fill(engine, users, per_user)
    print(f"{engine.dialect.name}: filled in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    rules = LifecycleSettings()
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY - dt.timedelta(days=1), rules)
    _todays_activity(engine, users)
    started = time.perf_counter()
    with session_scope(engine) as session:
        summary = compute_lifecycle(session, DAY, rules)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect() as connection:
        scanned = connection.execute(
            sa.text(
                "SELECT COUNT(*) FROM (SELECT user_id, MAX(occurred_at) FROM events GROUP BY user_id) t"
            )
        ).scalar_one()
    baseline = time.perf_counter() - started
    engine.dispose()
    print(
        f"{engine.dialect.name}: ours {ours:.2f}s ({summary.by_state}), scan {baseline:.2f}s"
        f" over {scanned} users",
        file=sys.stderr,
    )
    return {
        "value": round(ours, 3),
        "baseline": round(baseline, 3),
        "ratio": round(baseline / ours, 2),
    }


def fill_store_schema(engine: sa.Engine, users: int, per_user: int) -> None:
    """`_fill` on the store's real schema: `_fill` drops and rebuilds an events(user_id) index
    that migration 0002 removed; give it one to drop, and drop its rebuilt one."""
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE INDEX ix_events_user_id ON events (user_id)"))
    _fill(engine, users, per_user)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_events_user_id"))


def _fill(engine: sa.Engine, users: int, per_user: int) -> None:
    postgres = engine.dialect.name == "postgresql"
    numbers = (
        "generate_series(0, :n - 1) AS n(i)"
        if postgres
        else "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1)"
        " SELECT i FROM s) AS n"
    )
    concat = "'u' || i" if not postgres else "'u' || i::text"
    day_of = (
        "DATE '2026-06-01' + (i % 150)::int"
        if postgres
        else "date('2026-06-01', '+' || (i % 150) || ' days')"
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (user_id, signup_at, signup_day, timezone, locale, email,"
                " email_opt_in, sms_opt_in, push_opt_in, holdout_bucket, updated_at)"
                f" SELECT {concat}, {day_of}, {day_of}, 'Asia/Shanghai', 'zh-CN', {concat} || '@example.com',"
                f" true, true, true, (CAST(i AS BIGINT) * 7919) % 2147483647, {day_of} FROM {numbers}"
            ),
            {"n": users},
        )
    # Events: user i is last active (i * 13 % 150) days before the date; earlier ones fill in.
    event_user = "(i % :users)"
    back = f"(({event_user} * 13) % 150 + (i / :users) * 3)"
    if postgres:
        event_day = f"DATE '{DAY}' - ({back})::int"
        occurred = f"({event_day})::timestamp + INTERVAL '3 hours'"
        user = f"'u' || ({event_user})::text"
        event_id = "'e' || lpad(i::text, 10, '0')"
    else:
        event_day = f"date('{DAY}', '-' || {back} || ' days')"
        occurred = f"datetime({event_day}, '+3 hours')"
        user = f"'u' || {event_user}"
        event_id = "printf('e%010d', i)"
    # Ids in insertion order: at 50M events, inserting at random places in the key's index
    # runs for hours. (Events have no index on user_id: migration 0002 dropped it.)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO events (event_id, user_id, name, occurred_at, day)"
                f" SELECT {event_id}, {user}, 'app_open', {occurred}, {event_day} FROM {numbers}"
            ),
            {"n": users * per_user, "users": users},
        )
        connection.execute(
            sa.text(
                "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
                " order_count, revenue, updated_at) SELECT user_id, MAX(occurred_at), MAX(day),"
                " COUNT(*), 0, 0, MIN(occurred_at) FROM events GROUP BY user_id"
            )
        )
    with engine.begin() as connection:  # committed: statistics are transactional
        connection.execute(sa.text("ANALYZE"))


def _todays_activity(engine: sa.Engine, users: int) -> None:
    """1% of the users come back today: their facts move, as ingestion would move them."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE user_facts SET last_active_day = :day, last_active_at = :moment,"
                " event_count = event_count + 1, updated_at = :now WHERE user_id IN"
                " (SELECT user_id FROM users WHERE holdout_bucket % 100 = 7)"
            ),
            {"day": DAY, "moment": dt.datetime.combine(DAY, dt.time(3)), "now": utcnow()},
        )
