"""The time zone a store's days are in. Events, orders, signups and active days are dated in
the company's zone when they are stored; a later change of the `timezone` setting would date
new rows in another zone than the stored ones, and every count by day would mix the two."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunying.errors import ConfigError
from yunying.store.engine import upsert_insert, utcnow
from yunying.store.models import StoreFact

DAYS_TIMEZONE = "days_timezone"


def check_days_zone(session: Session, zone: str) -> None:
    """Record `zone` as the store's days' zone when none is yet; raise ConfigError when the
    store's days are in another one."""
    stored = session.scalar(select(StoreFact.value).where(StoreFact.name == DAYS_TIMEZONE))
    if stored is None:
        statement = upsert_insert(session, StoreFact).values(
            name=DAYS_TIMEZONE, value=zone, recorded_at=utcnow()
        )
        session.execute(statement.on_conflict_do_nothing())
        return
    if stored != zone:
        raise ConfigError(
            f"timezone is {zone}, but this store's days (of events, orders, signups) are in"
            f" {stored}, the zone it was filled in; new days in {zone} would mix with them."
            f" Set timezone back to {stored}, or start a new store (another database_url, or"
            " remove this one) and pull again in the new zone"
        )
