"""Write validated batches into the store: upserts by natural key, rejects set aside, and the
per-user facts (last activity, counts, spend, active days) kept current set-based."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, itemgetter
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import orjson
import psycopg
from sqlalchemy import Date, DateTime, Numeric, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yunying.sources.config import FIELDS, Entity, FileSource
from yunying.sources.readers import file_paths
from yunying.sources.records import (
    EVENT_COLUMNS,
    NO_CONSENT_ASSUMED,
    ORDER_COLUMNS,
    USER_COLUMNS,
    EventRow,
    InvalidRecord,
    RecordDefaults,
    Rejected,
    StoreRow,
    event_values,
    order_values,
    plain_event,
    plain_events,
    plain_orders,
    plain_users,
    to_event_row,
    to_order_row,
    to_user_row,
    user_values,
)
from yunying.store.engine import is_postgres, upsert_insert, utcnow
from yunying.store.models import SourceFile, SourceWatermark


@dataclass
class LoadStats:
    pulled: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    watermark: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    set_aside: list[str] = field(default_factory=list)  # "<file>: <why>", files not read whole
    fast_path_fallbacks: int = 0  # batches that left the PostgreSQL fast path (load_events)

    def add(self, other: LoadStats) -> None:
        self.pulled += other.pulled
        self.inserted += other.inserted
        self.updated += other.updated
        self.rejected += other.rejected
        self.watermark = other.watermark or self.watermark
        self.set_aside += other.set_aside
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count


T = TypeVar("T")
Rejects = list[Rejected]


def validate(
    entity: Entity,
    records: Sequence[Any],
    mapping: dict[str, str],
    zone: ZoneInfo,
    columns: Sequence[str] | None = None,
    defaults: RecordDefaults = NO_CONSENT_ASSUMED,
) -> tuple[list[StoreRow], Rejects]:
    """Split raw records into store rows (`EventRow`, `UserRow` or `OrderRow` as `entity`
    says) and rejects. Records are dicts, or rows of values in `columns` order (what a SQL
    source reads); users get `defaults` for the locale and opt-ins they leave out."""
    fields = FIELDS[entity]
    picked = _picker([mapping.get(f, f) for f in fields], columns)(records)
    now = utcnow()
    good: list[StoreRow] = []
    bad: Rejects = []
    for start in range(0, len(records), _CHUNK):
        chunk = [column[start : start + _CHUNK] for column in picked]
        plain: Sequence[StoreRow | None]
        if entity == "events":
            plain = plain_events(chunk, zone)
        elif entity == "users":
            plain = plain_users(chunk, zone, now, defaults)
        else:
            plain = plain_orders(chunk, zone, defaults)
        rows = cast(list[StoreRow | None], plain)  # the same list, filled in below
        for offset in _nones(rows):
            try:
                rows[offset] = _row(
                    entity, [column[offset] for column in chunk], zone, now, defaults
                )
            except InvalidRecord as exc:
                record = records[start + offset]
                whole = record if columns is None else dict(zip(columns, record, strict=True))
                raw = json.dumps(whole, default=str, ensure_ascii=False)
                bad.append(Rejected(raw, exc.field, exc.why))
        good += filter(None, rows)  # in C: the rows kept, in order
    return good, bad


def _row(
    entity: Entity, values: list[Any], zone: ZoneInfo, now: dt.datetime, defaults: RecordDefaults
) -> StoreRow:
    """One record's row, or InvalidRecord saying what is wrong."""
    raw = dict(zip(FIELDS[entity], values, strict=True))
    if entity == "events":
        return plain_event(values, zone) or event_values(to_event_row(raw, zone))
    if entity == "users":
        return user_values(to_user_row(raw, zone, now, defaults))
    return order_values(to_order_row(raw, zone, defaults))


