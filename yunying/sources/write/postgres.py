"""The PostgreSQL store's writer: batches arrive by COPY, straight into the table when that
is safe, else through a temporary staging table."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import add, itemgetter
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yunying.sources.validate.rows import EVENT_COLUMNS
from yunying.sources.write.batch import EventsText, NewEvents, Upsert
from yunying.sources.write.facts import (
    fold_events,
    fold_new_orders,
    fold_orders,
    spend_in,
    store_time,
)


class PostgresWriter:
    def upsert(self, session: Session, batch: Upsert) -> tuple[int, int]:
        """The rows upserted, orders folded into the facts; returns how many were new and how
        many were updated. When none of the batch's keys is stored (a first load), it is copied
        straight into the table (orders folded from the rows just written:
        `_copy_new_orders`); otherwise, or when a concurrent pull adds one of them meanwhile,
        through a staging table."""
        rows = batch.rows
        if len(batch.columns) > len(rows[0]):  # the load's id ends every row
            rows = list(map(add, rows, repeat((batch.load_id,))))
        copied = _copied_all_new(session, batch, rows)
        counts = (len(rows), 0) if copied else _upsert_staged(session, batch, rows)
        if batch.table == "orders" and not copied:
            # The recount joins the orders: planned on an empty table's statistics, it once
            # joined a first large batch in a nested loop, at a cost growing with its square.
            analyze_if_young(session, "orders", len(rows))
            staged = "SELECT user_id, created_at, day FROM stage_orders"
            spend = spend_in(batch.currency, batch.exchange_rates, "o")
            fold_orders(session, staged, {}, batch.orders_are_activity, spend)
        return counts

    def insert_events(self, session: Session, batch: NewEvents) -> int:
        """Straight into `events` when every event is new (`_copy_all_new`), else through the
        staging table; `on_fallback` hears why a batch took the slower way."""
        events, only, params = batch.events, batch.only, batch.params
        on_fallback = batch.on_fallback
        if _reads_tid_ranges(session):
            try:
                with session.begin_nested():
                    _copy_all_new(session, events, only, params)
                return events.count
            except (IntegrityError, psycopg.IntegrityError, _NotAllFound) as exc:
                if on_fallback is not None:
                    on_fallback(_FALLBACK_CAUSES.get(type(exc), "an event id already stored"))
        elif on_fallback is not None:
            on_fallback("PostgreSQL before 14 has no TID range scans")
        copy_to_stage(session, "events", EVENT_COLUMNS, events.text)
        # The rows the insert returns are exactly the new ones.
        insert_new = _from_stage("events", EVENT_COLUMNS, "ON CONFLICT (event_id) DO NOTHING")
        fold = fold_events(f"{insert_new} RETURNING user_id, name, occurred_at, day", only)
        return int(session.scalar(text(fold), params) or 0)


# What a young table's ANALYZE samples: the columns the facts' statements and the
# lifecycle's find and join rows by (users are only joined on their key); sampling every
# text column cost as much as upserting the rows. Autovacuum's analyze does the rest later.
_ANALYZED = {"users": "(user_id)", "orders": "(user_id, status)"}


def _copied_all_new(session: Session, batch: Upsert, rows: Sequence[Sequence[Any]]) -> bool:
    """Whether the batch went straight into its table: none of its keys was stored, and no
    concurrent pull stored one meanwhile (the COPY fails on the key and is undone)."""
    orders = batch.table == "orders"
    if (orders and not _reads_tid_ranges(session)) or _any_stored(session, batch, rows):
        return False
    try:
        with session.begin_nested():
            if orders:
                _copy_new_orders(session, batch, rows)
            else:
                _copy(session, batch.table, batch.columns, rows)
    except (IntegrityError, psycopg.IntegrityError, _NotAllFound):
        return False
    return True


def _any_stored(session: Session, batch: Upsert, rows: Sequence[Sequence[Any]]) -> bool:
    if not session.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {batch.table})")):
        return False  # a first load: no key to look up
    # Keys hold no space (KEY): one text, split on the server, costs less than an array.
    return bool(
        session.scalar(
            text(
                f"SELECT EXISTS (SELECT 1 FROM {batch.table}"
                f" WHERE {batch.columns[0]} = ANY(string_to_array(:keys, ' ')))"
            ),
            {"keys": " ".join(map(itemgetter(0), rows))},
        )
    )


def _upsert_staged(
    session: Session, batch: Upsert, rows: Sequence[Sequence[Any]]
) -> tuple[int, int]:
    """The batch (`rows`, in its columns' order) upserted through a staging table; returns
    how many rows were new and how many were updated (a row its conflict clause leaves alone
    is neither)."""
    copy_to_stage(session, batch.table, batch.columns, rows)
    # xmax is 0 on a row this statement inserted, not on one it updated: the new rows are
    # counted as they are written.
    inserted, written = session.execute(
        text(
            f"WITH written AS ({_from_stage(batch.table, batch.columns, batch.conflict)}"
            " RETURNING (xmax = 0) AS new)"
            " SELECT COUNT(*) FILTER (WHERE new), COUNT(*) FROM written"
        )
    ).one()
    return int(inserted), int(written) - int(inserted)


def _copy(
    session: Session, table: str, columns: Sequence[str], rows: str | Sequence[Sequence[Any]]
) -> None:
    """COPY `rows`: a text in COPY's format, or rows the driver writes (in C, a row at a
    time: twice as fast as building their text in Python)."""
    driver = session.connection().connection.driver_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        if isinstance(rows, str):
            copy.write(rows)
        else:
            for row in rows:
                copy.write_row(row)


def copy_to_stage(
    session: Session, table: str, columns: Sequence[str], rows: str | Sequence[Sequence[Any]]
) -> None:
    """PostgreSQL: COPY the batch (text in COPY's format, or rows) into the temporary table
    stage_<table>, emptied at commit."""
    names = ", ".join(columns)
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        # One round trip; the rows of an earlier load in this transaction are deleted.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} ON COMMIT DELETE ROWS AS"
            f" SELECT {names} FROM {table} WITH NO DATA; DELETE FROM stage_{table}"
        )
    _copy(session, f"stage_{table}", columns, rows)


def _from_stage(table: str, columns: Sequence[str], conflict: str) -> str:
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) SELECT {names} FROM stage_{table} {conflict}"


def analyze_if_young(session: Session, table: str, rows: int) -> None:
    """Refresh the table's statistics while it is small next to the `rows` just written into
    it (ANALYZE samples at most 30,000 rows); once it is large, nightly loads leave it to
    autovacuum."""
    known = session.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:table AS regclass)"),
        {"table": table},
    )
    if known is None or known < 4 * rows:
        session.execute(text(f"ANALYZE {table} {_ANALYZED.get(table, '')}"))


class _NotAllFound(Exception):
    """The new pages of a table hold fewer of a batch's rows than it has."""


_FALLBACK_CAUSES: dict[type[Exception], str] = {
    _NotAllFound: "some rows went into pages that were not new, or a concurrent pull"
    " stored one of the batch's (user, day) pairs"
}


def _reads_tid_ranges(session: Session) -> bool:
    driver = session.connection().connection.driver_connection
    return driver.info.server_version >= 140000  # type: ignore[union-attr, no-any-return]


def _copy_new_orders(session: Session, batch: Upsert, rows: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL, when every order is new: COPY the batch straight into `orders` and fold
    it into the facts from there, reading back the rows this savepoint wrote, as
    `_copy_all_new` does for events (and undone the same ways)."""
    params = {"start": _last_page(session, "orders"), "first": rows[0][0]}
    _copy(session, "orders", batch.columns, rows)
    spend = spend_in(batch.currency, batch.exchange_rates)
    columns = f"user_id, {spend} AS amount, status, created_at, day"
    fresh = _written_since("orders", columns, "order_id")
    (fold,) = fold_new_orders(fresh, batch.orders_are_activity, postgres=True)
    if session.scalar(text(fold), {**params, "now": store_time(session)}) != len(rows):
        raise _NotAllFound


def _last_page(session: Session, table: str) -> str:
    """The first tuple of the table's last page so far: a COPY's rows go into that page and
    the ones after it."""
    return str(
        session.scalar(
            text(
                f"SELECT format('(%s,0)', GREATEST(pg_relation_size('{table}')"
                " / current_setting('block_size')::int - 1, 0))"
            )
        )
    )


def _written_since(table: str, columns: str, key: str) -> str:
    """The rows of `table` from the tuple `:start` on that the (sub)transaction which wrote
    the row whose `key` is `:first` wrote."""
    return (
        f"SELECT {columns} FROM {table} WHERE ctid >= CAST(:start AS tid)"
        f" AND xmin = (SELECT xmin FROM {table} WHERE {key} = :first)"
    )


def _copy_all_new(session: Session, events: EventsText, only: str, params: dict[str, Any]) -> None:
    """PostgreSQL, when every event is new (the usual case): COPY the batch straight into
    `events` and fold it into the facts and active days from there, reading back the rows
    this savepoint wrote. The rows are parsed and written once, not twice as through a
    staging table.

    Why the rows read back are exactly the batch's: a COPY appends from the table's last
    page onwards (a TID range scan from there needs PostgreSQL 14), and every row one
    (sub)transaction writes carries its id in `xmin`, the same for all of them; a
    concurrent writer's rows carry another. Rows the COPY put into older pages that had
    room are not read back, so the count of rows found is checked against the batch's:
    fewer, and `_NotAllFound` undoes the savepoint. A known event id fails the COPY on the
    key, and a (user, day) pair that a concurrent pull adds between the look-up and the
    insert fails on active_days' key; both undo the savepoint as well, and the caller then
    stages the batch, which is correct in every case, only slower."""
    start = _last_page(session, "events")
    _copy(session, "events", EVENT_COLUMNS, events.text)
    fresh = _written_since("events", "user_id, name, occurred_at, day", "event_id")
    params = {**params, "start": start, "first": events.first_id}
    found = session.scalar(text(fold_events(fresh, only, look_pairs_up=True)), params)
    if found != events.count:
        raise _NotAllFound
