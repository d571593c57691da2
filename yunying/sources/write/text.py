"""Rows in the one text a store's bulk statement reads: COPY's text format (PostgreSQL) or a
JSON array (SQLite), built a column or a batch at a time rather than value by value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from yunying.sources.records import EVENT_COLUMNS, EventRow
from yunying.sources.write.batch import EventsText, last_per_id


def events_text(rows: Sequence[EventRow], postgres: bool) -> EventsText:
    rows = last_per_id(rows)
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
    # orjson writes a batch in a fraction of the time joining its values takes, with
    # Python's GIL held all along.
    return orjson.dumps(rows).decode()


def copy_rows_text(rows: Sequence[Sequence[Any]]) -> str:
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
