"""What a store's writer is given: a batch of users or orders to upsert, or of events to add."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class EventsText:
    """Event rows as the one text the store's bulk statement reads: COPY's text format on
    PostgreSQL, a JSON array on SQLite."""

    count: int
    text: str
    first_id: str  # the first row's event_id


@dataclass(frozen=True)
class Upsert:
    """Rows of one table in `columns` order (a last column the rows lack is `load_id`), to
    insert or update by `conflict` (its ON CONFLICT clause). Orders are folded into the
    per-user facts (their spend in `currency`, converted at `exchange_rates`), and into
    active days when `orders_are_activity`."""

    table: str
    columns: list[str]
    rows: Sequence[Any]
    load_id: str
    conflict: str
    orders_are_activity: bool = True
    currency: str | None = None  # the company's (None: amounts as they are), and the rates
    exchange_rates: Mapping[str, Decimal] = field(default_factory=dict)  # others convert at


@dataclass(frozen=True)
class NewEvents:
    """Events to add where their id is new, folding those that `only` (with `params`) keeps
    into the facts; `on_fallback` hears why a batch took a writer's slower way."""

    events: EventsText
    only: str
    params: dict[str, Any]
    on_fallback: Callable[[str], None] | None


def last_per_id(rows: Sequence[T]) -> Sequence[T]:
    """One rule for an id (a row's first value) repeated inside a batch, for every entity:
    the last record wins (for users and orders, the latest version; one statement cannot
    upsert a key twice). Across pulls an event is never changed: the first stored stays.
    A repeated id is rare: the check is one set of the ids."""
    ids = [row[0] for row in rows]  # type: ignore[index]
    if len(set(ids)) == len(ids):
        return rows
    return list({row[0]: row for row in rows}.values())  # type: ignore[index]
