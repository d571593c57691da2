"""Computing all the daily report's KPIs against the same KPIs written by hand as plain SQL,
on the same database (SQLite and PostgreSQL).

The store is filled with set-based SQL (users, events, active days, orders, an outbox with a
holdout); then `compute_kpis` is timed against hand-written statements answering the same
questions. ratio = hand-written seconds / our seconds (higher is better; >= 0.67 meets
"at most 1.5x").
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from benchmarks.lifecycle import DAY, _fill, on_both_stores
from yunying.config import LifecycleSettings
from yunying.lifecycle.states import compute_lifecycle
from yunying.reports.kpis import compute_kpis
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade


def run(users: int, seed: int, events_per_user: int = 50, store: str = "both") -> dict[str, Any]:
    return {
        "benchmark": "report",
        "users": users,
        "events": users * events_per_user,
        **on_both_stores(lambda url: _measure(url, users, events_per_user), store),
    }


def _measure(url: str, users: int, per_user: int) -> dict[str, float]:
    upgrade(url)
    engine = create_store_engine(url)
    _fill(engine, users, per_user)
    _fill_activity_orders_outbox(engine)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, LifecycleSettings())
    zone = ZoneInfo("Asia/Shanghai")
    started = time.perf_counter()
    with session_scope(engine) as session:
        compute_kpis(session, DAY, zone)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect() as connection:
        for statement in hand_written(engine.dialect.name == "postgresql"):
            connection.execute(sa.text(statement), {"d": DAY}).all()
    baseline = time.perf_counter() - started
    engine.dispose()
    print(f"{engine.dialect.name}: ours {ours:.2f}s, hand-written {baseline:.2f}s", file=sys.stderr)
    return {
        "value": round(ours, 3),
        "baseline": round(baseline, 3),
        "ratio": round(baseline / ours, 2),
    }


def _fill_activity_orders_outbox(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO active_days (user_id, day) SELECT DISTINCT user_id, day FROM events"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO orders (order_id, user_id, amount, currency, status, created_at, day, load_id)"
                " SELECT 'o' || event_id, user_id, 50, 'CNY', 'paid', occurred_at, day, 'bench'"
                " FROM events WHERE (LENGTH(event_id) % 13) = 0"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO outbox (key, campaign, business_date, user_id, channel, status, attempts,"
                " created_at) SELECT 'w:' || user_id, 'winback', :sent, user_id, 'email',"
                " CASE WHEN holdout_bucket % 10 = 0 THEN 'holdout' ELSE 'sent' END, 1, :sent"
                " FROM users WHERE holdout_bucket % 7 = 0"
            ),
            {"sent": DAY - dt.timedelta(days=7)},
        )
    with engine.begin() as connection:  # committed: statistics are transactional
        connection.execute(sa.text("ANALYZE"))


def hand_written(postgres: bool) -> list[str]:
    """The same KPIs, one statement each where SQL allows it."""

    def minus(days: int) -> str:
        return f"(CAST(:d AS DATE) - {days})" if postgres else f"date(:d, '-{days} days')"

    def plus(column: str, days: int) -> str:
        return f"({column} + {days})" if postgres else f"date({column}, '+{days} days')"

    retention = (
        "SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM active_days a WHERE a.user_id ="
        " u.user_id AND a.day = :d) THEN 1 ELSE 0 END) FROM users u WHERE u.signup_day = {day}"
    )
    return [
        "SELECT COUNT(*) FROM active_days WHERE day = :d",
        f"SELECT COUNT(DISTINCT user_id) FROM active_days WHERE day BETWEEN {minus(6)} AND :d",
        f"SELECT COUNT(DISTINCT user_id) FROM active_days WHERE day BETWEEN {minus(29)} AND :d",
        "SELECT COUNT(*) FROM users WHERE signup_day = :d",
        *(retention.format(day=minus(n)) for n in (1, 7, 30)),
        "SELECT COUNT(*), SUM(amount), COUNT(DISTINCT user_id) FROM orders"
        " WHERE day = :d AND status = 'paid'",
        "SELECT state, tier, COUNT(*) FROM lifecycle_states GROUP BY state, tier",
        "SELECT from_state, to_state, COUNT(*) FROM lifecycle_transitions WHERE business_date = :d"
        " GROUP BY from_state, to_state",
        "SELECT status, COUNT(*) FROM outbox WHERE business_date = :d GROUP BY status",
        f"SELECT day, COUNT(*) FROM active_days WHERE day BETWEEN {minus(29)} AND :d GROUP BY day",
        # funnel
        "SELECT COUNT(*),"
        f" SUM(CASE WHEN EXISTS (SELECT 1 FROM active_days a WHERE a.user_id = u.user_id AND a.day > u.signup_day AND a.day <= {plus('u.signup_day', 7)}) THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.user_id AND o.status = 'paid' AND o.day >= u.signup_day AND o.day <= {plus('u.signup_day', 7)}) THEN 1 ELSE 0 END)"
        f" FROM users u WHERE u.signup_day BETWEEN {minus(13)} AND {minus(7)}",
        # cohorts of the last 7 days: size and D1/D3/D7
        "SELECT u.signup_day, COUNT(*),"
        f" SUM(CASE WHEN EXISTS (SELECT 1 FROM active_days a WHERE a.user_id = u.user_id AND a.day = {plus('u.signup_day', 1)}) THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN EXISTS (SELECT 1 FROM active_days a WHERE a.user_id = u.user_id AND a.day = {plus('u.signup_day', 3)}) THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN EXISTS (SELECT 1 FROM active_days a WHERE a.user_id = u.user_id AND a.day = {plus('u.signup_day', 7)}) THEN 1 ELSE 0 END)"
        f" FROM users u WHERE u.signup_day BETWEEN {minus(7)} AND {minus(1)} GROUP BY u.signup_day",
        # reactivation uplift, 7 days on
        "SELECT o.status, COUNT(*),"
        f" SUM(CASE WHEN EXISTS (SELECT 1 FROM active_days a WHERE a.user_id = o.user_id AND a.day > {minus(7)} AND a.day <= :d) THEN 1 ELSE 0 END),"
        f" SUM((SELECT COALESCE(SUM(amount), 0) FROM orders r WHERE r.user_id = o.user_id AND r.status = 'paid' AND r.day > {minus(7)} AND r.day <= :d))"
        f" FROM outbox o WHERE o.business_date = {minus(7)} AND o.status IN ('sent', 'holdout') GROUP BY o.status",
        "SELECT SUM(amount) FROM reward_ledger WHERE status = 'paid'",
        "SELECT SUM(total) FROM reward_budgets",
        # the daily series the anomaly bands look at
        f"SELECT day, COUNT(*) FROM active_days WHERE day BETWEEN {minus(57)} AND :d GROUP BY day",
        f"SELECT signup_day, COUNT(*) FROM users WHERE signup_day BETWEEN {minus(57)} AND :d GROUP BY signup_day",
        f"SELECT day, COUNT(*), SUM(amount) FROM orders WHERE status = 'paid' AND day BETWEEN {minus(57)} AND :d GROUP BY day",
    ]
