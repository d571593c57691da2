"""Write validated batches into the store: upserts by natural key and new events, each
folded into the per-user facts and active days, through the store's own writer (SQLite's or
PostgreSQL's, one small interface)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol, cast

from sqlalchemy.orm import Session

from yunying.sources.config import Entity
from yunying.sources.validate.rows import ORDER_COLUMNS, USER_COLUMNS, EventRow, StoreRow
from yunying.sources.write.batch import EventsText, NewEvents, Upsert, last_per_id
from yunying.sources.write.facts import activity_filter, store_time
from yunying.sources.write.postgres import PostgresWriter, analyze_if_young
from yunying.sources.write.sqlite import SqliteWriter
from yunying.sources.write.text import events_text
from yunying.store.engine import is_postgres


class StoreWriter(Protocol):
    def upsert(self, session: Session, batch: Upsert) -> tuple[int, int]:
        """Insert or update the rows (one per key), orders folded into user_facts and
        active_days (`fold_orders`, or `fold_new_orders` when all are new); returns how many
        were new and how many stored rows the statement changed."""

    def insert_events(self, session: Session, batch: NewEvents) -> int:
        """Insert the events whose id is new and fold exactly those into user_facts and
        active_days; returns how many were new."""


def writer_for(session: Session) -> StoreWriter:
    return PostgresWriter() if is_postgres(session) else SqliteWriter()


def load_rows(
    session: Session,
    entity: Entity,
    rows: Sequence[StoreRow],
    load_id: str,
    activity_events: Sequence[str] = (),
    orders_are_activity: bool = True,
    currency: str | None = None,
    exchange_rates: Mapping[str, Decimal] | None = None,
) -> tuple[int, int]:
    """Upsert rows of one entity; returns (inserted, updated). With `orders_are_activity`,
    an order's local day is an active day of its user (`lifecycle.orders_are_activity`); its
    amount adds to its user's spend in `currency`, converted at `exchange_rates` (a currency
    without a rate adds 0; no `currency`: amounts as they are)."""
    if entity == "events":
        events = cast(Sequence[EventRow], rows)
        return load_events(session, events_text(events, is_postgres(session)), activity_events), 0
    if not rows:
        return 0, 0
    rows = last_per_id(rows)
    columns = list(USER_COLUMNS if entity == "users" else (*ORDER_COLUMNS, "load_id"))
    assignments = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    # A row read again unchanged is left alone (and not counted as updated): a whole-table
    # source re-reads every row each night. The pull's time and load id are no change.
    compared = [c for c in columns[1:] if c not in ("updated_at", "load_id")]
    distinct = "IS DISTINCT FROM" if is_postgres(session) else "IS NOT"
    changed = " OR ".join(f"{entity}.{c} {distinct} excluded.{c}" for c in compared)
    conflict = f"ON CONFLICT ({columns[0]}) DO UPDATE SET {assignments} WHERE {changed}"
    upsert = Upsert(
        entity,
        columns,
        rows,
        load_id,
        conflict,
        orders_are_activity,
        currency,
        exchange_rates or {},
    )
    return writer_for(session).upsert(session, upsert)


def load_events(
    session: Session,
    events: EventsText,
    activity_events: Sequence[str],
    on_fallback: Callable[[str], None] | None = None,
) -> int:
    """Insert the events whose id is new (events never change) and fold exactly those into
    the per-user facts and active days, so a rerun or an overlapping look-back counts nothing
    twice. Returns how many were new. On PostgreSQL, `on_fallback` hears why a batch took
    the staging table instead of the direct COPY: slower, as correct."""
    if not events.count:
        return 0
    only, params = activity_filter(activity_events)
    params["now"] = store_time(session)
    new = NewEvents(events, only, params, on_fallback)
    return writer_for(session).insert_events(session, new)


def refresh_statistics(session: Session, entity: Entity, inserted: int) -> None:
    """After a load that added `inserted` users or orders: on PostgreSQL, the table's
    statistics, while it is young next to them (the lifecycle and reports are planned on
    them; autovacuum would come later). Once per load, not per batch."""
    if inserted and entity != "events" and is_postgres(session):
        analyze_if_young(session, entity, inserted)
