"""What a reader gives: a batch of raw records and where the next read resumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from yunying.sources.validate.rows import Rejected

Record = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    records: Sequence[Any]  # dicts, or rows of values in `columns` order
    watermark: str | None  # where the next run resumes; None keeps the old one
    unreadable: list[Rejected] = field(default_factory=list)  # lines that are no record
    columns: tuple[str, ...] | None = None
    # Files that could not be read whole: (path, why and what became of their rows).
    set_aside: list[tuple[str, str]] = field(default_factory=list)
