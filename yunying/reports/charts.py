"""Charts for the report as PNG bytes (matplotlib's Agg backend, no display needed).

Charts carry no words: titles and legends are in the report's HTML, in the company's locale
(the machine need not have CJK fonts). The funnel is drawn in HTML."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from yunying.reports.anomaly import Band


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot.subplots(figsize=(6, 2.4), dpi=100)


def _png(figure: Any) -> bytes:
    from matplotlib import pyplot

    try:
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        pyplot.close(figure)


def dau_chart(trend: list[tuple[dt.date, int]], band: Band | None = None) -> bytes:
    figure, axes = _figure()
    days = [day for day, _ in trend]
    axes.plot(days, [n for _, n in trend], color="#1f6feb", linewidth=2)
    if band is not None and days:
        axes.errorbar(
            [days[-1]],
            [band.median],
            yerr=[[band.median - band.low], [band.high - band.median]],
            color="#f0883e",
            capsize=4,
        )
    axes.set_ylim(bottom=0)
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _png(figure)


def retention_chart(rows: list[tuple[str, list[float | None]]], offsets: list[int]) -> bytes:
    figure, axes = _figure()
    plotted = False
    for label, values in rows:
        points = [(o, v) for o, v in zip(offsets, values, strict=True) if v is not None]
        if points:
            axes.plot([o for o, _ in points], [v * 100 for _, v in points], marker="o", label=label)
            plotted = True
    axes.set_xticks(offsets, [f"D{o}" for o in offsets])
    axes.set_ylim(bottom=0)
    axes.tick_params(labelsize=8)
    if plotted:
        axes.legend(fontsize=6, ncol=4)
    return _png(figure)
