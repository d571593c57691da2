"""The SQLite store's writer. One writer at a time (SQLite's lock), so the rows a statement
added are those whose rowid is above the largest before it: updated rows keep theirs."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain, repeat
from operator import add
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from yunying.sources.validate.rows import EVENT_COLUMNS
from yunying.sources.write.batch import NewEvents, Upsert
from yunying.sources.write.facts import (
    fact_updates,
    fold_new_orders,
    fold_orders,
    spend_in,
    store_time,
)


class SqliteWriter:
    def upsert(self, session: Session, batch: Upsert) -> tuple[int, int]:
        """Multi-row INSERTs on the driver; returns how many rows were new and how many were
        updated. (A JSON text read by json_each, as events go in, re-parses each row once per
        column.)"""
        table, columns, rows = batch.table, batch.columns, batch.rows
        before = _rowid_ends_at(session, table)
        if len(columns) > len(rows[0]):  # the load's id ends every row
            rows = list(map(add, rows, repeat((batch.load_id,))))
        driver: Any = session.connection().connection.driver_connection
        changes = driver.total_changes  # inserted and updated rows, not those left alone
        _insert_rows(driver, f"INSERT INTO {table} ({', '.join(columns)})", rows, batch.conflict)
        changes = driver.total_changes - changes
        new = int(
            session.scalar(
                text(f"SELECT COUNT(*) FROM {table} WHERE rowid > :before"), {"before": before}
            )
            or 0
        )
        if table == "orders":
            _fold(session, batch, before, all_new=new == len(rows))
        return new, changes - new

    def insert_events(self, session: Session, batch: NewEvents) -> int:
        """The batch goes in as one JSON text: one statement, during which Python's other
        thread (reading the next batch) runs; an executemany would hand the GIL back and
        forth on every row."""
        params = {**batch.params}
        params["before"] = _rowid_ends_at(session, "events")
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(EVENT_COLUMNS)))
        inserted = session.execute(
            text(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT {values}"
                " FROM json_each(:rows) WHERE true ON CONFLICT (event_id) DO NOTHING"
            ),
            {"rows": batch.events.text},
        )
        fresh = (
            "(SELECT user_id, name, occurred_at, day FROM events WHERE rowid > :before) AS fresh"
        )
        for statement in fact_updates(fresh, batch.only):
            session.execute(text(statement), params)
        return int(inserted.rowcount)  # type: ignore[attr-defined]


# Rows per INSERT: fewer give Python's lock up more often, more take longer to prepare.
ROWS_PER_STATEMENT = 256


def _insert_rows(
    driver: sqlite3.Connection, insert: str, rows: Sequence[Sequence[Any]], conflict: str
) -> None:
    """`insert` VALUES the rows, ROWS_PER_STATEMENT to a statement. A statement per row gives
    Python's lock up around each row, and while the next batch is validated in the other
    thread each row then waits to get it back."""
    width = len(rows[0])
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    per = max(1, min(ROWS_PER_STATEMENT, limit))
    whole = len(rows) // per * per

    def statement(count: int) -> str:
        values = ", ".join(["(" + ", ".join("?" * width) + ")"] * count)
        return f"{insert} VALUES {values} {conflict}"

    # The full chunks in one executemany: their statement is prepared once.
    chunks = range(0, whole, per)
    driver.executemany(statement(per), (tuple(chain(*rows[at : at + per])) for at in chunks))
    if whole < len(rows):
        driver.execute(statement(len(rows) - whole), tuple(chain(*rows[whole:])))


# The orders above the rowid `:before`, read by rowid whatever the statement around them:
# grouped by user, SQLite read the whole table through the index on user_id instead.
NEW_ORDERS = (
    "SELECT user_id, {spend} AS amount, status, created_at, day FROM orders NOT INDEXED"
    " WHERE rowid > :before"
)


def _rowid_ends_at(session: Session, table: str) -> int:
    """The table's largest rowid, read holding SQLite's write lock (taken by a write of no
    rows): no other writer can then add rows above it before this transaction ends, and the
    rows above it are this batch's. Read before the lock, another pull's rows committed in
    between were taken for the batch's and folded a second time."""
    session.execute(text(f"DELETE FROM {table} WHERE FALSE"))
    return int(session.scalar(text(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}")) or 0)


# The batch's orders (their user_id, created_at, day) from the JSON array `:batch`.
BATCH_ORDERS = (
    "SELECT json_extract(value, '$[0]') AS user_id, json_extract(value, '$[1]') AS created_at,"
    " json_extract(value, '$[2]') AS day FROM json_each(:batch)"
)


def _fold(session: Session, batch: Upsert, before: int, all_new: bool) -> None:
    """The orders just written into the facts: when all are new, from the rows above the
    rowid the table ended at (a range of the table read in order, no index); else each
    touched user's orders are recounted (`fold_orders`), the batch given as a JSON text."""
    if not all_new:
        written = orjson.dumps([(row[1], row[5], row[6]) for row in batch.rows]).decode()
        spend = spend_in(batch.currency, batch.exchange_rates, "o")
        fold_orders(session, BATCH_ORDERS, {"batch": written}, batch.orders_are_activity, spend)
        return
    params = {"before": before, "now": store_time(session)}
    new_orders = NEW_ORDERS.format(spend=spend_in(batch.currency, batch.exchange_rates))
    for statement in fold_new_orders(new_orders, batch.orders_are_activity, postgres=False):
        session.execute(text(statement), params)
