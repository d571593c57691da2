"""Anomaly bands (异常波动): is a KPI outside what its own recent history says is normal?

Method (pure functions over a KPI's daily series):

- the level is the mean of the 7 days before the day (one of each weekday), so a growing
  company does not look abnormal every day;
- the weekday shape is the median ratio of that weekday to its own preceding 7-day mean over
  the previous `WEEKS` weeks; the expected value is level x shape;
- the spread: every day of those weeks misses its own expected value by some amount; measured
  in square roots of the expected value (counts vary that way), their robust standard
  deviation (1.4826 x MAD), widened for the error of the expected value itself;
- the band is expected +- Z spreads, never narrower than +-FLOOR of the expected value (a flat
  history must not flag noise) nor than +-Z itself (a count a few events off is ordinary,
  as on a day whose usual value is zero); no band until `MIN_HISTORY` same-weekday values
  exist.

Z = 3.5 is tuned for a false-alarm rate of about 0.6% per KPI and day on a steady series with
a weekly pattern and Poisson noise (about one false flag in six weeks over the four flagged
KPIs). On the demo company (2,000 users, its last 60 days) the DAU band is about +-17% of the
expected value (the former same-weekday median +-3 MAD gave DAU 34-555); orders, new users
and revenue, a few dozen a day there, get +-70-90%. Both are tested (tests/unit/test_anomaly.py).

A flag says its direction (above / below the band) and since when: the first day of the
unbroken run of days outside the band on the same side, looked back up to `LOOKBACK` days.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

WEEKS = 8
MIN_HISTORY = 4
Z = 3.5
FLOOR = 0.05
LOOKBACK = 14
DAY = dt.timedelta(days=1)
# How many days before the report date a KPI series must reach for bands and "since".
SERIES_DAYS = 7 * WEEKS + 7 + LOOKBACK
METHOD = {"weeks": WEEKS, "z": Z, "floor": f"{FLOOR:.0%}"}  # for the report's "method_text"


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    median: float  # the expected value

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Flag:
    kpi: str
    value: float
    band: Band | None
    status: str  # "normal" | "above" | "below" | "not enough history"
    since: dt.date | None = None  # first day of the run outside the band (when raised)

    @property
    def raised(self) -> bool:
        return self.status in ("above", "below")


def _level(series: Mapping[dt.date, float], day: dt.date, start: dt.date) -> float | None:
    """The mean of the 7 days before `day`, when they are all within the data."""
    if day - 7 * DAY < start:
        return None
    return sum(series.get(day - k * DAY, 0.0) for k in range(1, 8)) / 7


def _weekday_ratios(
    series: Mapping[dt.date, float], day: dt.date, start: dt.date, weeks: int
) -> dict[int, list[tuple[dt.date, float, float]]]:
    """For each of the `weeks` x 7 days before `day` that has a level: (date, value, level),
    grouped by weekday."""
    grouped: dict[int, list[tuple[dt.date, float, float]]] = {}
    for back in range(1, 7 * weeks + 1):
        past = day - back * DAY
        level = _level(series, past, start)
        if level:
            grouped.setdefault(past.weekday(), []).append((past, series.get(past, 0.0), level))
    return grouped


def band_for(
    series: Mapping[dt.date, float], day: dt.date, start: dt.date, weeks: int = WEEKS
) -> Band | None:
    """The band for `day` from the series before it; days before `start` have no data."""
    level = _level(series, day, start)
    grouped = _weekday_ratios(series, day, start, weeks)
    same_day = grouped.get(day.weekday(), [])
    if level is None or len(same_day) < MIN_HISTORY:
        return None
    shape = {
        weekday: statistics.median(value / past_level for _, value, past_level in rows)
        for weekday, rows in grouped.items()
    }
    # Counts (and sums of many small amounts) vary with the square root of their size: each
    # past day's miss is measured in those units, so a small early history does not widen
    # today's band.
    misses = [
        (value - past_level * shape[weekday]) / math.sqrt(past_level * shape[weekday])
        for weekday, rows in grouped.items()
        for _, value, past_level in rows
        if past_level * shape[weekday] > 0
    ]
    expected = level * shape[day.weekday()]
    spread = 0.0  # a series mostly of zeros has no misses: its band is the floor below
    if misses:
        centre = statistics.median(misses)
        spread = 1.4826 * statistics.median(abs(m - centre) for m in misses)
    # The expected value is itself estimated: the 7-day level adds 1/7 of a day's variance,
    # the median of n same-weekday ratios about pi/2n.
    spread *= math.sqrt(1 + 1 / 7 + math.pi / (2 * len(same_day)))
    # A count a few events off is never abnormal (a new user more on a day of one or two).
    half_width = max(Z * spread * math.sqrt(expected), FLOOR * expected, Z)
    return Band(max(expected - half_width, 0.0), expected + half_width, expected)


def _status(value: float, band: Band | None) -> str:
    if band is None:
        return "not enough history"
    if value > band.high:
        return "above"
    if value < band.low:
        return "below"
    return "normal"


def judge(kpi: str, series: Mapping[dt.date, float], day: dt.date, start: dt.date) -> Flag:
    """The KPI's value on `day` against its band, with the day the excursion began."""
    value = series.get(day, 0.0)
    band = band_for(series, day, start)
    status = _status(value, band)
    if status not in ("above", "below"):
        return Flag(kpi, value, band, status)
    since = day
    for back in range(1, LOOKBACK + 1):
        earlier = day - back * DAY
        if _status(series.get(earlier, 0.0), band_for(series, earlier, start)) != status:
            break
        since = earlier
    return Flag(kpi, value, band, status, since)
