"""Evaluating segment files against the store: members, counts, the SQL, sizes per day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, literal, select
from sqlalchemy.orm import Session

from yunying.reports.effects import Money
from yunying.rewards.plan import mask
from yunying.segments.compile import compile_segment
from yunying.segments.definition import SegmentLibrary
from yunying.store.engine import upsert_insert, utcnow
from yunying.store.models import SegmentSize


def members(
    session: Session,
    library: SegmentLibrary,
    name: str,
    business_date: dt.date,
    zone: ZoneInfo,
    money: Money,
) -> Select[tuple[str]]:
    """The statement selecting segment `name`'s user ids on `business_date`."""
    return compile_segment(session, library, library.get(name), business_date, zone, money)


@dataclass(frozen=True)
class SegmentView:
    name: str
    description: str
    business_date: dt.date
    users: int
    sample: list[str]  # masked user ids
    sql: str

    def text(self) -> str:
        lines = [
            f"segment {self.name} on {self.business_date}: {self.users} users",
            *([self.description] if self.description else []),
            f"e.g. {', '.join(self.sample) if self.sample else '(nobody)'}",
            "",
            self.sql,
        ]
        return "\n".join(lines)


def show(
    session: Session,
    library: SegmentLibrary,
    name: str,
    business_date: dt.date,
    zone: ZoneInfo,
    money: Money,
    sample: int = 5,
) -> SegmentView:
    statement = members(session, library, name, business_date, zone, money)
    users = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    first = session.scalars(statement.order_by(None).limit(sample)).all()
    bind = session.get_bind()
    sql = str(statement.compile(bind, compile_kwargs={"literal_binds": True}))
    segment = library.get(name)
    return SegmentView(
        name, segment.description, business_date, users, [mask(u) for u in first], sql
    )


def record_sizes(
    session: Session,
    library: SegmentLibrary,
    names: list[str],
    business_date: dt.date,
    zone: ZoneInfo,
    money: Money,
) -> dict[str, int]:
    """Count each segment on `business_date` into `segment_sizes` (a rerun overwrites)."""
    sizes: dict[str, int] = {}
    now = utcnow()
    for name in names:
        statement = members(session, library, name, business_date, zone, money)
        counted = select(
            literal(name),
            literal(business_date),
            select(func.count()).select_from(statement.subquery()).scalar_subquery(),
            literal(now),
        )
        insert = upsert_insert(session, SegmentSize).from_select(
            ["segment", "business_date", "users", "computed_at"], counted
        )
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["segment", "business_date"],
                set_={"users": insert.excluded.users, "computed_at": insert.excluded.computed_at},
            )
        )
        sizes[name] = (
            session.scalar(
                select(SegmentSize.users).where(
                    SegmentSize.segment == name, SegmentSize.business_date == business_date
                )
            )
            or 0
        )
    return sizes


def size_history(
    session: Session, names: list[str], last: dt.date, days: int = 14
) -> dict[str, dict[dt.date, int]]:
    """Recorded sizes per segment for the `days` dates ending on `last`."""
    rows = session.execute(
        select(SegmentSize.segment, SegmentSize.business_date, SegmentSize.users).where(
            SegmentSize.segment.in_(names),
            SegmentSize.business_date > last - dt.timedelta(days=days),
            SegmentSize.business_date <= last,
        )
    )
    history: dict[str, dict[dt.date, int]] = {name: {} for name in names}
    for segment, day, users in rows:
        history[segment][day] = users
    return history