def _nones(items: list[Any]) -> Iterator[int]:
    """Where `items` holds None (found in C), as the caller fills them in."""
    try:
        position = items.index(None)
        while True:
            yield position
            position = items.index(None, position + 1)
    except ValueError:
        return


# Events are checked a chunk at a time, column by column (`plain_events`); what that leaves
# is checked one by one.
_CHUNK = 1000


def _picker(
    sources: list[str], columns: Sequence[str] | None
) -> Callable[[Sequence[Any]], list[list[Any]]]:
    """A function from records to the values of each of `sources`, a column each, None where
    a record has none. A column is picked in one C-level map unless a record lacks it."""
    if columns is not None:
        where = [columns.index(name) if name in columns else None for name in sources]
        return lambda rows: [
            [None] * len(rows) if i is None else list(map(itemgetter(i), rows)) for i in where
        ]

    def column(records: Sequence[Any], name: str) -> list[Any]:
        try:
            return list(map(itemgetter(name), records))
        except (KeyError, TypeError):  # a field missing, or no object at all
            return [record.get(name) if isinstance(record, dict) else None for record in records]

    return lambda records: [column(records, name) for name in sources]


def load_rows(
    session: Session,
    entity: Entity,
    rows: Sequence[StoreRow],
    load_id: str,
    activity_events: Sequence[str] = (),
    orders_are_activity: bool = True,
) -> tuple[int, int]:
    """Upsert rows of one entity; returns (inserted, updated). With `orders_are_activity`,
    an order's local day is an active day of its user (`lifecycle.orders_are_activity`)."""
    if entity == "events":
        events = cast(Sequence[EventRow], rows)
        return load_events(session, events_text(events, is_postgres(session)), activity_events), 0
    if not rows:
        return 0, 0
    rows = _last_per_id(rows)
    table = entity
    columns = list(USER_COLUMNS if entity == "users" else (*ORDER_COLUMNS, "load_id"))
    key = columns[0]
    assignments = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    conflict = f"ON CONFLICT ({key}) DO UPDATE SET {assignments}"
    if is_postgres(session):
        copy_text = _copy_rows_text(rows)
        if entity == "orders":  # the load's id ends every line
            copy_text = copy_text.replace("\n", f"\t{load_id}\n")
        inserted = _upsert_postgres(session, table, columns, rows, copy_text, conflict)
        _analyze_if_young(session, table, len(rows), _ANALYZED[entity])
    else:
        inserted = _upsert_sqlite(session, table, columns, rows, load_id, conflict)
    if entity == "orders":
        fold_orders(session, load_id, orders_are_activity)
    return inserted, len(rows) - inserted


# What a young table's ANALYZE samples: the orders' facts join on several columns; users are
# only joined on their key, and sampling every text column of users cost as much as
# upserting them (56 against 39 ms for 3,000 users). Autovacuum's analyze does the rest later.
_ANALYZED: dict[Entity, str] = {"users": "(user_id)", "events": "", "orders": ""}


def _last_per_id(rows: Sequence[T]) -> Sequence[T]:
    """One rule for an id (a row's first value) repeated inside a batch, for every entity:
    the last record wins (for users and orders, the latest version; one statement cannot
    upsert a key twice). Across pulls an event is never changed: the first stored stays.
    A repeated id is rare: the check is one set of the ids."""
    ids = [row[0] for row in rows]  # type: ignore[index]
    if len(set(ids)) == len(ids):
        return rows
    return list({row[0]: row for row in rows}.values())  # type: ignore[index]


def _upsert_sqlite(
    session: Session,
    table: str,
    columns: list[str],
    rows: Sequence[Any],
    load_id: str,
    conflict: str,
) -> int:
    """One executemany on the driver; returns how many rows were new. New rows take rowids
    above the largest so far (one writer at a time), updated ones keep theirs. (A JSON text
    read by json_each, as events go in, re-parses each row once per column.)"""
    before = session.scalar(text(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}"))
    if len(columns) > len(rows[0]):  # the load's id ends every row
        rows = list(map(add, rows, repeat((load_id,))))
    marks = ", ".join("?" * len(columns))
    driver = session.connection().connection.driver_connection
    driver.executemany(  # type: ignore[union-attr]
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {conflict}", rows
    )
    new = session.scalar(
        text(f"SELECT COUNT(*) FROM {table} WHERE rowid > :before"), {"before": before}
    )
    return int(new or 0)


def _upsert_postgres(
    session: Session,
    table: str,
    columns: list[str],
    rows: Sequence[Sequence[Any]],
    copy_text: str,
    conflict: str,
) -> int:
    """The batch (COPY text) upserted; returns how many rows were new. When none of its keys
    is stored (a first load), it is copied straight into the table; otherwise, or when a
    concurrent pull adds one of them meanwhile, through a staging table."""
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
                _copy(session, table, columns, copy_text)
            return len(rows)
        except (IntegrityError, psycopg.IntegrityError):
            pass
    _copy_to_stage(session, table, columns, copy_text)
    # xmax is 0 on a row this statement inserted, not on one it updated: the new rows are
    # counted as they are written.
    inserted = session.scalar(
        text(
            f"WITH written AS ({_from_stage(table, columns, conflict)}"
            " RETURNING (xmax = 0) AS new) SELECT COUNT(*) FILTER (WHERE new) FROM written"
        )
    )
    return int(inserted or 0)


def _copy(session: Session, table: str, columns: Sequence[str], copy_text: str) -> None:
    driver = session.connection().connection.driver_connection
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        copy.write(copy_text)


def _copy_rows_text(rows: Sequence[Sequence[Any]]) -> str:
    """Rows of text, None, bools and integers in COPY's text format, a column at a time."""
    columns = [_copy_column(column) for column in zip(*rows, strict=True)]
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _copy_column(column: Sequence[Any]) -> Sequence[str]:
    kinds = set(map(type, column))
    if kinds <= _TEXTS:
        joined = "".join(filter(None, column))
        if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
            column = [value if value is None else _copy_escape(value) for value in column]
        return column if type(None) not in kinds else list(map(_NULL.get, column, column))
    if kinds == {bool}:
        return list(map(_BOOLEANS.__getitem__, column))
    return ["\\N" if value is None else str(value) for value in column]


_TEXTS = frozenset((str, type(None)))
_NULL = {None: "\\N"}
_BOOLEANS = {True: "t", False: "f"}


@dataclass(frozen=True)
class EventsText:
    """Event rows as the one text the store's bulk statement reads: COPY's text format on
    PostgreSQL, a JSON array on SQLite."""

    count: int
    text: str
    first_id: str  # the first row's event_id


def events_text(rows: Sequence[EventRow], postgres: bool) -> EventsText:
    rows = _last_per_id(rows)
    text = _copy_text(rows) if postgres else _json_text(rows)
    return EventsText(len(rows), text, rows[0][0] if rows else "")


def _copy_text(rows: Sequence[EventRow]) -> str:
    # Joining the values as they are is right unless one holds a character COPY escapes;
    # counting the separators in the result tells whether one does (a rare event name), and
    # only then is the batch escaped value by value.
    text = "\n".join(map("\t".join, rows)) + "\n"
    if (
        text.count("\t") == (len(EVENT_COLUMNS) - 1) * len(rows)
        and text.count("\n") == len(rows)
        and "\\" not in text
        and "\r" not in text
    ):
        return text
    return "".join("\t".join(map(_copy_escape, row)) + "\n" for row in rows)


def _copy_escape(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _json_text(rows: Sequence[EventRow]) -> str:
    # orjson writes a batch in a sixth of the time joining its values took (0.05 against
    # 0.3 µs per event), with Python's GIL held all along.
    return orjson.dumps(rows).decode()


def load_events(
    session: Session,
    events: EventsText,
    activity_events: Sequence[str],
    on_fallback: Callable[[str], None] | None = None,
) -> int:
    """Insert the events whose id is new (events never change) and fold exactly those into
    the per-user facts and active days, so a rerun or an overlapping look-back counts nothing
    twice. Returns how many were new. On PostgreSQL, `on_fallback` hears why a batch took
    the staging table instead of the direct COPY (`_copy_all_new`): slower, as correct."""
    if not events.count:
        return 0
    only, params = _activity_filter(activity_events)
    params["now"] = _store_time(session)
    skip_known = "ON CONFLICT (event_id) DO NOTHING"
    if is_postgres(session):
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
        _copy_to_stage(session, "events", EVENT_COLUMNS, events.text)
        # The rows the insert returns are exactly the new ones.
        insert_new = _from_stage("events", EVENT_COLUMNS, skip_known)
        fold = _fold_events(f"{insert_new} RETURNING user_id, name, occurred_at, day", only)
        return int(session.scalar(text(fold), params) or 0)
    # SQLite: new rows take rowids above the largest so far (one writer at a time). The batch
    # goes in as one JSON text: one statement, during which Python's other thread (reading
    # the next batch) runs; an executemany would hand the GIL back and forth on every row.
    params["before"] = session.scalar(text("SELECT COALESCE(MAX(rowid), 0) FROM events"))
    values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(EVENT_COLUMNS)))
    inserted = session.execute(
        text(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT {values}"
            f" FROM json_each(:rows) WHERE true {skip_known}"
        ),
        {"rows": events.text},
    )
    fresh = "(SELECT user_id, name, occurred_at, day FROM events WHERE rowid > :before) AS fresh"
    for statement in _fact_updates(fresh, only):
        session.execute(text(statement), params)
    return int(inserted.rowcount)  # type: ignore[attr-defined]


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
    found = session.scalar(text(_fold_events(fresh, only, look_pairs_up=True)), params)
    if found != events.count:
        raise _NotAllFound


