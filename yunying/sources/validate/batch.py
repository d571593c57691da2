"""A batch of raw records into store rows and rejects: each entity's column-at-a-time path
first (`fast`), the reference rule (`rules`) for what that leaves, which either gives the
same row or says what is wrong."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, cast
from zoneinfo import ZoneInfo

from yunying.sources.config import FIELDS, Entity
from yunying.sources.validate.fast import plain_events, plain_orders, plain_users
from yunying.sources.validate.rows import InvalidRecord, Rejected, StoreRow
from yunying.sources.validate.rules import (
    NO_CONSENT_ASSUMED,
    RecordDefaults,
    event_values,
    order_values,
    to_event_row,
    to_order_row,
    to_user_row,
    user_values,
)
from yunying.store.engine import utcnow

Rejects = list[Rejected]


def validate(
    entity: Entity,
    records: Sequence[Any],
    mapping: dict[str, str],
    zone: ZoneInfo,
    columns: Sequence[str] | None = None,
    defaults: RecordDefaults = NO_CONSENT_ASSUMED,
    naive_zone: ZoneInfo | None = None,
) -> tuple[list[StoreRow], Rejects]:
    """Split raw records into store rows (`EventRow`, `UserRow` or `OrderRow` as `entity`
    says) and rejects. Records are dicts, or rows of values in `columns` order (what a SQL
    source reads); users get `defaults` for the locale and opt-ins they leave out; times
    without an offset are in `naive_zone` (UTC when None)."""
    fields = FIELDS[entity]
    picked = column_picker([mapping.get(f, f) for f in fields], columns)(records)
    if naive_zone is not None:
        when = fields.index(TIME_FIELD[entity])
        picked[when] = [in_utc(value, naive_zone) for value in picked[when]]
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
            record = records[start + offset]
            try:
                if columns is None and not isinstance(record, dict):
                    raise InvalidRecord("json", "not a JSON object")
                rows[offset] = _row(
                    entity, [column[offset] for column in chunk], zone, now, defaults
                )
            except InvalidRecord as exc:
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
        return event_values(to_event_row(raw, zone))
    if entity == "users":
        return user_values(to_user_row(raw, zone, now, defaults))
    return order_values(to_order_row(raw, zone, defaults))


TIME_FIELD = {"users": "signup_at", "events": "occurred_at", "orders": "created_at"}


def in_utc(value: Any, zone: ZoneInfo) -> Any:
    """A time without an offset (ISO text or a datetime), read in `zone`, as UTC text with
    its offset; anything else as it is, for the field's rule to take or refuse. At a
    daylight saving change, an hour that happens twice is read as the first."""
    moment = naive_time(value)
    if moment is None:
        return value
    return moment.replace(tzinfo=zone).astimezone(dt.UTC).isoformat()


def naive_time(value: Any) -> dt.datetime | None:
    """`value` as a datetime when it is a time without an offset (ISO text or a datetime)."""
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    elif isinstance(value, dt.datetime):
        moment = value
    else:
        return None
    return moment if moment.tzinfo is None else None


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


def column_picker(
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
