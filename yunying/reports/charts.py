"""Charts for the report as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import datetime as dt
import io


def dau_chart(trend: list[tuple[dt.date, int]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 2.4), dpi=100)
    try:
        days = [day for day, _ in trend]  # matplotlib plots dates; its stubs say floats
        axes.plot(days, [n for _, n in trend], color="#1f6feb", linewidth=2)  # type: ignore[arg-type]
        axes.set_title("DAU, last 30 days", fontsize=10)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        pyplot.close(figure)
