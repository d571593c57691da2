"""Anomaly bands: direction and since when, the false-alarm rate they were tuned for, and how
wide they are on the demo company's history (computed here in plain Python from the
generator, no store)."""

import datetime as dt
import math
import random
import statistics
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest

from yunying.demo.company import generate
from yunying.reports.anomaly import band_for, judge

START = dt.date(2026, 1, 5)  # a Monday
DAY = dt.timedelta(days=1)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def _steady(seed: int, base: float, days: int = 160) -> dict[dt.date, float]:
    """A growing series with a weekly pattern (busier weekends, quieter Mondays) and Poisson
    noise: nothing abnormal ever happens in it."""
    rng = random.Random(seed)
    series = {}
    for i in range(days):
        day = START + i * DAY
        weekly = 1.25 if day.weekday() >= 5 else (0.9 if day.weekday() == 0 else 1.0)
        series[day] = float(_poisson(rng, base * (1 + 0.003 * i) * weekly))
    return series


@pytest.mark.parametrize("base", [20, 100, 700], ids=["tens", "hundreds", "many-hundreds"])
def test_the_false_alarm_rate_is_what_the_bands_were_tuned_for(base: float) -> None:
    flags = judged = 0
    for seed in range(12):
        series = _steady(seed, base)
        for i in range(70, 160):
            day = START + i * DAY
            flag = judge("dau", series, day, START)
            judged += 1
            flags += flag.raised
    assert judged == 12 * 90
    assert flags / judged < 0.012  # tuned for about 0.6% per KPI and day


def test_a_spike_says_above_and_a_drop_says_below_with_since_when() -> None:
    series = _steady(1, 300)
    last = START + 159 * DAY
    assert judge("dau", series, last, START).status == "normal"
    for back in (2, 1, 0):  # three days running well above
        series[last - back * DAY] *= 1.6
    flag = judge("dau", series, last, START)
    assert (flag.status, flag.since) == ("above", last - 2 * DAY)
    assert flag.band is not None and flag.value > flag.band.high

    series = _steady(1, 300)
    series[last] *= 0.4
    flag = judge("dau", series, last, START)
    assert (flag.status, flag.since) == ("below", last)


def test_no_flag_without_enough_history() -> None:
    series = _steady(2, 100, days=30)
    flag = judge("dau", series, START + 29 * DAY, START)
    assert (flag.status, flag.band, flag.raised) == ("not enough history", None, False)


def test_a_flat_history_still_has_a_band() -> None:
    series = {START + i * DAY: 100.0 for i in range(70)}
    band = band_for(series, START + 69 * DAY, START)
    assert band is not None and (band.low, band.high) == (95, 105)


def _demo_series() -> tuple[dict[str, dict[dt.date, float]], dt.date, dt.date]:
    """Daily DAU, new users, paid orders and revenue of the demo company (`make demo`: 2,000
    users, seed 7), per Shanghai day, malformed records left out as the pull would."""
    zone, end = ZoneInfo("Asia/Shanghai"), dt.date(2026, 11, 1)

    def local(stamp: str) -> dt.date:
        return dt.datetime.fromisoformat(stamp).astimezone(zone).date()

    active: dict[dt.date, set[str]] = defaultdict(set)
    series: dict[str, dict[dt.date, float]] = {
        k: defaultdict(float) for k in ("new_users", "orders", "revenue")
    }
    for user in generate(2000, 7, end):
        series["new_users"][local(user.user["created"])] += 1
        for event in user.events:
            try:
                if event["uid"] is not None:
                    active[local(event["ts"])].add(event["uid"])
            except ValueError:
                continue
        for order in user.orders:
            if order["status"] == "paid" and float(order["amount"]) > 0:
                series["orders"][local(order["paid_at"])] += 1
                series["revenue"][local(order["paid_at"])] += float(order["amount"])
    series["dau"] = {day: float(len(users)) for day, users in active.items()}
    return series, min(series["new_users"]), end


def test_bands_on_the_demo_history_are_informative() -> None:
    series, start, end = _demo_series()
    widths: dict[str, list[float]] = defaultdict(list)
    flags = 0
    for kpi, values in series.items():
        for back in range(60):
            flag = judge(kpi, values, end - back * DAY, start)
            assert flag.band is not None
            widths[kpi].append((flag.band.high - flag.band.median) / flag.band.median)
            flags += flag.raised
    half_width = {kpi: statistics.median(w) for kpi, w in widths.items()}
    # DAU (hundreds a day) gets a band of about +-17%; the same-weekday median +-3 MAD it
    # replaced gave 34-555 around ~400. The small KPIs are noisy by nature at this scale.
    assert half_width["dau"] < 0.22
    assert all(w < 1.0 for w in half_width.values())
    assert flags <= 6  # of 240 KPI-days with nothing planted: a handful at most


def test_a_series_mostly_of_zeros_flags_a_spike_and_nothing_else() -> None:
    """A small company's new users: none on most days, two now and then. Its usual day is
    zero; a band of +-Z around it keeps a few ordinary, and 30 in a day is flagged."""
    series = {START + k * DAY: (2.0 if k % 9 == 0 else 0.0) for k in range(70)}
    for offset in range(56, 70):
        day = START + offset * DAY
        assert not judge("new_users", series, day, START).raised
        assert judge("new_users", {**series, day: 30.0}, day, START).status == "above"


def test_a_small_count_a_few_off_its_pattern_is_not_abnormal() -> None:
    """A new user on the same weekdays every week, none on the others: so steady that the
    spread is nil, yet one user more or less on a day is ordinary; 12 in a day is not."""
    pattern = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    series = {START + k * DAY: pattern[k % 7] for k in range(84)}
    for offset in range(70, 84):
        day = START + offset * DAY
        usual = series[day]
        for value in {usual, usual + 1, max(usual - 1, 0.0), usual + 3}:
            assert not judge("new_users", {**series, day: value}, day, START).raised
    last = START + 83 * DAY
    assert judge("new_users", {**series, last: 12.0}, last, START).status == "above"
