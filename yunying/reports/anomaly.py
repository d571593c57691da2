"""Anomaly bands (异常波动): is a KPI outside what its own history says is normal?

Method: the same weekday over the previous `weeks` weeks; the band is the median ± 3 robust
standard deviations (1.4826 × MAD), never narrower than ±5% of the median, so a flat history
does not flag noise. No flag until `min_history` same-weekday values exist. A flag is
`continuing` when the same KPI was also outside its band the day before.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

METHOD = "same weekday, median ± 3 × 1.4826 × MAD (at least ±5%)"
MIN_HISTORY = 4


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    median: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Flag:
    kpi: str
    value: float
    band: Band | None
    status: str  # "normal" | "new" | "continuing" | "not enough history"


def band_for(history: list[float], min_history: int = MIN_HISTORY) -> Band | None:
    if len(history) < min_history:
        return None
    median = statistics.median(history)
    mad = statistics.median(abs(x - median) for x in history)
    half_width = max(3 * 1.4826 * mad, 0.05 * abs(median))
    return Band(median - half_width, median + half_width, median)


def judge(kpi: str, value: float, history: list[float], yesterday_outside: bool) -> Flag:
    band = band_for(history)
    if band is None:
        return Flag(kpi, value, None, "not enough history")
    if band.contains(value):
        return Flag(kpi, value, band, "normal")
    return Flag(kpi, value, band, "continuing" if yesterday_outside else "new")
