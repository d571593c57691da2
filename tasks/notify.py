"""Tell ops in their group chat (WeCom, DingTalk, Feishu, Apprise): report, payout, review.

A chat message is a courtesy, not the work: a robot that is down or refuses is logged as a
warning and never fails the run (post.py already retried what may pass). Links point at the
current flow run in the Prefect UI.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import task
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL
from prefect.utilities.urls import url_for

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.notify.command_line import command_line_rerun
from yunying.notify.messages import campaign_review, payout_waiting, report_headline
from yunying.notify.post import Delivery, post_to_targets
from yunying.notify.robots import ChatMessage
from yunying.notify.targets import Event
from yunying.reports.words import Words
from yunying.rewards.ledger import remaining_budget
from yunying.rewards.plan import PayoutPlan
from yunying.store.engine import session_scope

NO_RETRY = {**RETRY_TRANSIENT, "retries": 0}  # post.py retries each target itself


# Prefect's ephemeral API has no UI: `make ui` serves one over the same PREFECT_HOME here.
LOCAL_UI_URL = "http://127.0.0.1:4200"


def run_link(run_id: UUID | str | None = None) -> str | None:
    """The Prefect UI page of a flow run (the current one by default): on PREFECT_UI_URL,
    else on the local UI of `make ui`. Always absolute: mail clients drop relative links.
    None for a run on the `yunying` command's temporary server, gone when it ends."""
    run_id = run_id or flow_run.get_id()
    if run_id is None or local_rerun() is not None:
        return None
    base = PREFECT_UI_URL.value() or LOCAL_UI_URL
    return url_for("flow-run", obj_id=run_id, default_base_url=base) or (
        f"{base.rstrip('/')}/runs/flow-run/{run_id}"
    )


def local_rerun() -> str | None:
    """The `yunying run …` command that runs this run again, when it runs on that command's
    temporary Prefect server (see yunying/notify/command_line.py)."""
    return command_line_rerun(PREFECT_API_URL.value())


def tell(settings: Settings, event: Event, message: ChatMessage) -> list[Delivery]:
    """Post to every target subscribed to `event`; log what was not delivered."""
    deliveries = post_to_targets(settings.notify, event, message)
    for failed in (d for d in deliveries if not d.delivered):
        get_run_logger().warning("chat target %s was not told: %s", failed.target, failed.reason)
    return deliveries


def _summary(deliveries: list[Delivery]) -> dict[str, Any]:
    return {
        "delivered": [d.target for d in deliveries if d.delivered],
        "failed": {d.target: d.reason for d in deliveries if not d.delivered},
    }


@task(name="tell-ops-report", **NO_RETRY)
def tell_report(settings: Settings, business_date: str, kpis: dict[str, Any]) -> dict[str, Any]:
    words = Words(settings.default_locale, kpis.get("currency", settings.currency))
    headline = report_headline(business_date, kpis, run_link(), words)
    return _summary(tell(settings, "report", headline))


@task(name="tell-ops-payout", **NO_RETRY)
def tell_payout_waiting(settings: Settings, payout: PayoutPlan) -> dict[str, Any]:
    with session_scope(engine_for(settings.store_url)) as session:
        remaining = remaining_budget(session, payout.campaign)
    flagged = sum(1 for e in payout.entries if e.flags)
    message = payout_waiting(
        payout.campaign, len(payout.entries), flagged, str(payout.total), str(remaining), run_link()
    )
    return _summary(tell(settings, "payout", message))


@task(name="tell-ops-review", **NO_RETRY)
def tell_review(
    settings: Settings, campaign: str, objective: str, results: dict[str, Any]
) -> dict[str, Any]:
    """For a campaign review (复盘) flow: post its objective and results with the run link."""
    return _summary(
        tell(settings, "review", campaign_review(campaign, objective, results, run_link()))
    )
