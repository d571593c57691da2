"""Read a source in batches. Each reader yields `Batch`es of raw records (dicts) with the
watermark to store once the batch is committed; memory holds one batch at a time."""

from __future__ import annotations

import csv
import datetime as dt
import glob
import gzip
import io
import json
import os
import sqlite3
import zlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError

from yunying.errors import ConfigError, TransientError
from yunying.http_client import request, with_retries
from yunying.sources.config import FileSource, HttpSource, SourceConfig, SqlSource
from yunying.sources.paginators import Request, dig, paginator
from yunying.sources.records import Rejected
from yunying.store.engine import create_store_engine

Record = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    records: Sequence[Any]  # dicts, or rows of values in `columns` order
    watermark: str | None  # where the next run resumes; None keeps the old one
    unreadable: list[Rejected] = field(default_factory=list)  # lines that are no record
    columns: tuple[str, ...] | None = None
    # Files that could not be read whole: (path, why and what became of their rows).
    set_aside: list[tuple[str, str]] = field(default_factory=list)


def read_source(
    source: SourceConfig, watermark: str | None, loaded_files: Collection[str] = ()
) -> Iterator[Batch]:
    """The source's records from the watermark on; a file source reads the files it has not
    loaded whole (`loaded_files`), whatever their names."""
    if isinstance(source, SqlSource):
        return read_sql(source, watermark)
    if isinstance(source, HttpSource):
        return read_http(source, watermark)
    return read_file(source, loaded_files)


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


def read_http(source: HttpSource, watermark: str | None) -> Iterator[Batch]:
    pages = paginator(source)
    with httpx.Client(timeout=source.timeout_seconds, headers=_auth_headers(source)) as client:
        request: Request | None = pages.first(watermark)
        # Pages are gathered into batches of about batch_size: each batch is a transaction.
        pending: list[Any] = []
        pending_mark: str | None = None
        previous: list[Any] = []
        while request is not None:
            response = with_retries(
                partial(_get, client, request.url, dict(request.params)), attempts=6
            )
            body = _json_body(source, response)
            items = dig(body, source.items_path)
            if not isinstance(items, list):
                raise ConfigError(
                    f"source {source.name}: items_path {source.items_path!r} is no list"
                )
            if items and items == previous:  # it would go on for ever
                raise ConfigError(
                    f"source {source.name}: the API gave the same page twice in a row"
                    f" ({response.url}); check pagination and next_cursor_path"
                )
            previous = items
            following, mark = pages.following(request, response, body, items)
            request = following if items else None  # an empty page is the last
            pending += items
            pending_mark = mark or pending_mark
            if len(pending) >= source.batch_size or request is None:
                if pending or pending_mark:
                    yield Batch(pending, pending_mark)
                pending, pending_mark = [], None


def _json_body(source: HttpSource, response: httpx.Response) -> Any:
    # orjson decodes a page in about half the standard library's time, during which
    # Python's GIL is held.
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:  # not UTF-8, NaN, a huge number: read as the stdlib reads
        pass
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise ConfigError(
            f"source {source.name}: {response.url} answered with no JSON ({kind}):"
            f" {response.text[:200]!r}"
        ) from None


def _get(client: httpx.Client, url: str, params: dict[str, Any]) -> httpx.Response:
    # Empty params would make httpx drop the query string of a Link URL.
    return request(client, "GET", url, params=params or None)


def _auth_headers(source: HttpSource) -> dict[str, str]:
    if source.auth == "none" or source.token_env is None:
        return {}
    secret = os.environ.get(source.token_env)
    if not secret:
        raise ConfigError(f"source {source.name}: env var {source.token_env} is not set")
    if source.auth == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    if source.auth == "basic":
        user, _, password = secret.partition(":")
        return {"Authorization": httpx.BasicAuth(user, password)._auth_header}
    return {source.header_name: secret}


def file_paths(source: FileSource) -> list[str]:
    return sorted(glob.glob(source.path))


def read_file(source: FileSource, loaded: Collection[str]) -> Iterator[Batch]:
    """Files are read in name order, skipping those in `loaded`; a file's last batch has its
    path as the watermark, so the file is recorded as loaded with that batch. A file that
    cannot be read whole (a truncated or corrupt .gz, a file gone meanwhile) is set aside:
    the rows read before the break load as usual, the file is not recorded as loaded (so a
    complete copy is read on the next pull), and the source goes on with its next file."""
    for path in file_paths(source):
        if path in loaded:
            continue
        records: list[Record] = []
        unreadable: list[Rejected] = []
        read = 0
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as raw:
                # utf-8-sig: a byte order mark (spreadsheets export CSV with one) is skipped.
                stream = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
                rows = _csv_rows(stream) if source.format == "csv" else _jsonl_rows(stream)
                for record, bad in rows:
                    if bad is not None:
                        unreadable.append(bad)
                    else:
                        records.append(record)
                    read += 1
                    if len(records) + len(unreadable) >= source.batch_size:
                        yield Batch(records, None, unreadable)
                        records, unreadable = [], []
        except (OSError, EOFError, zlib.error, csv.Error) as exc:
            yield Batch(records, None, unreadable, set_aside=[(path, _broken(exc, read))])
            continue
        yield Batch(records, path, unreadable)


def _broken(exc: BaseException, read: int) -> str:
    """Why a file was set aside, and what became of the rows read before the break."""
    # A reader stops at a line end, so a line the break cut short is not among those rows.
    loaded = f"its first {read:,} rows loaded" if read else "none of its rows loaded"
    what = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        what = f"truncated ({what})"
    return (
        f"cannot be read whole: {what}; {loaded} (bad ones rejected as usual); it is"
        " not marked loaded, so it is read again on the next pull"
    )


def _csv_rows(stream: io.TextIOWrapper) -> Iterator[tuple[Record, Rejected | None]]:
    for row in csv.DictReader(stream):
        if None in row:
            yield {}, Rejected(json.dumps(row, default=str), "csv", "more fields than the header")
        else:
            yield dict(row), None


def _jsonl_rows(stream: io.TextIOWrapper) -> Iterator[tuple[Record, Rejected | None]]:
    for line in stream:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield {}, Rejected(line[:2000], "json", exc.msg)
            continue
        if not isinstance(record, dict):
            yield {}, Rejected(line[:2000], "json", "not an object")
        else:
            yield record, None