def _activity_filter(activity_events: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """A condition on `name` keeping the events that count as activity (all when none are
    configured), with its parameters."""
    if not activity_events:
        return "TRUE", {}
    names = ", ".join(f":name{i}" for i in range(len(activity_events)))
    return f"name IN ({names})", {f"name{i}": name for i, name in enumerate(activity_events)}


# An upsert's SET keeping a user's latest activity, stored or new.
_LATEST_ACTIVITY = (
    " last_active_at = CASE WHEN user_facts.last_active_at IS NULL"
    "   OR excluded.last_active_at > user_facts.last_active_at"
    "   THEN excluded.last_active_at ELSE user_facts.last_active_at END,"
    " last_active_day = CASE WHEN user_facts.last_active_day IS NULL"
    "   OR excluded.last_active_day > user_facts.last_active_day"
    "   THEN excluded.last_active_day ELSE user_facts.last_active_day END,"
)
_FACTS = (
    "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
    " order_count, revenue, updated_at) {select}"
    " ON CONFLICT (user_id) DO UPDATE SET"
    + _LATEST_ACTIVITY
    + " event_count = user_facts.event_count + excluded.event_count,"
    " updated_at = excluded.updated_at"
)


def _fact_updates(fresh: str, only: str) -> tuple[str, str]:
    """SQLite: the statements folding the new events in `fresh` into user_facts and
    active_days."""
    facts = _FACTS.format(
        select=f"SELECT user_id, MAX(occurred_at), MAX(day), COUNT(*), 0, 0, :now FROM {fresh}"
        f" WHERE {only} GROUP BY user_id"
    )
    days = (
        f"INSERT INTO active_days (user_id, day) SELECT DISTINCT user_id, day FROM {fresh}"
        f" WHERE {only} ON CONFLICT DO NOTHING"
    )
    return facts, days


def _fold_events(fresh: str, only: str, look_pairs_up: bool = False) -> str:
    """PostgreSQL: one statement folding the new events that the query `fresh` gives into
    user_facts and active_days, through one (user, day) aggregate; it returns how many events
    `fresh` gave. `look_pairs_up` leaves out the pairs already stored by looking them up
    instead of with ON CONFLICT (about half the server's work), but fails if another writer
    adds one of them meanwhile."""
    new_pairs = (
        " AND NOT EXISTS (SELECT 1 FROM active_days AS known"
        " WHERE known.user_id = pairs.user_id AND known.day = pairs.day)"
        if look_pairs_up
        else " ON CONFLICT DO NOTHING"
    )
    facts = _FACTS.format(
        select="SELECT user_id, MAX(last_at), MAX(day), SUM(active), 0, 0, :now FROM pairs"
        " WHERE active > 0 GROUP BY user_id"
    )
    return (
        f"WITH fresh AS ({fresh}),"
        " pairs AS MATERIALIZED (SELECT user_id, day, COUNT(*) AS events,"
        f" COUNT(*) FILTER (WHERE {only}) AS active,"
        f" MAX(occurred_at) FILTER (WHERE {only}) AS last_at FROM fresh GROUP BY user_id, day),"
        " days AS (INSERT INTO active_days (user_id, day) SELECT user_id, day FROM pairs"
        f" WHERE active > 0{new_pairs} RETURNING 1),"
        f" facts AS ({facts} RETURNING 1)"
        " SELECT SUM(events) FROM pairs"
    )


_SQLITE_FORMATS: dict[type[Any], Callable[[Any], str]] = {
    DateTime: lambda moment: moment.isoformat(" ", "microseconds"),
    Date: lambda day: day.isoformat(),
    Numeric: str,
}


def _copy_to_stage(session: Session, table: str, columns: Sequence[str], copy_text: str) -> None:
    """PostgreSQL: COPY the batch (text in COPY's format) into the temporary table
    stage_<table>, emptied at commit."""
    names = ", ".join(columns)
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        # One round trip; the rows of an earlier load in this transaction are deleted.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} ON COMMIT DELETE ROWS AS"
            f" SELECT {names} FROM {table} WITH NO DATA; DELETE FROM stage_{table}"
        )
    _copy(session, f"stage_{table}", columns, copy_text)


