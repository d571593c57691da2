"""A PostgreSQL store at the nightly's design scale, filled with set-based SQL.

One database holds the company's history as Yunying's store would after months of nightly
runs (users, 10 events per user, an order per 20 events, the per-user facts and active days
that ingestion keeps, the lifecycle of the day before the business date and that night's
campaign sends, so tonight's frequency caps hold as on any night after the first), and, in its
schema `src`, the company's own tables holding the business date's increment (new signups,
events from half the users' worth, orders) for the pulls to read. Each measured run gets its
own copy (`CREATE DATABASE ... TEMPLATE`), so the flow and the plain chain start from the
same night, and a filled template can be reused by a later benchmark run.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from yunying.config import LifecycleSettings
from yunying.lifecycle.states import compute_lifecycle
from yunying.messaging.campaign import Campaign
from yunying.messaging.outbox import plan
from yunying.reports.effects import Money
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade
from yunying.store.models import OutboxMessage

EVENTS_PER_USER = 10
FILLED = "filled_v3"  # marks a complete fill; a new name when the fill changes
TABLES = {
    "users": "users",
    "events": "events",
    "orders": "orders",
    "facts": "user_facts",
    "active_days": "active_days",
}


@dataclass(frozen=True)
class BigStore:
    admin_url: str  # any database of the server, to create and drop the others
    users: int
    end: dt.date  # the business date: its increment waits in the sources
    campaigns: tuple[Campaign, ...]  # the nightly's campaigns, which also ran last night

    @property
    def template(self) -> str:
        return f"yunying_bench_{self.users}"

    def url(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(False)

    def source_url(self, database: str) -> str:
        return self.url(database)


def ensure_filled(store: BigStore, reuse: bool) -> dict[str, float]:
    """Fill the template database unless `reuse` and it is already filled; the seconds each
    step took (nothing when reused)."""
    admin = sa.create_engine(store.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": store.template}
            ).first()
            if exists and reuse and _is_filled(store):
                print(f"reusing {store.template}", file=sys.stderr)
                return {}
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{store.template}"'))
            connection.execute(sa.text(f'CREATE DATABASE "{store.template}"'))
    finally:
        admin.dispose()
    return _fill(store)


def clone(store: BigStore, name: str) -> str:
    """A fresh copy of the filled template, for one measured run; its URL."""
    admin = sa.create_engine(store.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(
                sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{store.template}" STRATEGY FILE_COPY')
            )
    finally:
        admin.dispose()
    return store.url(name)


def drop(store: BigStore, name: str) -> None:
    admin = sa.create_engine(store.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


def database_size_mb(url: str) -> float:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            size = connection.execute(sa.text("SELECT pg_database_size(current_database())"))
            return float(size.scalar_one()) / 2**20
    finally:
        engine.dispose()


def server_settings(url: str) -> dict[str, str]:
    """The PostgreSQL settings a store of this size depends on, to print beside its figures."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: str(connection.execute(sa.text(f"SHOW {name}")).scalar_one())
                for name in ("shared_buffers", "work_mem", "max_wal_size")
            }
    finally:
        engine.dispose()


def _last_nights_sends(engine: sa.Engine, store: BigStore) -> None:
    """Last night's campaigns went out: every campaign's silent users of yesterday were
    messaged, so tonight the frequency caps leave the users newly silent, as on any night
    after the first."""
    yesterday = store.end - dt.timedelta(1)
    for campaign in store.campaigns:
        with session_scope(engine) as session:
            plan(session, campaign, yesterday)
            session.execute(
                sa.update(OutboxMessage)
                .where(
                    OutboxMessage.campaign == campaign.name,
                    OutboxMessage.business_date == yesterday,
                    OutboxMessage.status == "queued",
                )
                .values(status="sent", sent_at=dt.datetime.combine(yesterday, dt.time(12)))
            )


