"""The daily report as a Prefect markdown artifact: the headline, the KPIs with human names and
formatted numbers, the flags with direction and since when, in the company's locale."""

from __future__ import annotations

from collections.abc import Sequence

from yunying.reports.headline import flag_status, headline
from yunying.reports.kpis import DailyKpis
from yunying.reports.running import RunningCampaign
from yunying.reports.words import Words


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def report_markdown(
    kpis: DailyKpis,
    words: Words,
    archived_at: str,
    running: Sequence[RunningCampaign] = (),
) -> str:
    w = words
    rows = [
        ("dau", w.number(kpis.dau)),
        ("wau", w.number(kpis.wau)),
        ("mau", w.number(kpis.mau)),
        ("stickiness", w.pct(kpis.stickiness)),
        ("new_users", w.number(kpis.new_users)),
        ("d1_retention", w.pct(kpis.d1_retention)),
        ("d7_retention", w.pct(kpis.d7_retention)),
        ("d30_retention", w.pct(kpis.d30_retention)),
        ("orders", w.number(kpis.orders)),
        ("revenue", w.money(kpis.revenue)),
        ("paying_users", w.number(kpis.paying_users)),
        ("arpu", w.money(kpis.arpu)),
        ("arppu", w.money(kpis.arppu)),
    ]
    lines = [
        f"# {w('title')} · {w.date(kpis.business_date)}",
        "",
        f"**{headline(kpis, w)}**",
        "",
        f"| {w('kpi')} | {w('value')} |",
        "|---|---:|",
        *(f"| {w(key)} | {_cell(value)} |" for key, value in rows),
        *(
            f"| {w('revenue_other', currency=code)} | {_cell(w.money(amount, code))} |"
            for code, amount in kpis.revenue_other.items()
        ),
        "",
        f"## {w('flags')}",
        "",
    ]
    if kpis.flags:
        lines += [
            f"| {w('kpi')} | {w('value')} | {w('band')} | {w('status')} |",
            "|---|---:|---:|---|",
        ]
        for flag in kpis.flags:
            band = (
                f"{w.kpi_value(flag.kpi, flag.band.low)}–{w.kpi_value(flag.kpi, flag.band.high)}"
                if flag.band
                else "—"
            )
            status = flag_status(flag, kpis.business_date, w)
            if flag.raised:
                status = f"**{status}**"
            value = w.kpi_value(flag.kpi, flag.value)
            lines.append(f"| {w(flag.kpi)} | {_cell(value)} | {_cell(band)} | {status} |")
    else:
        lines.append(w("no_data"))
    lines += ["", f"## {w('running')}", ""]
    for each in running:
        lines.append(
            f"- **{each.campaign}** ({w('last_sent')} {w.date(each.last_sent)}): "
            + " ".join(each.lines[1:])
            + f" {w('review_at', page=each.page, artifact=each.artifact)}"
        )
    if not running:
        lines.append(w("no_running"))
    lines += ["", f"{w('archived')} `{archived_at}`"]
    return "\n".join(lines)
