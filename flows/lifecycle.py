"""Lifecycle states for a date or a range of dates, and nothing else: no pull, no sends.

`yunying run lifecycle --date D` computes D (and the missed nights before it);
`--from D0 --date D1` recomputes D0..D1 in order on any store, and then the dates after D1
that were already computed, so their states and transitions follow from the recomputed ones;
with `--discard-later` the range ends at D1 and the dates computed after it are forgotten.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.alerts import ALERTS
from flows.common import default_business_date
from tasks.lifecycle import lifecycle, lifecycle_plan
from tasks.secrets import load_settings


def _run_name() -> str:
    parameters = flow_run.get_parameters() or {}
    day = parameters.get("business_date") or "yesterday"
    first = parameters.get("first")
    return f"lifecycle-{first}..{day}" if first else f"lifecycle-{day}"


@flow(
    name="lifecycle",
    flow_run_name=_run_name,
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def lifecycle_range(
    business_date: dt.date | None = None,
    first: dt.date | None = None,
    discard_later: bool = False,
) -> dict[str, Any]:
    settings = load_settings()
    day = business_date or default_business_date(settings)
    dates, recompute, discards = lifecycle_plan(settings, day, first, discard_later)
    summaries = [lifecycle(settings, date, recompute and i == 0) for i, date in enumerate(dates)]
    last = summaries[-1]
    result: dict[str, Any] = {
        "dates": [d.isoformat() for d in dates],
        "recomputed": [
            f"{s.business_date}: {s.recomputed_all}" for s in summaries if s.recomputed_all
        ],
        "lifecycle": last.by_state,
        "transitions": sum(sum(s.transitions.values()) for s in summaries),
        "forgotten": f"{day + dt.timedelta(days=1)} .. {discards}" if discards else None,
        "sent": 0,
    }
    create_markdown_artifact(key="lifecycle-summary", markdown=_markdown(result))
    return result


def _markdown(result: dict[str, Any]) -> str:
    dates = result["dates"]
    lines = [
        f"# Lifecycle {dates[0]} .. {dates[-1]} ({len(dates)} dates)",
        "",
        "Nothing was sent: this flow computes states only.",
        "",
        "- **users per state**: " + ", ".join(f"{k}: {v}" for k, v in result["lifecycle"].items()),
        f"- **transitions**: {result['transitions']}",
    ]
    lines += [f"- **recomputed**: {line}" for line in result["recomputed"]]
    if result["forgotten"]:
        lines.append(f"- **forgotten** (`discard_later`): the dates {result['forgotten']}")
    return "\n".join(lines)


if __name__ == "__main__":
    lifecycle_range()
