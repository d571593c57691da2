"""Checks of a source's mapping against the columns it really has, before anything loads.

A mapping to a column the source does not have would reject every record as "missing" and
the pull would end as if all were well; it is refused at the start of the pull (and by
`yunying init`), naming the mapping key and the source's columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from yunying.errors import ConfigError
from yunying.sources.config import FIELDS, Entity, SourceConfig

# The fields without which no record of the entity is valid.
REQUIRED: dict[Entity, tuple[str, ...]] = {
    "users": ("user_id", "signup_at"),
    "events": ("event_id", "user_id", "name", "occurred_at"),
    "orders": ("order_id", "user_id", "amount", "created_at"),
}


def columns_of(records: Sequence[Any], columns: Sequence[str] | None) -> list[str]:
    """The source's column names: a SQL result's, or every key of a batch's objects."""
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            seen.update(dict.fromkeys(record))
    return list(seen)


def check_mapping(source: SourceConfig, columns: Iterable[str], exact: bool = True) -> None:
    """ConfigError when a mapped column, or the column of a required field, is not among
    `columns` (the source's, read from its first batch). Not `exact` (JSON objects, which
    may leave out an empty field), only the required fields' columns are checked."""
    have = list(columns)
    if not have:
        return  # nothing read: nothing to check against
    problems = []
    for field in FIELDS[source.entity]:
        column = source.mapping.get(field, field)
        if column in have or (not exact and field not in REQUIRED[source.entity]):
            continue
        if field in source.mapping:
            problems.append(f"mapping {field} = {column!r}: the source has no column {column!r}")
        elif field in REQUIRED[source.entity]:
            problems.append(
                f"{field}: the source has no column {field!r}; map it with"
                f' mapping = {{ {field} = "<column>" }}'
            )
    if problems:
        raise ConfigError(
            f"source {source.name} ({source.entity}): "
            + "; ".join(problems)
            + f". Its columns: {', '.join(have)}"
        )