def _drop_indexes(connection: sa.Connection, step: str) -> list[str]:
    """Drop the table's key and indexes; the statements that build them again. Building an
    index once from sorted rows is several times faster than growing it row by row (at 1M
    users, active days took 95 s with their two indexes in place)."""
    table = TABLES[step]
    keys = connection.execute(
        sa.text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"
        ),
        {"t": table},
    ).all()
    indexes = connection.execute(
        sa.text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"
            " AND schemaname = current_schema() AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass))"
        ),
        {"t": table},
    ).all()
    for name, _ in keys:
        connection.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        connection.execute(sa.text(f'DROP INDEX "{name}"'))
    return [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' for name, definition in keys
    ] + [definition for _, definition in indexes]


def _is_filled(store: BigStore) -> bool:
    engine = sa.create_engine(store.url(store.template))
    try:
        with engine.connect() as connection:
            done = connection.execute(
                sa.text(
                    "SELECT 1 FROM information_schema.tables"
                    " WHERE table_schema = 'src' AND table_name = :filled"
                ),
                {"filled": FILLED},
            ).first()
            return done is not None
    finally:
        engine.dispose()


def _fill(store: BigStore) -> dict[str, float]:
    url = store.url(store.template)
    upgrade(url)
    engine = create_store_engine(url)
    seconds: dict[str, float] = {}
    params = {"n": store.users, "e": EVENTS_PER_USER, "yesterday": store.end - dt.timedelta(1)}
    try:
        for step, statements in _history_statements().items():
            started = time.perf_counter()
            with engine.begin() as connection:
                connection.execute(sa.text("SET LOCAL synchronous_commit = off"))
                connection.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
                rebuild = _drop_indexes(connection, step)
                for statement in statements:
                    connection.execute(sa.text(statement), params)
                for statement in rebuild:
                    connection.execute(sa.text(statement))
            seconds[step] = time.perf_counter() - started
            print(f"fill {step}: {seconds[step]:.0f}s", file=sys.stderr)
        started = time.perf_counter()
        with session_scope(engine) as session:
            # In the settings' money, as the flow's runs count it (no recount in them).
            compute_lifecycle(
                session, store.end - dt.timedelta(1), LifecycleSettings(), money=Money()
            )
        seconds["lifecycle"] = time.perf_counter() - started
        started = time.perf_counter()
        _last_nights_sends(engine, store)
        seconds["outbox"] = time.perf_counter() - started
        started = time.perf_counter()
        with engine.begin() as connection:
            for statement in _increment_statements():
                connection.execute(
                    sa.text(statement), {"n": store.users, "day": store.end.isoformat()}
                )
            connection.execute(sa.text(f"CREATE TABLE src.{FILLED} (at timestamp)"))
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text("VACUUM ANALYZE")
            )
        seconds["sources"] = time.perf_counter() - started
        print(f"fill sources, vacuum: {seconds['sources']:.0f}s", file=sys.stderr)
    finally:
        engine.dispose()
    return seconds


# User i's id sorts as its number, so every key is inserted in order (at 100M events,
# inserting at random places in an index runs for hours). User i was last active
# (i * 13 % 150) days before yesterday, and every 3 days before that, EVENTS_PER_USER times.
USER = "'u' || lpad(u::text, 9, '0')"
LAST_BACK = "((u * 13) % 150)"


