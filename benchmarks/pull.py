"""Pulling events into the store against the bare way to move the same rows.

Figures (higher ratio is better for Yunying):
- sqlite_rows_per_s: the SQL source into a SQLite store vs a bare sqlite3 executemany of the
  same rows (read from the same source) into a table of the same shape;
- postgres_rows_per_s: the same into PostgreSQL vs a bare psycopg COPY of the same rows;
- http_rows_per_s: the HTTP source (1,000 per page, local server) vs a raw httpx loop fetching
  the same pages, each client in a process of its own;
- peak_rss_mb: a pull of all events vs a pull of a tenth of them (flat memory: ratio ~1);
- {sqlite,postgres}_{users,orders}_rows_per_s: the demo's users and orders SQL sources into an
  empty store vs a bare executemany (SQLite) or COPY (PostgreSQL) of the same source rows into
  a table of the source's shape with the same key: loads users and orders at the speed of
  events, empty store or not (issue 21: the first 20,000 orders once took 16 s);
- {sqlite,postgres}_{users,orders}_store_shape_rows_per_s: the same runs of ours vs the same
  bare driver writing the rows ours stored into the store's own table (made by the migrations
  in a fresh file or schema: typed columns, keys, indexes): what any loader into that table
  pays is in the baseline, so the ratio is Yunying's overhead (validation, facts);
- {sqlite,postgres}_orders_all_tables_rows_per_s: the same runs vs the bare driver writing
  every row ours stored for the orders (orders, their active days, their users' facts) into
  those tables: the ratio is Yunying's own overhead, reading and validating the source and
  deriving those rows, with the work of storing them in the baseline.

Each entity's own bare-driver baseline is the bare driver writing what that entity's load
writes: for users their table (`*_users_store_shape_*`), for orders the orders and the facts
derived from them (`*_orders_all_tables_*`), since a store's lifecycle, KPIs and review read
those facts and any loader that keeps them pays for writing them. The source-shaped and
orders-table-only figures are printed as context: against them, orders' derived rows (about
1.5 per order, where events derive a few per hundred) are counted as overhead. Measured
2026-12-06, idle 2-core machine, `--users 30000`: users 0.634 (SQLite) and 0.589
(PostgreSQL), orders 0.964 and 0.650; orders against their table alone 0.471 and 0.311.

Each throughput figure alternates ours and its baseline `rounds` times, each time into an
empty store, and reports the medians: this machine's speed drifts by a fifth within minutes,
and a lone pair of runs can land on either side of a drift.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from yunying.demo.local_server import LocalServer
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import EVENT_MAPPING, demo_sources
from yunying.sources.config import HttpSource
from yunying.store.migrate import upgrade
from yunying.store.models import ActiveDay, Order, User, UserFacts

END = dt.date(2026, 11, 1)
POSTGRES = os.environ.get("YUNYING_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_STORE_TABLES = {
    table.name: table
    for table in (User.__table__, Order.__table__, ActiveDay.__table__, UserFacts.__table__)
}
# What a load of each entity writes: its own table, and for orders the facts derived.
_WRITTEN = {"users": ("users",), "orders": ("orders", "active_days", "user_facts")}
EVENT_COLUMNS = "event_id TEXT, user_id TEXT, name TEXT, occurred_at TEXT, day TEXT"


def run(users: int, seed: int, rounds: int = 3) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="yunying-pull-"))
    try:
        return _run(work, users, seed, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, users: int, seed: int, rounds: int) -> dict[str, Any]:
    source_db = work / "source.db"
    counts = write_source_db(source_db, users, seed, END)
    print(f"source: {counts}", file=sys.stderr)
    figures: dict[str, Any] = {"benchmark": "pull", "users": users, "events": counts.events}
    pulls: list[dict[str, Any]] = []

    def sqlite_store() -> float:
        pulls.append(_pull_in_subprocess(work, source_db, _fresh_sqlite(work, "store")))
        return float(pulls[-1]["rows_per_s"])

    figures["sqlite_rows_per_s"] = _alternate(
        rounds, sqlite_store, lambda: _bare_sqlite(source_db, _fresh_file(work, "bare.db"))
    )

    admin = sa.create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://"))

    def in_new_schema(measure: Callable[[str], float]) -> Callable[[], float]:
        def measured() -> float:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with admin.begin() as connection:
                connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
                # The last run's dirty pages written out first, so no run pays for another's.
                connection.execute(sa.text("CHECKPOINT"))
            try:
                return measure(f"{POSTGRES}?options=-csearch_path%3D{schema}")
            finally:
                with admin.begin() as connection:
                    connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))

        return measured

    try:
        figures["postgres_rows_per_s"] = _alternate(
            rounds,
            in_new_schema(lambda url: _pull_in_subprocess(work, source_db, url)["rows_per_s"]),
            in_new_schema(lambda url: _bare_copy(source_db, url)),
        )
    finally:
        admin.dispose()

    with LocalServer(source_db=source_db) as server:
        figures["http_rows_per_s"] = _alternate(
            rounds,
            lambda: _pull_in_subprocess(work, source_db, _fresh_sqlite(work, "http"), server.url)[
                "rows_per_s"
            ],
            lambda: _raw_httpx_in_subprocess(server.url),
        )

    for entity, table, key in (("users", "src_users", "id"), ("orders", "src_orders", "order_no")):
        source = f"app-{entity}"
        # The rows as the last SQLite run of ours stored them: the store-shaped baselines'.
        stored = work / f"store-{source}.db"

        def ours_sqlite(source: str = source) -> float:
            url = _fresh_sqlite(work, f"store-{source}")
            return float(_pull_in_subprocess(work, source_db, url, source=source)["rows_per_s"])

        def bare_sqlite(table: str = table, key: str = key) -> float:
            return _bare_sqlite_table(source_db, _fresh_file(work, "bare.db"), table, key)

        def shaped_sqlite(
            entity: str = entity, stored: Path = stored, every: bool = False
        ) -> float:
            tables = _WRITTEN[entity] if every else (entity,)
            return _bare_sqlite_store_shape(stored, _fresh_file(work, "shaped.db"), entity, tables)

        baselines = [bare_sqlite, shaped_sqlite]
        if entity == "orders":
            baselines.append(lambda: shaped_sqlite(every=True))
        measured = _alternate_many(rounds, ours_sqlite, baselines)
        figures[f"sqlite_{entity}_rows_per_s"] = measured[0]
        figures[f"sqlite_{entity}_store_shape_rows_per_s"] = measured[1]
        if entity == "orders":
            figures["sqlite_orders_all_tables_rows_per_s"] = measured[2]
        admin = sa.create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://"))
        try:
            copies = [
                in_new_schema(lambda url, t=table, k=key: _bare_copy_table(source_db, url, t, k)),
                in_new_schema(
                    lambda url, e=entity, s=stored: _bare_copy_store_shape(s, url, e, (e,))
                ),
            ]
            if entity == "orders":
                copies.append(
                    in_new_schema(
                        lambda url, s=stored: _bare_copy_store_shape(
                            s, url, "orders", _WRITTEN["orders"]
                        )
                    )
                )
            measured = _alternate_many(
                rounds,
                in_new_schema(
                    lambda url, source=source: _pull_in_subprocess(
                        work, source_db, url, source=source
                    )["rows_per_s"]
                ),
                copies,
            )
            figures[f"postgres_{entity}_rows_per_s"] = measured[0]
            figures[f"postgres_{entity}_store_shape_rows_per_s"] = measured[1]
            if entity == "orders":
                figures["postgres_orders_all_tables_rows_per_s"] = measured[2]
        finally:
            admin.dispose()

    tenth = _pull_in_subprocess(
        work, source_db, _fresh_sqlite(work, "tenth"), limit=counts.events // 10
    )
    whole = max(pull["rss_mb"] for pull in pulls)
    figures["peak_rss_mb"] = _figure(whole, tenth["rss_mb"], tenth["rss_mb"] / whole)
    return figures


def _alternate(
    rounds: int, ours: Callable[[], float], baseline: Callable[[], float]
) -> dict[str, float]:
    """Ours and the baseline in turn, `rounds` times: the medians, and the median of each
    round's ratio."""
    return _alternate_many(rounds, ours, (baseline,))[0]


