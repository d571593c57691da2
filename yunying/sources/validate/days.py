"""The calendar date in the company's time zone of a UTC moment, from one cache.

Every time zone changes its offset on a quarter hour, so a UTC quarter hour has one local date.
The cache holds, per zone and UTC hour ('YYYY-MM-DD HH'), that hour's local date, or its four
quarters' dates in the rare hour in which the date turns (a zone offset by a half or quarter
hour): converting each moment costs far more than a look-up. The reference rule and the
column-at-a-time path both read it, so they agree by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from operator import itemgetter
from typing import cast
from zoneinfo import ZoneInfo

HourDays = str | tuple[str, str, str, str]

_HOURS: dict[ZoneInfo, dict[str, HourDays]] = {}
_MAX_HOURS = 200_000  # about 23 years of hours a zone; the cache starts over beyond
_QUARTER = {f"{minute:02d}": minute // 15 for minute in range(60)}


def local_day(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The local date in `zone` of a naive UTC moment (1970 to 2100)."""
    days = _hour_days(moment.isoformat(" ", "hours"), zone)
    return dt.date.fromisoformat(days if isinstance(days, str) else days[moment.minute // 15])


def local_days(stored: Sequence[str], zone: ZoneInfo) -> list[str]:
    """The local date in `zone` of each stored UTC text ('YYYY-MM-DD HH:MM:SS.ffffff'): a
    look-up a row by the text's hour. A text that is no real moment gets ""."""
    hours = _hours(zone)
    by_hour = list(map(itemgetter(slice(0, 13)), stored))
    seen = set(by_hour)
    for hour in seen.difference(hours):
        hours[hour] = _hour(hour, zone)
    days = list(map(hours.__getitem__, by_hour))
    if all(isinstance(hours[hour], str) for hour in seen):
        return cast(list[str], days)
    return [
        day if isinstance(day, str) else day[_QUARTER.get(text[14:16], 0)]
        for day, text in zip(days, stored, strict=True)
    ]


def _hours(zone: ZoneInfo) -> dict[str, HourDays]:
    hours = _HOURS.get(zone) or _HOURS.setdefault(zone, {})
    if len(hours) > _MAX_HOURS:
        hours.clear()
    return hours


def _hour_days(hour: str, zone: ZoneInfo) -> HourDays:
    hours = _hours(zone)
    days = hours.get(hour)
    if days is None:
        days = hours[hour] = _hour(hour, zone)
    return days


def _hour(hour: str, zone: ZoneInfo) -> HourDays:
    """The local dates of a UTC hour's four quarters, or one date when they agree."""
    try:
        start = dt.datetime.fromisoformat(f"{hour}:00").replace(tzinfo=dt.UTC)
    except ValueError:  # an odd record's, which is not kept
        return ""
    if len(hour) != 13 or not 1970 <= start.year <= 2100:
        return ""
    first, second, third, fourth = (
        (start + dt.timedelta(minutes=15 * q)).astimezone(zone).date().isoformat() for q in range(4)
    )
    return first if first == second == third == fourth else (first, second, third, fourth)
