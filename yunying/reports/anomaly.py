"""Anomaly bands (异常波动): is a KPI outside what its own recent history says is normal?

Method (pure functions over a KPI's daily series):

- the level is the mean of the 7 days before the day (one of each weekday), so a growing
  company does not look abnormal every day;
- the weekday shape is the ratio of the same weekday to its own preceding 7-day mean, over the
  previous `WEEKS` weeks; the expected value is level x the median ratio;
- the band is expected +- Z x 1.4826 x MAD of those ratios x level, never narrower than
  +-FLOOR of the expected value (a flat history must not flag noise);
- no band until `MIN_HISTORY` such ratios exist.

Z = 3.5 was tuned for a false-alarm rate of about 0.5% per KPI and day on a steady series
(about one false flag a month over the four flagged KPIs); on the demo company's 120 days the
DAU band is about +-12% of the expected value wide. Both are tested (tests/unit/test_anomaly.py).

A flag says its direction (above / below the band) and since when: the first day of the
unbroken run of days outside the band on the same side, looked back up to `LOOKBACK` days.
"""

from __future__ import annotations

import datetime as dt
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
METHOD = (
    f"expected = mean of the previous 7 days x the weekday's usual ratio to it "
    f"(last {WEEKS} weeks); band = expected ± {Z} robust standard deviations (at least "
    f"±{FLOOR:.0%}); tuned for about 0.5% false alarms per KPI and day"
)


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


def band_for(
    series: Mapping[dt.date, float], day: dt.date, start: dt.date, weeks: int = WEEKS
) -> Band | None:
    """The band for `day` from the series before it; days before `start` have no data."""
    level = _level(series, day, start)
    ratios = []
    for k in range(1, weeks + 1):
        past = day - 7 * k * DAY
        past_level = _level(series, past, start)
        if past_level:
            ratios.append(series.get(past, 0.0) / past_level)
    if level is None or len(ratios) < MIN_HISTORY:
        return None
    ratio = statistics.median(ratios)
    spread = 1.4826 * statistics.median(abs(r - ratio) for r in ratios)
    expected = level * ratio
    half_width = max(Z * spread * level, FLOOR * expected)
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