def _alternate_many(
    rounds: int, ours: Callable[[], float], baselines: Sequence[Callable[[], float]]
) -> list[dict[str, float]]:
    """Ours and each baseline in turn, `rounds` times: a figure per baseline, each against
    the same runs of ours."""
    values: list[float] = []
    bases: list[list[float]] = [[] for _ in baselines]
    for round_ in range(rounds):
        values.append(ours())
        for measured, baseline in zip(bases, baselines, strict=True):
            measured.append(baseline())
        print(
            f"  round {round_ + 1}: {values[-1]:,.0f} vs "
            + " / ".join(f"{measured[-1]:,.0f}" for measured in bases),
            file=sys.stderr,
        )
    return [
        _figure(
            statistics.median(values),
            statistics.median(measured),
            statistics.median(value / base for value, base in zip(values, measured, strict=True)),
        )
        for measured in bases
    ]


def _fresh_file(work: Path, name: str) -> Path:
    for path in work.glob(f"{name}*"):
        path.unlink()
    return work / name


def _fresh_sqlite(work: Path, name: str) -> str:
    return f"sqlite:///{_fresh_file(work, f'{name}.db')}"


def _figure(value: float, baseline: float, ratio: float) -> dict[str, float]:
    return {"value": round(value, 1), "baseline": round(baseline, 1), "ratio": round(ratio, 3)}


