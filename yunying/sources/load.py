"""Write validated batches into the store: upserts by natural key, rejects set aside, and the
per-user facts (last activity, counts, spend, active days) kept current set-based."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from yunying.sources.config import Entity
from yunying.sources.records import InvalidRecord, Row, to_event_row, to_order_row, to_user_row
from yunying.store.engine import is_postgres, upsert_insert, utcnow
from yunying.store.models import Base, Event, Order, RejectedRecord, SourceWatermark, User


@dataclass
class LoadStats:
    pulled: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    watermark: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: LoadStats) -> None:
        self.pulled += other.pulled
        self.inserted += other.inserted
        self.updated += other.updated
        self.rejected += other.rejected
        self.watermark = other.watermark or self.watermark
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count


def validate(
    entity: Entity,
    records: Sequence[dict[str, Any]],
    mapping: dict[str, str],
    zone: ZoneInfo,
) -> tuple[list[Row], list[tuple[str, str]]]:
    """Split raw records into store rows and (raw JSON, reason) rejects."""
    now = utcnow()
    good: list[Row] = []
    bad: list[tuple[str, str]] = []
    for record in records:
        renamed = {target: record.get(src) for target, src in mapping.items()}
        raw = {**record, **renamed}
        try:
            if entity == "users":
                good.append(to_user_row(raw, zone, now))
            elif entity == "events":
                good.append(to_event_row(raw, zone))
            else:
                good.append(to_order_row(raw, zone))
        except InvalidRecord as exc:
            bad.append((json.dumps(record, default=str, ensure_ascii=False), str(exc)))
    return good, bad


def load_rows(
    session: Session,
    entity: Entity,
    rows: list[Row],
    load_id: str,
    activity_events: Sequence[str] = (),
) -> tuple[int, int]:
    """Upsert rows of one entity; returns (inserted, updated)."""
    rows = _last_per_key(rows, _KEYS[entity])
    if not rows:
        return 0, 0
    if entity == "events":
        for row in rows:
            row["load_id"] = load_id
        _insert(session, Event, rows, key="event_id", update=False)
        inserted = session.scalar(
            select(func.count()).select_from(Event).where(Event.load_id == load_id)
        )
        update_activity_facts(session, load_id, activity_events)
        return int(inserted or 0), 0
    model: type[User | Order] = User if entity == "users" else Order
    key = _KEYS[entity]
    if entity == "orders":
        for row in rows:
            row["load_id"] = load_id
    key_column = getattr(model, key)
    keys = [row[key] for row in rows]
    existing = len(session.execute(select(key_column).where(key_column.in_(keys))).all())
    _insert(session, model, rows, key=key, update=True)
    if entity == "orders":
        update_order_facts(session, load_id)
    return len(rows) - existing, existing


_KEYS: dict[Entity, str] = {"users": "user_id", "events": "event_id", "orders": "order_id"}


def _last_per_key(rows: list[Row], key: str) -> list[Row]:
    # One statement cannot upsert the same key twice (PostgreSQL refuses); the last wins.
    return list({row[key]: row for row in rows}.values())


def _insert(
    session: Session, model: type[Base], rows: list[Row], *, key: str, update: bool
) -> None:
    table = model.__tablename__
    columns = list(rows[0])
    names = ", ".join(columns)
    if update:
        assignments = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
        conflict = f"ON CONFLICT ({key}) DO UPDATE SET {assignments}"
    else:
        conflict = f"ON CONFLICT ({key}) DO NOTHING"
    if is_postgres(session):
        _copy_upsert(session, table, columns, rows, conflict)
        return
    # SQLite: one executemany on the driver, with values in the formats SQLAlchemy's
    # SQLite types store (so reads through the models see the same values).
    marks = ", ".join("?" * len(columns))
    session.connection().exec_driver_sql(
        f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}",
        [tuple(_sqlite_value(row[c]) for c in columns) for row in rows],
    )


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(" ", "microseconds")
    if isinstance(value, dt.date | Decimal):
        return str(value)
    return value


def _copy_upsert(
    session: Session, table: str, columns: list[str], rows: list[Row], conflict: str
) -> None:
    """PostgreSQL: COPY the batch into a temporary staging table, then one set-based upsert."""
    names = ", ".join(columns)
    stage = f"stage_{table}"
    driver = session.connection().connection.driver_connection
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS"
            f" SELECT {names} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {conflict}")
        cursor.execute(f"TRUNCATE {stage}")


def update_activity_facts(session: Session, load_id: str, activity_events: Sequence[str]) -> None:
    """Fold the events of one load into user_facts and active_days (set-based)."""
    only_activity = ""
    params: dict[str, Any] = {"load_id": load_id}
    if activity_events:
        names = ", ".join(f":name{i}" for i in range(len(activity_events)))
        only_activity = f" AND name IN ({names})"
        params.update({f"name{i}": name for i, name in enumerate(activity_events)})
    session.execute(
        text(
            "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
            " order_count, revenue, updated_at)"
            " SELECT user_id, MAX(occurred_at), MAX(day), COUNT(*), 0, 0, :now FROM events"
            f" WHERE load_id = :load_id{only_activity} GROUP BY user_id"
            " ON CONFLICT (user_id) DO UPDATE SET"
            " last_active_at = CASE WHEN user_facts.last_active_at IS NULL"
            "   OR excluded.last_active_at > user_facts.last_active_at"
            "   THEN excluded.last_active_at ELSE user_facts.last_active_at END,"
            " last_active_day = CASE WHEN user_facts.last_active_day IS NULL"
            "   OR excluded.last_active_day > user_facts.last_active_day"
            "   THEN excluded.last_active_day ELSE user_facts.last_active_day END,"
            " event_count = user_facts.event_count + excluded.event_count,"
            " updated_at = excluded.updated_at"
        ),
        {**params, "now": _store_time(session)},
    )
    session.execute(
        text(
            "INSERT INTO active_days (user_id, day)"
            f" SELECT DISTINCT user_id, day FROM events WHERE load_id = :load_id{only_activity}"
            " ON CONFLICT DO NOTHING"
        ),
        params,
    )


def update_order_facts(session: Session, load_id: str) -> None:
    """Recount paid orders and spend for the users whose orders this load touched."""
    session.execute(
        text(
            "INSERT INTO user_facts (user_id, event_count, order_count, revenue, last_order_at,"
            " updated_at)"
            " SELECT touched.user_id, 0, COUNT(o.order_id), COALESCE(SUM(o.amount), 0),"
            " MAX(o.created_at), :now"
            " FROM (SELECT DISTINCT user_id FROM orders WHERE load_id = :load_id) AS touched"
            " LEFT JOIN orders o ON o.user_id = touched.user_id AND o.status = 'paid'"
            " GROUP BY touched.user_id"
            " ON CONFLICT (user_id) DO UPDATE SET order_count = excluded.order_count,"
            " revenue = excluded.revenue, last_order_at = excluded.last_order_at,"
            " updated_at = excluded.updated_at"
        ),
        {"load_id": load_id, "now": _store_time(session)},
    )


def _store_time(session: Session) -> Any:
    """Now, as a bound value raw SQL text can compare with DateTime columns on either store."""
    return utcnow() if is_postgres(session) else _sqlite_value(utcnow())


def reject(session: Session, source: str, run_id: str, rejects: list[tuple[str, str]]) -> None:
    if rejects:
        now = utcnow()
        session.execute(
            insert(RejectedRecord),
            [
                {
                    "source": source,
                    "run_id": run_id,
                    "raw": raw,
                    "reason": reason,
                    "created_at": now,
                }
                for raw, reason in rejects
            ],
        )


def get_watermark(session: Session, source: str) -> str | None:
    return session.scalar(select(SourceWatermark.watermark).where(SourceWatermark.source == source))


def set_watermark(session: Session, source: str, watermark: str) -> None:
    statement = upsert_insert(session, SourceWatermark).values(
        source=source, watermark=watermark, updated_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["source"],
            set_={
                "watermark": statement.excluded.watermark,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )
