"""Events in the one text a store's bulk statement reads: COPY's text format (PostgreSQL) or
a JSON array (SQLite), built a batch at a time rather than value by value."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from yunying.sources.validate.rows import EVENT_COLUMNS, EventRow
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