def _pull_in_subprocess(
    work: Path,
    source_db: Path,
    store_url: str,
    http_url: str | None = None,
    limit: int | None = None,
    source: str = "app-events",
) -> dict[str, Any]:
    sources = demo_sources(source_db, None)
    events = next(s for s in sources if s.name == source)
    if http_url:
        events = HttpSource(
            name="app-events",
            entity="events",
            url=f"{http_url}/events",
            mapping=EVENT_MAPPING,
            page_size=1000,
        )
    elif limit:
        events = events.model_copy(
            update={"table": None, "query": f"SELECT * FROM src_events WHERE seq <= {limit}"}
        )
    result = _in_subprocess(
        YUNYING_HOME=str(work / "home"),
        YUNYING_DATABASE_URL=store_url,
        YUNYING_SOURCES=json.dumps([events.model_dump()]),
        BENCH_SOURCE=source,
    )
    print(
        f"ours {store_url.split(':')[0]} {'http' if http_url else 'sql'} {source}: {result}",
        file=sys.stderr,
    )
    return result


def _raw_httpx_in_subprocess(url: str) -> float:
    """The raw loop in a process of its own, as ours runs: in this one it would share
    Python's GIL with the local server's threads."""
    return float(_in_subprocess(BENCH_RAW_HTTPX_URL=url)["rows_per_s"])


def _in_subprocess(**env: str) -> dict[str, Any]:
    """Run this module's main with `env` added; its last line of output, as JSON."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.pull"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    if output.returncode:
        raise RuntimeError(output.stderr[-3000:])
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def _source_rows(source_db: Path) -> Any:
    source = sqlite3.connect(source_db)
    return source.execute("SELECT event_uuid, uid, type, ts, substr(ts, 1, 10) FROM src_events")


def _bare_sqlite(source_db: Path, target: Path) -> float:
    started = time.perf_counter()
    connection = sqlite3.connect(target)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"CREATE TABLE events ({EVENT_COLUMNS}, PRIMARY KEY (event_id))")
    rows = _source_rows(source_db)
    total = 0
    while chunk := rows.fetchmany(20_000):
        connection.executemany("INSERT INTO events VALUES (?,?,?,?,?)", chunk)
        connection.commit()
        total += len(chunk)
    return total / (time.perf_counter() - started)


def _bare_copy(source_db: Path, url: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE bare_events ({EVENT_COLUMNS}, PRIMARY KEY (event_id))")
        rows = _source_rows(source_db)
        total = 0
        while chunk := rows.fetchmany(20_000):
            with cursor.copy("COPY bare_events FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
            connection.commit()
            total += len(chunk)
    return total / (time.perf_counter() - started)


def _table_rows(source_db: Path, table: str) -> tuple[list[str], Any]:
    source = sqlite3.connect(source_db)
    rows = source.execute(f"SELECT * FROM {table}")
    return [d[0] for d in rows.description], rows


def _bare_sqlite_table(source_db: Path, target: Path, table: str, key: str) -> float:
    """A source table's rows into a table of its shape (text columns, the same key) with a
    bare sqlite3 executemany per 20,000 rows."""
    started = time.perf_counter()
    connection = sqlite3.connect(target)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    columns, rows = _table_rows(source_db, table)
    connection.execute(
        f"CREATE TABLE bare ({', '.join(f'{c} TEXT' for c in columns)}, PRIMARY KEY ({key}))"
    )
    marks = ",".join("?" * len(columns))
    total = 0
    while chunk := rows.fetchmany(20_000):
        connection.executemany(f"INSERT INTO bare VALUES ({marks})", chunk)
        connection.commit()
        total += len(chunk)
    return total / (time.perf_counter() - started)


def _bare_copy_table(source_db: Path, url: str, table: str, key: str) -> float:
    """The same with a bare psycopg COPY per 20,000 rows."""
    started = time.perf_counter()
    columns, rows = _table_rows(source_db, table)
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE bare ({', '.join(f'{c} TEXT' for c in columns)}, PRIMARY KEY ({key}))"
        )
        total = 0
        while chunk := rows.fetchmany(20_000):
            with cursor.copy("COPY bare FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row([None if v is None else str(v) for v in row])
            connection.commit()
            total += len(chunk)
    return total / (time.perf_counter() - started)


def _stored_rows(stored: Path, table: str) -> tuple[list[str], Any]:
    """The rows a SQLite store holds in `table`, in its columns' order."""
    columns = [column.name for column in _STORE_TABLES[table].columns]
    source = sqlite3.connect(stored)
    return columns, source.execute(f"SELECT {', '.join(columns)} FROM {table}")