def _analyze_if_young(session: Session, table: str, batch: int, columns: str = "") -> None:
    """PostgreSQL: refresh the table's statistics while it is small next to the batch just
    written. Planned on an empty table's statistics (a few rows), the facts of the first
    20,000 orders were joined in a nested loop that read 200M rows (65 s); ANALYZE samples
    at most 30,000 rows, and once the table is large the nightly batches leave it alone."""
    known = session.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = CAST(:table AS regclass)"),
        {"table": table},
    )
    if known is None or known < 4 * batch:
        session.execute(text(f"ANALYZE {table} {columns}"))


def _from_stage(table: str, columns: Sequence[str], conflict: str) -> str:
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) SELECT {names} FROM stage_{table} {conflict}"


def fold_orders(session: Session, load_id: str, as_activity: bool) -> None:
    """Recount paid orders and spend for the users whose orders this load touched and, with
    `as_activity`, fold the orders into their last activity and active days, as events'.
    Counts and last activity go in one upsert of user_facts: as two, the orders of the load
    were found and their users written twice (a fifth of an orders load's time)."""
    params = {"load_id": load_id, "now": _store_time(session)}
    if as_activity:
        session.execute(
            text(
                "INSERT INTO active_days (user_id, day) SELECT DISTINCT user_id, day FROM orders"
                " WHERE load_id = :load_id ON CONFLICT DO NOTHING"
            ),
            params,
        )
    last_active = _LATEST_ACTIVITY if as_activity else ""
    # Without `as_activity` the load's times are left out (NULL, as for no activity).
    times = "MAX(touched.last_at), MAX(touched.last_day)" if as_activity else "NULL, NULL"
    session.execute(
        text(
            "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
            f" order_count, revenue, last_order_at, updated_at) SELECT touched.user_id, {times},"
            " 0, COUNT(o.order_id), COALESCE(SUM(o.amount), 0), MAX(o.created_at), :now"
            " FROM (SELECT user_id, MAX(created_at) AS last_at, MAX(day) AS last_day"
            " FROM orders WHERE load_id = :load_id GROUP BY user_id) AS touched"
            " LEFT JOIN orders o ON o.user_id = touched.user_id AND o.status = 'paid'"
            " GROUP BY touched.user_id"
            f" ON CONFLICT (user_id) DO UPDATE SET{last_active}"
            " order_count = excluded.order_count, revenue = excluded.revenue,"
            " last_order_at = excluded.last_order_at, updated_at = excluded.updated_at"
        ),
        params,
    )


