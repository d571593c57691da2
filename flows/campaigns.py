"""Every active nightly campaign for a business date, in priority order.

Each campaign is planned, then sent, as the reactivation flow does, one after another, so a
higher-priority campaign claims its users first; the cross-campaign cap in the outbox keeps
every other campaign off them that night.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from flows.alerts import ALERTS
from flows.common import default_business_date, run_name
from flows.reactivation import MAX_SEND_TASKS, night_end, reactivate, sending_off_prefix
from tasks.policy import RETRY_TRANSIENT
from tasks.secrets import load_settings
from yunying.config import Settings
from yunying.messaging.campaign import nightly_campaigns
from yunying.messaging.campaign_check import check_references


@task(name="nightly-campaigns", **RETRY_TRANSIENT)
def choose_campaigns(
    settings: Settings, business_date: dt.date, names: list[str] | None = None
) -> list[str]:
    chosen = nightly_campaigns(settings.campaign_dir, business_date, names)
    for campaign in chosen:  # a missing template or segment stops the night before any send
        check_references(campaign, settings.campaign_dir / f"{campaign.name}.toml", settings)
    return [c.name for c in chosen]


@flow(
    name="campaigns",
    flow_run_name=lambda: run_name("campaigns"),
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def campaigns(
    business_date: dt.date | None = None, names: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every campaign file with `nightly = true`, or the named ones, if active that date."""
    settings = load_settings()
    results, warnings = send_campaigns(
        settings, business_date or default_business_date(settings), names
    )
    return night_end(results, results, warnings)  # type: ignore[no-any-return]


def send_campaigns(
    settings: Settings, day: dt.date, names: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The night's campaigns in the current flow run (the campaigns flow's or the nightly's):
    their summaries, and the warnings of those that left messages unsettled."""
    chosen = choose_campaigns(settings, day, names)
    # One night's budget of send tasks, shared: at 200 each, five campaigns could make 1,000.
    share = max(1, MAX_SEND_TASKS // max(1, len(chosen)))
    results, warnings = [], []
    for name in chosen:
        summary, warning = reactivate(settings, name, day, send_tasks=share)
        results.append({"campaign": name, **summary})
        warnings += [warning] if warning else []
    create_table_artifact(
        key="campaigns-tonight",
        table=[
            {"campaign": r["campaign"], **{k: v for k, v in r.items() if isinstance(v, int)}}
            for r in results
        ],
        description=f"{sending_off_prefix(settings)}Campaigns sent for {day}, in priority order",
    )
    return results, warnings


if __name__ == "__main__":
    campaigns()
