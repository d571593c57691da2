"""Ten varied segment definitions against the same segments written by hand as SQL.

The store is filled like the lifecycle benchmark's (users in Asia/Shanghai, app_open events
going back 150 days), plus paid orders on one event in 13, and its lifecycle is computed.
Then, on the same database, each segment is counted twice:
- ours: compile the definition (which reads the users' time zones) and count its statement;
- baseline: one hand-written `SELECT COUNT(*)` that a person who knows the schema would write,
  with the window bounds worked out beforehand.
Both must give the same count. Each is run once untimed first (a warm cache for both), then
timed ROUNDS times in turn, keeping each side's fastest: one timing of a 5 ms count swung
several-fold with the machine's load. ratio = baseline seconds / our seconds, over all ten
(higher is better; 1.0 is as fast as by hand).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from benchmarks.lifecycle import DAY, fill_store_schema, on_both_stores
from yunying.config import LifecycleSettings
from yunying.lifecycle.states import compute_lifecycle
from yunying.segments.compile import compile_segment, local_midnight_utc
from yunying.segments.definition import Segment, SegmentLibrary, parse_condition
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade

ZONE = ZoneInfo("Asia/Shanghai")
ROUNDS = 3

SEGMENTS: dict[str, dict[str, Any]] = {
    "silent": {"state": ["silent"]},
    "valuable-silent": {"all": [{"state": ["silent", "churned"]}, {"tier": ["high", "mid"]}]},
    "long-churned": {"all": [{"state": ["churned"]}, {"days_in_state": {"min": 7}}]},
    "opened-this-week": {"events": {"names": ["app_open"], "within_days": 7, "min": 1}},
    "no-open-in-30": {"events": {"names": ["app_open"], "within_days": 30, "max": 0}},
    "repeat-buyers": {"orders": {"within_days": 90, "min": 2}},
    "spent-100": {"spend": {"within_days": 30, "min": 100}},
    "lapsed-buyers": {"last_order_days": {"min": 30}},
    "reachable-recent-signup": {
        "all": [
            {"reachable": ["email"]},
            {"locale": ["zh-CN"]},
            {"signed_up": {"within_days": 180}},
        ]
    },
    "valuable-not-opened": {
        "all": [{"segment": "valuable-silent"}, {"not": {"segment": "opened-this-week"}}]
    },
}


def run(users: int, seed: int, events_per_user: int = 20, store: str = "both") -> dict[str, Any]:
    return {
        "benchmark": "segments",
        "users": users,
        "events": users * events_per_user,
        **on_both_stores(lambda url: _measure(url, users, events_per_user), store),
    }


def _bound(days_back: int) -> str:
    """The UTC instant of local midnight starting DAY - days_back, as stored text."""
    moment = local_midnight_utc(DAY - dt.timedelta(days=days_back), ZONE)
    return moment.isoformat(" ", "microseconds")


def hand_written(postgres: bool = False) -> dict[str, str]:
    end = _bound(-1)
    valuable = (
        "SELECT user_id FROM lifecycle_states WHERE state IN ('silent', 'churned')"
        " AND tier IN ('high', 'mid')"
    )
    opened = (
        "SELECT user_id FROM events WHERE name = 'app_open'"
        f" AND occurred_at >= '{_bound(6)}' AND occurred_at < '{end}'"
    )
    return {
        "silent": "SELECT COUNT(*) FROM lifecycle_states WHERE state = 'silent'",
        "valuable-silent": f"SELECT COUNT(*) FROM ({valuable}) t",
        "long-churned": "SELECT COUNT(*) FROM lifecycle_states WHERE state = 'churned'"
        f" AND since <= '{DAY - dt.timedelta(days=7)}'",
        "opened-this-week": f"SELECT COUNT(DISTINCT user_id) FROM ({opened}) t",
        "no-open-in-30": (
            "SELECT COUNT(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM events e"
            f" WHERE e.user_id = u.user_id AND name = 'app_open' AND occurred_at >= '{_bound(29)}'"
            f" AND occurred_at < '{end}')"
            if postgres  # the anti-join: PostgreSQL's NOT IN rescans a subquery past work_mem
            else "SELECT COUNT(*) FROM users WHERE user_id NOT IN (SELECT user_id FROM"
            f" events WHERE name = 'app_open' AND occurred_at >= '{_bound(29)}'"
            f" AND occurred_at < '{end}')"
        ),
        "repeat-buyers": "SELECT COUNT(*) FROM (SELECT user_id FROM orders WHERE status = 'paid'"
        f" AND created_at >= '{_bound(89)}' AND created_at < '{end}' GROUP BY user_id"
        " HAVING COUNT(*) >= 2) t",
        "spent-100": "SELECT COUNT(*) FROM (SELECT user_id FROM orders WHERE status = 'paid'"
        f" AND created_at >= '{_bound(29)}' AND created_at < '{end}' GROUP BY user_id"
        " HAVING SUM(amount) >= 100) t",
        "lapsed-buyers": "SELECT COUNT(*) FROM (SELECT user_id FROM orders WHERE status = 'paid'"
        f" AND created_at < '{end}' GROUP BY user_id HAVING MAX(created_at) < '{_bound(29)}') t",
        "reachable-recent-signup": "SELECT COUNT(*) FROM users u WHERE u.email IS NOT NULL"
        " AND u.email_opt_in AND u.locale = 'zh-CN'"
        f" AND u.signup_at >= '{_bound(179)}' AND u.signup_at < '{end}'"
        " AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.user_id = u.user_id"
        " AND s.channel IN ('email', 'any'))",
        "valuable-not-opened": f"SELECT COUNT(*) FROM ({valuable}) v WHERE v.user_id NOT IN"
        f" ({opened})",
    }


class _Library(SegmentLibrary):
    """The ten definitions in memory, as if read from files."""

    def __init__(self) -> None:
        super().__init__(Path("(benchmark)"))
        for name, where in SEGMENTS.items():
            self._loaded[name] = Segment(name, "", parse_condition(where), Path(f"{name}.toml"))


def _fill_orders(engine: sa.Engine) -> None:
    """Paid orders on one event in 13 (by its number, so every user buys now and then), of
    20 to 140 CNY, folded into the users' facts as ingestion would fold them."""
    number = (
        "CAST(substr(event_id, 2) AS BIGINT)"
        if engine.dialect.name == "postgresql"
        else "CAST(substr(event_id, 2) AS INTEGER)"
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO orders (order_id, user_id, amount, currency, status, created_at,"
                f" day, load_id) SELECT 'o' || event_id, user_id, 20 + ({number} % 9) * 15,"
                f" 'CNY', 'paid', occurred_at, day, 'bench' FROM events WHERE {number} % 13 = 0"
            )
        )
        connection.execute(
            sa.text(
                "UPDATE user_facts SET order_count = paid.orders, revenue = paid.revenue,"
                " last_order_at = paid.last_at FROM (SELECT user_id, COUNT(*) AS orders,"
                " SUM(amount) AS revenue, MAX(created_at) AS last_at FROM orders"
                " GROUP BY user_id) AS paid WHERE user_facts.user_id = paid.user_id"
            )
        )
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))