def _store_time(session: Session) -> Any:
    """Now, as a bound value raw SQL text can compare with DateTime columns on either store."""
    now = utcnow()
    return now if is_postgres(session) else _SQLITE_FORMATS[DateTime](now)


def reject(
    session: Session, source: str, run_id: str, rejects: Rejects, only_new: bool = False
) -> None:
    """Set the rejects aside in one statement, the records travelling as one JSON array:
    compiling a multi-row VALUES cost more than the insert, and an executemany on SQLite
    gives up Python's GIL for every row (and waits for it behind the pull's other threads).
    `only_new` leaves out a record the source already has set aside (a row read again)."""
    if not rejects:
        return
    if is_postgres(session):
        records, item = "json_array_elements(CAST(:rows AS json))", "value->>{}"
    else:
        records, item = "json_each(:rows)", "json_extract(value, '$[{}]')"
    # What no store's text can hold (NUL for PostgreSQL, a lone surrogate for either) becomes
    # U+FFFD, as undecodable bytes do.
    rows = [
        [_UNSTORABLE.sub("\ufffd", rejected.raw), _UNSTORABLE.sub("\ufffd", rejected.reason)]
        for rejected in rejects
    ]
    session.execute(
        text(
            "INSERT INTO rejected_records (source, run_id, raw, reason, created_at)"
            f" SELECT :source, :run_id, {item.format(0)}, {item.format(1)}, :now FROM {records}"
            + (
                " WHERE NOT EXISTS (SELECT 1 FROM rejected_records AS known"
                " WHERE known.source = CAST(:source AS VARCHAR(100))"
                f" AND known.raw = {item.format(0)})"
                if only_new
                else ""
            )
        ),
        {
            "source": source,
            "run_id": run_id,
            "now": _store_time(session),
            "rows": json.dumps(rows, ensure_ascii=False),
        },
    )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def loaded_files(session: Session, source: FileSource, watermark: str | None) -> set[str]:
    """The files `source` has loaded whole. A store from before this list has only the
    watermark, the last file loaded in name order: those up to it are recorded first."""
    loaded = set(session.scalars(select(SourceFile.path).where(SourceFile.source == source.name)))
    if not loaded and watermark is not None:
        loaded = {path for path in file_paths(source) if path <= watermark}
        record_loaded_files(session, source.name, loaded)
    return loaded


def record_loaded_files(session: Session, source: str, paths: Collection[str]) -> None:
    if not paths:
        return
    now = utcnow()
    statement = upsert_insert(session, SourceFile).values(
        [{"source": source, "path": path, "loaded_at": now} for path in paths]
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["source", "path"]))


def get_watermark(session: Session, source: str) -> str | None:
    return session.scalar(select(SourceWatermark.watermark).where(SourceWatermark.source == source))


def set_watermark(session: Session, source: str, watermark: str) -> None:
    statement = upsert_insert(session, SourceWatermark).values(
        source=source, watermark=watermark, updated_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["source"],
            set_={
                "watermark": statement.excluded.watermark,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )
