"""Business dates: days in the company's time zone. A run is for a day that has begun,
yesterday (the last complete day) by default; a later one would compute every user as of a
day nobody has lived yet, and the dates before it could then no longer be run."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from yunying.errors import PermanentError


def today(zone: ZoneInfo) -> dt.date:
    return dt.datetime.now(zone).date()


def yesterday(zone: ZoneInfo) -> dt.date:
    return today(zone) - dt.timedelta(days=1)


def refuse_future(day: dt.date, zone: ZoneInfo, name: str) -> None:
    """Raise when `day` (the flag or parameter `name`) is after today in `zone`."""
    now = today(zone)
    if day > now:
        raise PermanentError(
            f"{name} {day} is after today ({now} in {zone.key}): a business date must be a "
            f"day that has begun (the default is yesterday, {now - dt.timedelta(days=1)})"
        )


def refuse_unfinished(day: dt.date, zone: ZoneInfo, name: str) -> None:
    """Raise unless `day` has ended in `zone`: a report of a day still under way would show a
    part of it as the whole, flag it as a drop, and be recorded as sent."""
    refuse_future(day, zone, name)
    now = today(zone)
    if day == now:
        raise PermanentError(
            f"{name} {day} is today in {zone.key}: its report would cover part of a day; report"
            f" a day that has ended (the default is yesterday, {now - dt.timedelta(days=1)})"
        )
