"""A few records of a source read through its mapping: what `yunying init` shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from yunying.sources.config import FileSource, HttpSource, SourceConfig
from yunying.sources.mapping import check_mapping, columns_of
from yunying.sources.read import read_source
from yunying.sources.validate.batch import validate
from yunying.sources.validate.rows import EVENT_COLUMNS, ORDER_COLUMNS, USER_COLUMNS
from yunying.sources.validate.rules import NO_CONSENT_ASSUMED, RecordDefaults


@dataclass
class SourceSample:
    source: str
    entity: str
    columns: list[str]
    mapped: list[dict[str, Any]] = field(default_factory=list)  # as the store would keep them
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (raw record, reason)


def sample_source(
    source: SourceConfig,
    zone: ZoneInfo,
    limit: int = 5,
    defaults: RecordDefaults = NO_CONSENT_ASSUMED,
) -> SourceSample:
    """Read up to `limit` records, check the mapping against the source's columns
    (ConfigError naming key and columns) and validate them as a pull would, with the pull's
    `defaults`; nothing is stored, no watermark moves."""
    small: SourceConfig = source.model_copy(update={"batch_size": limit})
    if isinstance(small, HttpSource):
        small = small.model_copy(update={"page_size": limit})
    batches = read_source(small, None)
    try:
        batch = next(batches, None)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if batch is None:
        return SourceSample(source.name, source.entity, [])
    records = list(batch.records[:limit])
    columns = columns_of(records, batch.columns)
    exact = batch.columns is not None or (isinstance(source, FileSource) and source.format == "csv")
    check_mapping(source, columns, exact)
    rows, rejected = validate(source.entity, records, source.mapping, zone, batch.columns, defaults)
    names = {"events": EVENT_COLUMNS, "users": USER_COLUMNS, "orders": ORDER_COLUMNS}
    mapped = [dict(zip(names[source.entity], row, strict=True)) for row in rows]
    rejected += batch.unreadable
    return SourceSample(
        source.name, source.entity, columns, mapped, [(r.raw, r.reason) for r in rejected]
    )
