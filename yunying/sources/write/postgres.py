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
from yunying.sources.write.facts import fold_events


class PostgresWriter:
    def upsert(self, session: Session, batch: Upsert) -> int:
        """The rows upserted; returns how many were new."""
        rows = batch.rows
        if len(batch.columns) > len(rows[0]):  # the load's id ends every row
            rows = list(map(add, rows, repeat((batch.load_id,))))
        inserted = _upsert(session, batch, rows)
        _analyze_if_young(session, batch.table, len(batch.rows), _ANALYZED.get(batch.table, ""))
        return inserted

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


# What a young table's ANALYZE samples: the columns the facts' statements find and join
# rows by (users are only joined on their key); sampling every text column cost as much as
# upserting the rows. Autovacuum's analyze does the rest later.
_ANALYZED = {"users": "(user_id)", "orders": "(user_id, status, load_id)"}


def _upsert(session: Session, batch: Upsert, rows: Sequence[Sequence[Any]]) -> int:
    """The batch (`rows`, in its columns' order) upserted; returns how many rows were new.
    When none of its keys is stored (a first load), it is copied straight into the table;
    otherwise, or when a concurrent pull adds one of them meanwhile, through a staging
    table."""
    table, columns = batch.table, batch.columns
    # Keys hold no space (KEY): one text, split on the server, costs less than an array.
    known = session.scalar(
        text(
            f"SELECT EXISTS (SELECT 1 FROM {table}"
            f" WHERE {columns[0]} = ANY(string_to_array(:keys, ' ')))"
        ),
        {"keys": " ".join(map(itemgetter(0), rows))},
    )
    if not known:
        try:
            with session.begin_nested():
                _copy(session, table, columns, rows)
            return len(rows)
        except (IntegrityError, psycopg.IntegrityError):
            pass
    copy_to_stage(session, table, columns, rows)
    # xmax is 0 on a row this statement inserted, not on one it updated: the new rows are
    # counted as they are written.
    inserted = session.scalar(
        text(
            f"WITH written AS ({_from_stage(table, columns, batch.conflict)}"
            " RETURNING (xmax = 0) AS new) SELECT COUNT(*) FILTER (WHERE new) FROM written"
        )
    )
    return int(inserted or 0)


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


def _analyze_if_young(session: Session, table: str, batch: int, columns: str = "") -> None:
    """PostgreSQL: refresh the table's statistics while it is small next to the batch just
    written. Planned on an empty table's statistics (a few rows), the facts of a first
    large batch of orders were joined in a nested loop, at a cost growing with the square of
    the batch; ANALYZE samples
    at most 30,000 rows, and once the table is large the nightly batches leave it alone."""
    known = session.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:table AS regclass)"),
        {"table": table},
    )
    if known is None or known < 4 * batch:
        session.execute(text(f"ANALYZE {table} {columns}"))


class _NotAllFound(Exception):
    """The new pages of `events` hold fewer of a batch's rows than it has."""


_FALLBACK_CAUSES: dict[type[Exception], str] = {
    _NotAllFound: "some rows went into pages that were not new, or a concurrent pull"
    " stored one of the batch's (user, day) pairs"
}


def _reads_tid_ranges(session: Session) -> bool:
    driver = session.connection().connection.driver_connection
    return driver.info.server_version >= 140000  # type: ignore[union-attr, no-any-return]


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
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        # The last page so far may take the first rows; later ones are new.
        cursor.execute(
            "SELECT GREATEST(pg_relation_size('events') / current_setting('block_size')::int"
            " - 1, 0)"
        )
        (start,) = cursor.fetchone()
        with cursor.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            copy.write(events.text)
    fresh = (
        "SELECT user_id, name, occurred_at, day FROM events WHERE ctid >= CAST(:start AS tid)"
        " AND xmin = (SELECT xmin FROM events WHERE event_id = :first)"
    )
    params = {**params, "start": f"({start},0)", "first": events.first_id}
    found = session.scalar(text(fold_events(fresh, only, look_pairs_up=True)), params)
    if found != events.count:
        raise _NotAllFound