def _count(stored: Path, entity: str) -> int:
    return int(sqlite3.connect(stored).execute(f"SELECT COUNT(*) FROM {entity}").fetchone()[0])


def _bare_sqlite_store_shape(
    stored: Path, target: Path, entity: str, tables: Sequence[str]
) -> float:
    """The rows ours stored in `tables`, into those of a fresh store (made by its migrations:
    the same columns, types, keys and indexes) with a bare sqlite3 executemany per 20,000
    rows: what any loader into those tables pays. Rows of `entity` per second."""
    upgrade(f"sqlite:///{target}")
    connection = sqlite3.connect(target)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    started = time.perf_counter()
    for table in tables:
        columns, rows = _stored_rows(stored, table)
        marks = ",".join("?" * len(columns))
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        while chunk := rows.fetchmany(20_000):
            connection.executemany(statement, chunk)
            connection.commit()
    return _count(stored, entity) / (time.perf_counter() - started)


def _bare_copy_store_shape(stored: Path, url: str, entity: str, tables: Sequence[str]) -> float:
    """The same with a bare psycopg COPY per 20,000 rows into a fresh PostgreSQL store."""
    upgrade(url.replace("postgresql://", "postgresql+psycopg://"))
    started = time.perf_counter()
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        for table in tables:
            columns, rows = _stored_rows(stored, table)
            booleans = {
                i for i, c in enumerate(_STORE_TABLES[table].columns) if c.type.python_type is bool
            }
            while chunk := rows.fetchmany(20_000):
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in chunk:
                        copy.write_row(
                            [
                                bool(v) if i in booleans and v is not None else v
                                for i, v in enumerate(row)
                            ]
                        )
                connection.commit()
    return _count(stored, entity) / (time.perf_counter() - started)


def _raw_httpx(url: str) -> float:
    started = time.perf_counter()
    total, cursor = 0, None
    with httpx.Client() as client:
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            body = client.get(f"{url}/events", params=params).json()
            total += len(body["items"])
            cursor = body["next_cursor"]
            if not cursor:
                break
    return total / (time.perf_counter() - started)


def _pull_once() -> dict[str, Any]:
    from tasks.pull_process import pull_process
    from yunying.config import load_settings
    from yunying.sources.pull import pull_source
    from yunying.store.engine import create_store_engine

    settings = load_settings()
    upgrade(settings.store_url)
    engine = create_store_engine(settings.store_url)
    started = time.perf_counter()
    source = settings.source(os.environ.get("BENCH_SOURCE", "app-events"))
    with pull_process():  # as the pull task runs it
        stats = pull_source(engine, source, settings.pull_rules, "bench")
    elapsed = time.perf_counter() - started
    return {
        "rows": stats.pulled,
        "seconds": elapsed,
        "rows_per_s": stats.pulled / elapsed,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


if __name__ == "__main__":
    raw_url = os.environ.get("BENCH_RAW_HTTPX_URL")
    print(json.dumps({"rows_per_s": _raw_httpx(raw_url)} if raw_url else _pull_once()))
