"""Reading a SQL source: a table or query, incrementally by a column, in batches streamed
from the database."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError

from yunying.errors import ConfigError, TransientError
from yunying.sources.config import SqlSource
from yunying.sources.read.batch import Batch
from yunying.store.engine import create_store_engine


def read_sql(source: SqlSource, watermark: str | None) -> Iterator[Batch]:
    base = source.query or f"SELECT * FROM {source.table}"
    params: dict[str, Any] = {}
    column = source.incremental_column
    if column:
        # `>=` re-reads rows that share the watermark value; upserts make that harmless.
        base = f"SELECT * FROM ({base}) AS src"
        if watermark is not None:  # rows without a value cannot be followed: read each time
            base += f" WHERE {column} >= :watermark OR {column} IS NULL"
            params["watermark"] = _looked_back(watermark, source.lookback)
        base += f" ORDER BY {column}"
    _sqlite_file_exists(source)
    engine = create_store_engine(source.url)
    try:
        with engine.connect() as connection:
            for columns, rows in _driver_batches(connection, base, params, source.batch_size):
                mark = _last_mark(rows, columns.index(column)) if column else None
                yield Batch(rows, mark, columns=columns)
    except (OperationalError, DBAPIError) as exc:
        unreachable = isinstance(exc, OperationalError) or exc.connection_invalidated
        if unreachable and not _sqlite_query_error(exc):
            raise TransientError(f"source {source.name}: database unreachable") from exc
        raise ConfigError(f"source {source.name}: query failed: {exc.orig}") from exc
    finally:
        engine.dispose()


def _sqlite_file_exists(source: SqlSource) -> None:
    """A SQLite source's file must exist: SQLite would create an empty one and every read
    would fail as if the database were unreachable, retried in vain."""
    url = make_url(source.url)
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return
    if path.startswith("file:"):
        path = path.removeprefix("file:").split("?", 1)[0]
    if not Path(path).is_file():
        raise ConfigError(
            f"source {source.name}: file not found: {Path(path).resolve()}"
            f" (from its url {source.url!r}; fix the path in yunying.toml)"
        )


def _last_mark(rows: Sequence[Any], index: int) -> str | None:
    """The batch's last value of the incremental column that is not NULL. Rows where it is
    NULL cannot be followed: they are read on every run, and their upserts absorb that."""
    for row in reversed(rows):
        if row[index] is not None:
            return str(row[index])
    return None


def _sqlite_query_error(exc: DBAPIError) -> bool:
    # SQLite reports a query naming a missing table or column as an OperationalError, the
    # class other databases keep for a connection they lost.
    return isinstance(exc.orig, sqlite3.OperationalError) and any(
        problem in str(exc.orig) for problem in ("no such ", "syntax error", "ambiguous")
    )


def _driver_batches(
    connection: Connection, query: str, params: dict[str, Any], size: int
) -> Iterator[tuple[tuple[str, ...], Sequence[Any]]]:
    """The query's rows in batches, as the driver's own tuples: building SQLAlchemy rows
    would cost as much as the rest of the read. PostgreSQL streams through a server-side
    cursor; other databases through SQLAlchemy's streaming results."""
    statement = text(query)
    if connection.dialect.name not in ("sqlite", "postgresql"):
        result = connection.execution_options(stream_results=True, yield_per=size).execute(
            statement, params
        )
        columns = tuple(result.keys())
        for rows in result.partitions(size):
            yield columns, rows
        return
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    values = compiled.construct_params(params)
    args = tuple(values[n] for n in compiled.positiontup or ()) if compiled.positional else values
    driver: Any = connection.connection.driver_connection
    server_side = dialect.name == "postgresql"
    cursor = driver.cursor(name="yunying_source") if server_side else driver.cursor()
    try:
        cursor.execute(compiled.string, args)
        columns = tuple(d[0] for d in cursor.description)
        while rows := cursor.fetchmany(size):
            yield columns, rows
    except dialect.loaded_dbapi.Error as exc:
        # Wrapped as SQLAlchemy wraps what it executes, lost connections marked as such.
        raise DBAPIError.instance(
            compiled.string,
            args,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=dialect.is_disconnect(exc, driver, cursor),
            dialect=dialect,
        ) from exc
    finally:
        cursor.close()


def _looked_back(watermark: str, lookback: float) -> str | float:
    if not lookback:
        return watermark
    try:
        return float(watermark) - lookback
    except ValueError:
        moment = dt.datetime.fromisoformat(watermark) - dt.timedelta(seconds=lookback)
        return moment.isoformat(sep=" " if " " in watermark else "T")
