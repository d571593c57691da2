"""The report's one-sentence headline and the wording of each flag: what moved beyond its
normal range, in which direction, and since when."""

from __future__ import annotations

import datetime as dt

from yunying.reports.anomaly import Flag
from yunying.reports.kpis import DailyKpis
from yunying.reports.words import Words


def since_text(flag: Flag, today: dt.date, words: Words) -> str:
    if flag.since is None or flag.since == today:
        return words("since_today")
    return words("since_day", day=words.date(flag.since))


def flag_status(flag: Flag, today: dt.date, words: Words) -> str:
    """e.g. "above normal since 2 Nov 2026"; "normal"; "not enough history yet"."""
    if not flag.raised:
        return words(flag.status)
    return words(
        "status_raised", direction=words(flag.status), since=since_text(flag, today, words)
    )


def headline(kpis: DailyKpis, words: Words) -> str:
    raised = kpis.raised_flags
    if not raised:
        return words("headline_calm")
    items = []
    for flag in raised:
        if flag.band is None:  # a raised flag has its band; this keeps mypy informed
            continue
        items.append(
            words(
                "headline_item",
                kpi=words(flag.kpi),
                value=words.kpi_value(flag.kpi, flag.value),
                direction=words(flag.status),
                low=words.kpi_value(flag.kpi, flag.band.low),
                high=words.kpi_value(flag.kpi, flag.band.high),
                since=since_text(flag, kpis.business_date, words),
            ).strip()
        )
    separator = "；" if words.locale == "zh-CN" else "; "
    return words("headline_flags", items=separator.join(items))