def _history_statements() -> dict[str, list[str]]:
    signup_day = f"(CAST(:yesterday AS date) - ({LAST_BACK} + (:e - 1) * 3))"
    return {
        "users": [
            "INSERT INTO users (user_id, signup_at, signup_day, timezone, locale, email, phone,"
            " push_token, email_opt_in, sms_opt_in, push_opt_in, device_hash, ip_hash,"
            " holdout_bucket, updated_at)"
            f" SELECT {USER}, {signup_day} + TIME '02:00', {signup_day}, 'Asia/Shanghai',"
            f" 'zh-CN', {USER} || '@example.com', NULL, md5(u::text), u % 20 <> 0,"
            " true, u % 12 <> 0, NULL, NULL, (u::bigint * 2654435761) % 2147483648,"
            f" {signup_day} + TIME '02:00' FROM generate_series(0, :n - 1) AS g(u)"
        ],
        "events": [
            "INSERT INTO events (event_id, user_id, name, occurred_at, day)"
            " SELECT 'e' || lpad((u::bigint * :e + k)::text, 11, '0'), "
            f"{USER}, 'app_open', d + TIME '03:00', d"
            " FROM generate_series(0, :n - 1) AS g(u), generate_series(0, :e - 1) AS h(k),"
            f" LATERAL (SELECT CAST(:yesterday AS date) - ({LAST_BACK} + k * 3) AS d) AS x"
        ],
        "orders": [
            "INSERT INTO orders (order_id, user_id, amount, currency, status, created_at, day,"
            " load_id)"
            " SELECT 'o' || lpad(u::text, 9, '0'), "
            f"{USER}, 20 + u % 180, 'CNY', 'paid', d + TIME '03:05', d, 'bench'"
            f" FROM generate_series(0, :n - 1, 2) AS g(u),"
            f" LATERAL (SELECT CAST(:yesterday AS date) - {LAST_BACK} AS d) AS x"
        ],
        "facts": [
            "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
            " order_count, revenue, last_order_at, updated_at)"
            f" SELECT {USER}, d + TIME '03:00', d, :e, 1 - u % 2,"
            " CASE WHEN u % 2 = 0 THEN 20 + u % 180 ELSE 0 END,"
            " CASE WHEN u % 2 = 0 THEN d + TIME '03:05' END, d + TIME '03:00'"
            " FROM generate_series(0, :n - 1) AS g(u),"
            f" LATERAL (SELECT CAST(:yesterday AS date) - {LAST_BACK} AS d) AS x"
        ],
        "active_days": [
            "INSERT INTO active_days (user_id, day)"
            f" SELECT {USER}, CAST(:yesterday AS date) - ({LAST_BACK} + k * 3)"
            " FROM generate_series(0, :n - 1) AS g(u), generate_series(:e - 1, 0, -1) AS h(k)"
        ],
    }


def _spread(number: str, users: str) -> str:
    """A user picked by a multiplicative hash: no pattern shared with the history's."""
    return f"(({number})::bigint * 2654435761 % ({users}))"


def _increment_statements() -> list[str]:
    """The business date's increment in the company's own tables (the demo's column names):
    1% new signups, as many events as half the users (new users included), an order from
    one user in 50. (Events from every 2nd user made every user newly silent tonight active
    again: the history's users newly silent on a date are all even.)"""
    ts = 'to_char(CAST(:day AS timestamp) + make_interval(secs => 3600 + s % 50000), \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\')'
    return [
        "CREATE SCHEMA src",
        "CREATE TABLE src.src_users (id TEXT PRIMARY KEY, created TEXT, tz TEXT, lang TEXT,"
        " email TEXT, phone TEXT, push_token TEXT, email_ok INTEGER, sms_ok INTEGER,"
        " push_ok INTEGER, device TEXT, ip TEXT, updated_seq BIGINT)",
        "CREATE TABLE src.src_events (seq BIGINT PRIMARY KEY, event_uuid TEXT, uid TEXT,"
        " type TEXT, ts TEXT)",
        "CREATE TABLE src.src_orders (order_no TEXT PRIMARY KEY, uid TEXT, amount TEXT,"
        " currency TEXT, status TEXT, paid_at TEXT, updated_seq BIGINT)",
        "INSERT INTO src.src_users SELECT 'u' || lpad((:n + s)::text, 9, '0'),"
        f" {ts}, 'Asia/Shanghai', 'zh-CN',"
        " 'u' || (:n + s) || '@example.com', NULL, md5(s::text), 1, 1, 1,"
        " 'd' || s, 'ip' || s, s FROM generate_series(1, :n / 100) AS g(s)",
        "INSERT INTO src.src_events SELECT s, 'x' || s,"
        f" 'u' || lpad({_spread('s', ':n + :n / 100')}::text, 9, '0'),"
        f" CASE WHEN s % 5 = 0 THEN 'app_open' ELSE 'view_item' END, {ts}"
        " FROM generate_series(1, :n / 2) AS g(s)",
        "INSERT INTO src.src_orders SELECT 'ox' || s,"
        f" 'u' || lpad({_spread('s * 7', ':n')}::text, 9, '0'), (20 + s % 180)::text, 'CNY',"
        f" 'paid', {ts}, s FROM generate_series(1, :n / 50) AS g(s)",
    ]
