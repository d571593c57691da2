"""The SQLite store's writer. One writer at a time (SQLite's lock), so the rows a statement
added are those whose rowid is above the largest before it: updated rows keep theirs."""

from __future__ import annotations

from itertools import repeat
from operator import add

from sqlalchemy import text
from sqlalchemy.orm import Session

from yunying.sources.validate.rows import EVENT_COLUMNS
from yunying.sources.write.batch import NewEvents, Upsert
from yunying.sources.write.facts import fact_updates


class SqliteWriter:
    def upsert(self, session: Session, batch: Upsert) -> int:
        """One executemany on the driver; returns how many rows were new. (A JSON text read
        by json_each, as events go in, re-parses each row once per column.)"""
        table, columns, rows = batch.table, batch.columns, batch.rows
        before = session.scalar(text(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}"))
        if len(columns) > len(rows[0]):  # the load's id ends every row
            rows = list(map(add, rows, repeat((batch.load_id,))))
        marks = ", ".join("?" * len(columns))
        driver = session.connection().connection.driver_connection
        driver.executemany(  # type: ignore[union-attr]
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {batch.conflict}", rows
        )
        new = session.scalar(
            text(f"SELECT COUNT(*) FROM {table} WHERE rowid > :before"), {"before": before}
        )
        return int(new or 0)

    def insert_events(self, session: Session, batch: NewEvents) -> int:
        """The batch goes in as one JSON text: one statement, during which Python's other
        thread (reading the next batch) runs; an executemany would hand the GIL back and
        forth on every row."""
        params = {**batch.params}
        params["before"] = session.scalar(text("SELECT COALESCE(MAX(rowid), 0) FROM events"))
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(EVENT_COLUMNS)))
        inserted = session.execute(
            text(
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT {values}"
                " FROM json_each(:rows) WHERE true ON CONFLICT (event_id) DO NOTHING"
            ),
            {"rows": batch.events.text},
        )
        fresh = (
            "(SELECT user_id, name, occurred_at, day FROM events WHERE rowid > :before) AS fresh"
        )
        for statement in fact_updates(fresh, batch.only):
            session.execute(text(statement), params)
        return int(inserted.rowcount)  # type: ignore[attr-defined]
