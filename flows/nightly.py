"""The nightly chain: pull -> lifecycle -> every active campaign's sends -> daily report."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.alerts import ALERTS
from flows.campaigns import send_campaigns
from flows.common import default_business_date, run_name
from flows.pull import pull_all
from flows.reactivation import night_end
from flows.report import report_day
from tasks.lifecycle import lifecycle, lifecycle_dates
from tasks.reactivation import sending_off
from tasks.secrets import load_settings


@flow(
    name="nightly",
    flow_run_name=lambda: run_name("nightly"),
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def nightly(
    business_date: dt.date | None = None,
    campaign: str | None = None,
    force_report: bool = False,
) -> dict[str, Any]:
    """Sends every campaign file with `nightly = true` active that date, in priority order
    under the cross-campaign cap; `campaign` narrows the night to that one campaign."""
    settings = load_settings()
    day = business_date or default_business_date(settings)
    # The stages' tasks run in this flow run, not in a subflow each: a subflow cost about a
    # second (Prefect joins its heartbeat thread, which sleeps in 1 s steps).
    pulled = pull_all(settings)
    for earlier in lifecycle_dates(settings, day)[:-1]:  # catch up missed nights in order
        lifecycle(settings, earlier)
    states = lifecycle(settings, day)
    sent, warnings = send_campaigns(settings, day, [campaign] if campaign else None)
    daily = report_day(settings, day, force_report)
    summary = {
        "business_date": day.isoformat(),
        "pulled": {r["source"]: r["pulled"] for r in pulled},
        "rejected": sum(r["rejected"] for r in pulled),
        "lifecycle": states.by_state,
        "messages": dict(_message_totals(sent)),
        "campaigns": {r["campaign"]: _campaign_line(r) for r in sent},
        "report": daily["html"],
        "report_email": daily["eml"],
        "sending_off": sending_off(settings),
    }
    create_markdown_artifact(key="nightly-summary", markdown=_markdown(summary))
    return night_end(summary, sent, warnings)  # type: ignore[no-any-return]


def _counts(result: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in result.items() if isinstance(v, int) and v}


def _campaign_line(result: dict[str, Any]) -> dict[str, int]:
    """A campaign's figures for the summary; a dry run's are what it would have sent."""
    if "dry_run" not in result:
        return _counts(result)
    planned = result["dry_run"]
    return {
        "dry run, would send": sum(planned["would_send"].values()),
        "would hold out": planned["would_hold_out"],
    }


def _message_totals(results: list[dict[str, Any]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for result in results:
        totals.update(_counts(result))
    return totals


def _markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Nightly run for {summary['business_date']}", ""]
    if summary["sending_off"]:
        lines += [f"**{summary['sending_off']}**", ""]
    for stage in ("pulled", "lifecycle", "messages"):
        parts = ", ".join(f"{k}: {v}" for k, v in summary[stage].items()) or "none"
        lines.append(f"- **{stage}**: {parts}")
    for name, counts in summary["campaigns"].items():
        parts = ", ".join(f"{k}: {v}" for k, v in counts.items()) or "nothing to send"
        lines.append(f"  - campaign `{name}`: {parts}")
    if not summary["campaigns"]:
        lines.append("  - no campaign active tonight")
    lines.append(f"- **rejected records**: {summary['rejected']}")
    lines.append(f"- **report**: `{summary['report']}`")
    return "\n".join(lines)


if __name__ == "__main__":
    nightly()
