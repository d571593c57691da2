"""The synthetic company's own app database (a SQLite file), separate from Yunying's store.

Its column names differ from Yunying's on purpose, so the demo exercises source mappings.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from yunying.demo.company import generate

SCHEMA = """
CREATE TABLE IF NOT EXISTS src_users (
    id TEXT PRIMARY KEY, created TEXT, tz TEXT, lang TEXT, email TEXT, phone TEXT,
    push_token TEXT, email_ok INTEGER, sms_ok INTEGER, push_ok INTEGER, device TEXT, ip TEXT,
    updated_seq INTEGER);
CREATE TABLE IF NOT EXISTS src_events (
    seq INTEGER PRIMARY KEY, event_uuid TEXT, uid TEXT, type TEXT, ts TEXT);
CREATE TABLE IF NOT EXISTS src_orders (
    order_no TEXT PRIMARY KEY, uid TEXT, amount TEXT, currency TEXT, status TEXT, paid_at TEXT,
    updated_seq INTEGER);
"""

USER_COLUMNS = [
    "id",
    "created",
    "tz",
    "lang",
    "email",
    "phone",
    "push_token",
    "email_ok",
    "sms_ok",
    "push_ok",
    "device",
    "ip",
]
ORDER_COLUMNS = ["order_no", "uid", "amount", "currency", "status", "paid_at"]
EVENT_COLUMNS = ["event_uuid", "uid", "type", "ts"]


@dataclass(frozen=True)
class SourceCounts:
    users: int
    events: int
    orders: int


def write_source_db(
    path: Path,
    users: int,
    seed: int,
    end: dt.date,
    flush_every: int = 50_000,
) -> SourceCounts:
    """(Re)create the source database with the synthetic company, streaming in chunks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    connection.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;" + SCHEMA)
    counts = {"users": 0, "events": 0, "orders": 0}
    user_rows: list[tuple[object, ...]] = []
    event_rows: list[tuple[object, ...]] = []
    order_rows: list[tuple[object, ...]] = []

    def flush() -> None:
        connection.executemany(
            f"INSERT INTO src_users VALUES ({','.join('?' * (len(USER_COLUMNS) + 1))})", user_rows
        )
        connection.executemany(
            "INSERT INTO src_events (event_uuid, uid, type, ts) VALUES (?,?,?,?)", event_rows
        )
        connection.executemany(
            f"INSERT INTO src_orders VALUES ({','.join('?' * (len(ORDER_COLUMNS) + 1))})",
            order_rows,
        )
        connection.commit()
        user_rows.clear()
        event_rows.clear()
        order_rows.clear()

    for synthetic in generate(users, seed, end):
        counts["users"] += 1
        user_rows.append((*(synthetic.user[c] for c in USER_COLUMNS), counts["users"]))
        for event in synthetic.events:
            event_rows.append(tuple(event[c] for c in EVENT_COLUMNS))
        for order in synthetic.orders:
            order_rows.append((*(order[c] for c in ORDER_COLUMNS), counts["orders"]))
            counts["orders"] += 1
        counts["events"] += len(synthetic.events)
        if len(event_rows) >= flush_every:
            flush()
    flush()
    connection.close()
    return SourceCounts(**counts)
