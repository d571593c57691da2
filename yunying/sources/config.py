"""How a source is declared in settings. Each kind validates its own fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from yunying.setting_checks import DatabaseUrl, HttpUrl
from yunying.sources.validate.rows import EVENT_FIELDS, ORDER_FIELDS, USER_FIELDS
from yunying.sources.validate.rules import NO_CONSENT_ASSUMED, RecordDefaults

Entity = Literal["users", "events", "orders"]

# The fields each entity's validator reads from a raw record.
FIELDS: dict[Entity, tuple[str, ...]] = {
    "users": USER_FIELDS,
    "events": EVENT_FIELDS,
    "orders": ORDER_FIELDS,
}


class _SourceBase(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    entity: Entity
    # Yunying field -> field name in the source, for the fields whose names differ.
    mapping: dict[str, str] = Field(default_factory=dict)
    batch_size: int = Field(default=20_000, gt=0)  # records per store transaction
    # The IANA zone of the source's times written without an offset; None: they are UTC.
    naive_times_in: str | None = None

    @field_validator("naive_times_in")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use an IANA name") from None
        return value

    @property
    def naive_zone(self) -> ZoneInfo | None:
        return None if self.naive_times_in is None else ZoneInfo(self.naive_times_in)

    @model_validator(mode="after")
    def _mapping_names_fields(self) -> _SourceBase:
        for field in self.mapping:
            if field not in FIELDS[self.entity]:
                raise ValueError(
                    f"mapping: {field!r} is not a field of {self.entity}"
                    f" ({', '.join(FIELDS[self.entity])})"
                )
        return self


class SqlSource(_SourceBase):
    kind: Literal["sql"] = "sql"
    url: DatabaseUrl = Field(min_length=1)
    table: str | None = None
    query: str | None = None
    incremental_column: str | None = None  # read rows where this column >= the watermark
    # Re-read this much before the watermark, for records that arrive late: seconds when the
    # column holds timestamps, units when it holds numbers.
    lookback: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        return self


class HttpSource(_SourceBase):
    kind: Literal["http"] = "http"
    url: HttpUrl
    items_path: str = "items"  # dotted path to the list of records in each page
    pagination: Literal["cursor", "page", "link"] = "cursor"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"
    page_param: str = "page"
    page_size_param: str = "limit"
    page_size: int = Field(default=1000, gt=0)
    auth: Literal["none", "bearer", "basic", "header"] = "none"
    token_env: str | None = None  # the env var holding the token or "user:password"
    header_name: str = "X-API-Key"
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _auth_needs_token(self) -> HttpSource:
        if self.auth != "none" and not self.token_env:
            raise ValueError(f"auth {self.auth!r} needs 'token_env', the env var with the secret")
        return self


class FileSource(_SourceBase):
    kind: Literal["file"] = "file"
    path: str = Field(min_length=1)  # a path or a glob; .gz files are decompressed
    format: Literal["csv", "jsonl"] = "jsonl"


SourceConfig = Annotated[SqlSource | HttpSource | FileSource, Field(discriminator="kind")]


@dataclass(frozen=True)
class PullRules:
    """What every pull applies besides its source's declaration, from the company's settings:
    the time zone of days, the defaults of what a record leaves out, the share of a batch that
    may be rejected (`max_rejected_share`) and which events and orders are activity
    (`lifecycle.activity_events`, empty for all; `lifecycle.orders_are_activity`), and the
    company's `currency` and `exchange_rates` orders' spend is counted in."""

    zone: ZoneInfo
    defaults: RecordDefaults = NO_CONSENT_ASSUMED
    max_rejected_share: float = 0.5
    activity_events: Sequence[str] = ()
    orders_are_activity: bool = True
    currency: str | None = None  # orders' spend in it, converted at `exchange_rates`
    exchange_rates: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)