def _measure(url: str, users: int, per_user: int) -> dict[str, float]:
    upgrade(url)
    engine = create_store_engine(url)
    fill_store_schema(engine, users, per_user)
    _fill_orders(engine)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY - dt.timedelta(days=10), LifecycleSettings())
        compute_lifecycle(session, DAY, LifecycleSettings())
    library = _Library()
    ours = baseline = 0.0
    by_hand = hand_written(engine.dialect.name == "postgresql")

    def count_ours(name: str) -> int:
        with session_scope(engine) as session:
            statement = compile_segment(session, library, library.get(name), DAY, ZONE)
            counted = session.scalar(sa.select(sa.func.count()).select_from(statement.subquery()))
            return int(counted or 0)

    def count_by_hand(name: str) -> int:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(by_hand[name])).scalar_one())

    for name in SEGMENTS:
        # One untimed run of each first, so neither pays for reading the pages cold.
        count_ours(name)
        count_by_hand(name)
        mine = theirs = float("inf")
        for _ in range(ROUNDS):
            started = time.perf_counter()
            count = count_ours(name)
            mine = min(mine, time.perf_counter() - started)
            started = time.perf_counter()
            expected = count_by_hand(name)
            theirs = min(theirs, time.perf_counter() - started)
        if count != expected:
            raise RuntimeError(f"segment {name}: {count} users, by hand {expected}")
        print(
            f"{engine.dialect.name}: {name:24} {count:>9} users  ours {mine:.3f}s"
            f"  by hand {theirs:.3f}s",
            file=sys.stderr,
        )
        ours += mine
        baseline += theirs
    engine.dispose()
    return {
        "value": round(ours, 3),
        "baseline": round(baseline, 3),
        "ratio": round(baseline / ours, 2),
    }
