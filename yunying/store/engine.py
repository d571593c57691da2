"""Engines and sessions. Data functions take a Session and never commit; callers own it."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if make_url(url).drivername == "postgresql+psycopg":
        # No server-side prepared statements (psycopg prepares a statement on its fifth run):
        # one keeps the plan made when its tables were small, and a pull's anti-join then
        # scanned all of active_days for each batch instead of probing its key.
        kwargs["connect_args"] = {"prepare_threshold": None, **kwargs.get("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes writers queue.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    # Copy the log back every 64 MB, not 4 MB, so a pull's commits do not each pay a checkpoint.
    cursor.execute("PRAGMA wal_autocheckpoint=16000")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        yield session


def store_error_is_transient(error: BaseException) -> bool:
    """Whether a database error may go away on a retry: the connection was lost (a restart,
    a network blip), PostgreSQL cancelled the statement or chose it as a deadlock's or a
    serialization conflict's victim, or SQLite stayed locked past the busy timeout. Tasks
    are idempotent, so these are retried like a TransientError."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    driver_error = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(driver_error, psycopg.OperationalError):  # also raised by COPY on the driver
        return True
    return isinstance(driver_error, sqlite3.OperationalError) and "locked" in str(driver_error)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "postgresql"


def upsert_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on this session's database (SQLite or PostgreSQL)."""
    return (postgresql if is_postgres(session) else sqlite).insert(table)
