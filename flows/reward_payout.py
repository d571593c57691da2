"""Reward payout (奖励发放), triggered by hand: plan -> approval in the Prefect UI -> pay
exactly once within budget -> publish the winners (公示) -> notify them.

A campaign's approved plan is stored: a later run never plans or draws again, it pays what
that plan left unpaid (retrying failed payouts) or says the campaign is already paid. The run
ends in a named state — Paid, Partly paid, Payment failed, Already paid, Rejected, Refused,
Committed (a run left past its approval timeout fails: Prefect fails expired pauses) — with the
same headline as its `payout-outcome-…` artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from prefect.states import Completed
from pydantic import Field

from flows.alerts import ALERTS
from tasks.notify import tell_payout_waiting
from tasks.rewards import (
    announce,
    decide,
    left_to_pay,
    load,
    notify,
    pay,
    plan_payout,
    publish_winners,
    started_by,
)
from tasks.secrets import load_settings
from yunying.rewards.approval import Decision

PAY_BATCH = 500


class PayoutApproval(RunInput):
    """The form the approver fills in the Prefect UI. No initial value for the approver: a
    field given initial data loses its constraints, and the form would accept a blank."""

    approve: bool = Field(default=False, description="Pay the plan shown in the artifact")
    approver: str = Field(min_length=1, description="Who approves or rejects (required)")
    note: str = ""
    include_flagged: list[str] = Field(
        default_factory=list,
        description="Public ids (or user ids) flagged by fraud screens to pay anyway",
    )


def _finish(campaign: str, outcome: str, headline: str, **data: Any) -> State[Any]:
    get_run_logger().info("%s: %s", outcome, headline)
    announce(campaign, outcome, headline)
    return Completed(
        name=outcome, message=headline, data={"campaign": campaign, "outcome": outcome, **data}
    )


@flow(
    name="reward-payout",
    flow_run_name="reward-payout-{campaign}",
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def reward_payout(
    campaign: str,
    approval_timeout_seconds: int = 86_400,
    poll_interval_seconds: int = 10,
    requested_by: str = "",
) -> State[Any]:
    settings = load_settings()
    chosen = load(settings, campaign)
    requester = started_by(requested_by)
    prepared = plan_payout(settings, chosen)
    if prepared.plan is None:
        if chosen.rule.kind != "lottery":
            return _finish(
                campaign,
                "Window open",
                f"the window is open until {chosen.end.isoformat()}: nothing planned or paid;"
                " run the payout after it ends",
                approved=False,
                paid=0,
            )
        return _finish(
            campaign,
            "Committed",
            f"the window is open until {chosen.end.isoformat()}: {prepared.headline} published,"
            " nothing drawn or paid",
            approved=False,
            paid=0,
        )
    if not prepared.approved:
        tell_payout_waiting(settings, prepared.plan)
        try:
            answer = pause_flow_run(
                wait_for_input=PayoutApproval.with_initial_data(
                    description=f"Approve the payout of {campaign} (see the payout-plan artifact)"
                ),
                timeout=approval_timeout_seconds,
                poll_interval=poll_interval_seconds,
            )
        except FlowPauseTimeout:
            return _finish(
                campaign,
                "Timed out",
                f"no decision within {approval_timeout_seconds}s: nothing paid",
                approved=False,
                paid=0,
            )
        decision = Decision(answer.approve, answer.approver, answer.note, answer.include_flagged)
        verdict = decide(settings, chosen, prepared.plan, decision, requester)
        if verdict.refused:
            return _finish(
                campaign,
                "Refused",
                f"approval not accepted: {verdict.refused}; nothing paid",
                approved=False,
                paid=0,
            )
        if not verdict.accepted:
            return _finish(
                campaign,
                "Rejected",
                f"rejected by {decision.approver.strip()}: nothing paid",
                approved=False,
                paid=0,
            )
    elif prepared.to_pay == 0:
        return _finish(campaign, "Already paid", prepared.headline, approved=True, paid=0)
    entries = left_to_pay(settings, chosen)
    results = [
        pay(settings, chosen, entries[i : i + PAY_BATCH]) for i in range(0, len(entries), PAY_BATCH)
    ]
    where = publish_winners(settings, chosen)
    notified = notify(settings, chosen, where.paid_users)  # once each: "it is in your account"
    paid = sum(r["paid"] for r in results)
    over_budget = sum(r["over_budget"] for r in results)
    retried = len(where.unpaid)  # failed with attempts left
    failed_for_good = max(0, sum(r["failed"] for r in results) - retried)
    # Named so a run that paid less than its plan shows in the run list.
    outcome = (
        "Paid"
        if paid == len(entries)
        else "Partly paid"
        if paid
        else "Payment failed"
        if retried or failed_for_good
        else "Over budget"
    )
    said = [f"paid {paid} of {len(entries)} left to pay"]
    if over_budget:
        said.append(f"{over_budget} over budget")
    if retried:
        said.append(f"{retried} failed (their budget released, retried by the next run)")
    if failed_for_good:
        said.append(
            f"{failed_for_good} failed for good ({chosen.max_payout_attempts} attempts;"
            " budget released)"
        )
    total = where.paid + where.given_up + where.over_budget + len(where.unpaid)
    return _finish(
        campaign,
        outcome,
        "; ".join(said) + f"; {where.paid} of the plan's {total} winners paid in all",
        approved=True,
        paid=paid,
        failed=retried + failed_for_good,
        over_budget=over_budget,
        winners=where.paid,
        notified=notified,
    )


if __name__ == "__main__":
    import sys

    reward_payout(sys.argv[1])
