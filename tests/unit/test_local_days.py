"""The one cache of local dates against converting each moment: the reference rule and the
column-at-a-time path both read it, so the differential tests cannot see it wrong."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from yunying.sources.validate.days import local_day, local_days

ZONES = ["Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC"]


def _moments() -> list[dt.datetime]:
    # Either side of every quarter hour around DST changes and local midnights.
    moments = []
    for day in (dt.datetime(2026, 3, 7), dt.datetime(2026, 4, 4), dt.datetime(2026, 10, 3)):
        for quarter in range(3 * 96):
            start = day + dt.timedelta(minutes=15 * quarter)
            moments += [start, start + dt.timedelta(minutes=14, seconds=59, microseconds=999999)]
    return moments


@pytest.mark.parametrize("zone", ZONES)
def test_local_dates_are_each_moments_own(zone: str) -> None:
    tz = ZoneInfo(zone)
    moments = _moments()
    expected = [m.replace(tzinfo=dt.UTC).astimezone(tz).date() for m in moments]
    assert [local_day(m, tz) for m in moments] == expected
    stored = [m.isoformat(" ", "microseconds") for m in moments]
    assert local_days(stored, tz) == [day.isoformat() for day in expected]


def test_a_text_that_is_no_moment_has_no_date() -> None:
    tz = ZoneInfo("Asia/Kathmandu")
    texts = ["", "2026-02-30 01:00:00.000000", "1969-12-31 23:00:00.000000", "x" * 26]
    assert local_days(texts, tz) == [""] * len(texts)
