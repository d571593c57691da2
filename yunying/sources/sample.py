"""Records of a source read through its mapping: what `yunying init` shows.

Up to a thousand records are read, so that bad rows, rarer than one in five, show up: the
sample keeps a few mapped records and every distinct reason a record would be rejected for,
with how many and one example. Contacts (emails, phones, openids, tokens) are masked: the
terminal's scrollback is a log too; nothing else is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from yunying.masking import mask_text, mask_value
from yunying.sources.config import FIELDS, FileSource, HttpSource, SourceConfig
from yunying.sources.mapping import check_mapping, columns_of
from yunying.sources.read import read_source
from yunying.sources.read.batch import Batch
from yunying.sources.validate.batch import TIME_FIELD, column_picker, naive_time, validate
from yunying.sources.validate.rows import EVENT_COLUMNS, ORDER_COLUMNS, USER_COLUMNS
from yunying.sources.validate.rules import NO_CONSENT_ASSUMED, RecordDefaults

SAMPLE_ROWS = 1000
SHOWN_RECORDS = 3

# The fields holding a way to reach a person, and column names that say they hold one.
CONTACT_FIELDS = ("email", "phone", "push_token", "openid")
_CONTACT_NAME = re.compile(r"mail|phone|mobile|tel|token|openid|secret", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


@dataclass(frozen=True)
class RejectReason:
    reason: str  # its wording, with the values it quotes left out
    count: int
    example_of: str  # one record rejected for it: "row <id>", "file <path>" or "a row"
    example: str  # that record's own reason, contacts masked


@dataclass
class SourceSample:
    source: str
    entity: str
    columns: list[str]
    mapped: list[dict[str, Any]] = field(default_factory=list)  # as the store would keep them
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (raw record, reason)
    read: int = 0  # records read
    reasons: list[RejectReason] = field(default_factory=list)  # commonest first
    naive_times: int = 0  # records whose time has no offset, read as UTC (no naive_times_in)


def sample_source(
    source: SourceConfig,
    zone: ZoneInfo,
    limit: int = SAMPLE_ROWS,
    defaults: RecordDefaults = NO_CONSENT_ASSUMED,
) -> SourceSample:
    """Read up to `limit` records, check the mapping against the source's columns
    (ConfigError naming key and columns) and validate them as a pull would, with the pull's
    `defaults`; nothing is stored, no watermark moves."""
    batch = _sample_batch(source, limit)
    if batch is None:
        return SourceSample(source.name, source.entity, [])
    records = list(batch.records[:limit])
    columns = columns_of(records, batch.columns)
    exact = batch.columns is not None or (isinstance(source, FileSource) and source.format == "csv")
    check_mapping(source, columns, exact)
    rows, rejected = validate(
        source.entity, records, source.mapping, zone, batch.columns, defaults, source.naive_zone
    )
    names = {"events": EVENT_COLUMNS, "users": USER_COLUMNS, "orders": ORDER_COLUMNS}
    mapped = [dict(zip(names[source.entity], row, strict=True)) for row in rows]
    rejected += batch.unreadable
    pairs = [(r.raw, r.reason) for r in rejected]
    read = len(records) + len(batch.unreadable)
    naive = 0
    if source.naive_times_in is None:
        column = source.mapping.get(TIME_FIELD[source.entity], TIME_FIELD[source.entity])
        [values] = column_picker([column], batch.columns)(records)
        naive = sum(naive_time(value) is not None for value in values)
    return SourceSample(
        source.name,
        source.entity,
        columns,
        mapped,
        pairs,
        read,
        reject_reasons(source, pairs),
        naive,
    )


def source_columns(source: SourceConfig) -> list[str]:
    """The source's column names, from its first record (none when it has no record)."""
    batch = _sample_batch(source, 1)
    return [] if batch is None else columns_of(batch.records[:1], batch.columns)


def _sample_batch(source: SourceConfig, limit: int) -> Batch | None:
    """Up to `limit` records in one batch: a file source's batches end with each file, so
    the sample reads on into the next files (those of the same columns) until it has them."""
    small: SourceConfig = source.model_copy(update={"batch_size": limit})
    if isinstance(small, HttpSource):
        small = small.model_copy(update={"page_size": min(small.page_size, limit)})
    batches = read_source(small, None)
    try:
        first = next(batches, None)
        if first is None or not isinstance(source, FileSource):
            return first
        records, unreadable = list(first.records), list(first.unreadable)
        set_aside = list(first.set_aside)
        while len(records) + len(unreadable) < limit:
            more = next(batches, None)
            if more is None or more.columns != first.columns:
                break
            records += more.records
            unreadable += more.unreadable
            set_aside += more.set_aside
        return replace(first, records=records[:limit], unreadable=unreadable, set_aside=set_aside)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def reject_reasons(source: SourceConfig, rejected: list[tuple[str, str]]) -> list[RejectReason]:
    """Every distinct reason, with its count and an example record's id."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for raw, reason in rejected:
        groups.setdefault(_QUOTED.sub("…", reason), []).append((raw, reason))
    id_column = source.mapping.get(FIELDS[source.entity][0], FIELDS[source.entity][0])
    summary = []
    for wording, members in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        raw, reason = members[0]
        summary.append(
            RejectReason(wording, len(members), _example_of(raw, id_column), mask_text(reason))
        )
    return summary


def _example_of(raw: str, column: str) -> str:
    """Which record `raw` is: its id, or the path of a file set aside whole."""
    try:
        record = json.loads(raw)
    except ValueError:
        return "a row"
    if not isinstance(record, dict):
        return "a row"
    value = record.get(column)
    if value is not None and value != "":
        return f"row {value}"
    if set(record) == {"file"}:
        return f"file {record['file']}"
    return "a row"


def mask_record(record: dict[str, Any], contact_columns: tuple[str, ...] = ()) -> dict[str, Any]:
    """`record` with its contacts masked: the `contact_columns`, columns whose names say they
    hold one, and any text that is an email address. Ids, amounts and counts stay as read."""
    shown: dict[str, Any] = {}
    for key, value in record.items():
        if (
            isinstance(value, str)
            and value
            and (key in contact_columns or _CONTACT_NAME.search(key) or "@" in value)
        ):
            shown[key] = mask_value(value)
        else:
            shown[key] = value
    return shown


def contact_columns(source: SourceConfig) -> tuple[str, ...]:
    """The source's own names of the contact fields (its raw records' keys)."""
    return tuple(source.mapping.get(f, f) for f in CONTACT_FIELDS if f in FIELDS[source.entity])
