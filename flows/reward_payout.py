"""Reward payout (奖励发放), triggered by hand: plan -> approval in the Prefect UI -> pay
exactly once within budget -> publish the winners (公示) -> notify them."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from pydantic import Field

from tasks.notify import tell_payout_waiting
from tasks.rewards import decide, load, notify, pay, plan_payout, publish_winners
from yunying.config import load_settings

PAY_BATCH = 500


class PayoutApproval(RunInput):
    """The form the approver fills in the Prefect UI."""

    approve: bool = Field(default=False, description="Pay the plan shown in the artifact")
    approver: str = Field(min_length=1, description="Who approves or rejects")
    note: str = ""
    include_flagged: list[str] = Field(
        default_factory=list, description="User ids flagged by fraud screens to pay anyway"
    )


@flow(name="reward-payout", flow_run_name="reward-payout-{campaign}")
def reward_payout(
    campaign: str,
    approval_timeout_seconds: int = 86_400,
    poll_interval_seconds: int = 10,
) -> dict[str, Any]:
    settings = load_settings()
    logger = get_run_logger()
    chosen = load(settings, campaign)
    payout = plan_payout(settings, chosen)
    tell_payout_waiting(settings, payout)
    try:
        decision = pause_flow_run(
            wait_for_input=PayoutApproval.with_initial_data(
                description=f"Approve the payout of {campaign} (see the payout-plan artifact)",
                approver="",
            ),
            timeout=approval_timeout_seconds,
            poll_interval=poll_interval_seconds,
        )
    except FlowPauseTimeout:
        logger.warning("no decision within %ss: nothing paid", approval_timeout_seconds)
        return {"campaign": campaign, "approved": False, "paid": 0}
    decide(settings, payout, decision.approve, decision.approver, decision.note)
    if not decision.approve:
        logger.info("rejected by %s: nothing paid", decision.approver)
        return {"campaign": campaign, "approved": False, "paid": 0}
    entries = payout.payable(set(decision.include_flagged))
    results = [
        pay(settings, chosen, entries[i : i + PAY_BATCH]) for i in range(0, len(entries), PAY_BATCH)
    ]
    winners = publish_winners(settings, chosen, payout)
    notified = notify(settings, chosen, winners)
    return {
        "campaign": campaign,
        "approved": True,
        "approver": decision.approver,
        "paid": sum(r["paid"] for r in results),
        "over_budget": sum(r["over_budget"] for r in results),
        "winners": len(winners),
        "notified": notified,
    }


if __name__ == "__main__":
    import sys

    reward_payout(sys.argv[1])
