"""Approval of a payout plan: who may approve, the audit of every decision, and the approved
plan, stored once — the only thing any later run may pay.

Names given in Prefect's Resume form are declarations (Prefect's open-source server has no
per-user login), so the flow checks them here rather than trusting the form: an approver is
required, must be on the campaign's `approvers` list when it has one, and must not be the
person who started the run when the campaign asks for two people.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.plan import PayoutPlan, PlanEntry
from yunying.store.engine import upsert_insert
from yunying.store.models import RewardApproval, RewardLedgerEntry, RewardPlan


@dataclass(frozen=True)
class Decision:
    """What the approver filled in."""

    approve: bool
    approver: str
    note: str = ""
    include_flagged: list[str] = field(default_factory=list)


@dataclass
class ApprovedPlan:
    plan: PayoutPlan
    included: set[str]
    approver: str
    approved_at: dt.datetime
    requested_by: str | None

    def payable(self) -> list[PlanEntry]:
        return self.plan.payable(self.included)


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def refusal(
    campaign: RewardCampaign, decision: Decision, requested_by: str | None, plan: PayoutPlan
) -> str | None:
    """Why this approval cannot be accepted (nothing is paid), or None when it can."""
    name = decision.approver.strip()
    if not name:
        return "no approver was named; the approver field is required"
    flagged = [e for e in plan.entries if e.flags]
    known = {e.public_id for e in flagged} | {e.user_id for e in flagged}
    unknown = [given for given in decision.include_flagged if given not in known]
    if unknown:  # a mistyped id would leave the winner meant unpaid, and say nothing
        listed = ", ".join(e.public_id for e in flagged) or "none"
        return (
            f"include_flagged: {', '.join(map(repr, unknown))} is no flagged winner of this plan"
            f" (its flagged winners' public ids: {listed})"
        )
    if campaign.approvers and not any(_same_person(name, a) for a in campaign.approvers):
        return (
            f"{name!r} may not approve {campaign.name}: the campaign's approvers are"
            f" {', '.join(campaign.approvers)}"
        )
    if campaign.require_second_person:
        if not requested_by:
            return (
                f"{campaign.name} needs a second person, but who started this run is unknown:"
                " start it with the requested_by parameter (Prefect's open-source server does"
                " not record who starts a run)"
            )
        if _same_person(name, requested_by):
            return (
                f"{name!r} started this run and may not also approve it"
                " (require_second_person = true)"
            )
    return None


def record_decision(
    session: Session,
    plan: PayoutPlan,
    decision: Decision,
    requested_by: str | None,
    refused: str | None,
    now: dt.datetime,
) -> None:
    """The audit: every decision, accepted or refused, with the hash of the plan shown."""
    session.add(
        RewardApproval(
            campaign=plan.campaign,
            plan_hash=plan.digest(),
            approved=decision.approve and refused is None,
            approver=decision.approver.strip(),
            note=decision.note
            + (
                f" [included flagged: {', '.join(decision.include_flagged)}]"
                if decision.include_flagged
                else ""
            ),
            decided_at=now,
            requested_by=requested_by,
            refusal=refused,
        )
    )


def store_approved_plan(
    session: Session,
    plan: PayoutPlan,
    decision: Decision,
    requested_by: str | None,
    flow_run_id: str | None,
    now: dt.datetime,
) -> ApprovedPlan:
    """Store the plan as approved; if another run stored one first, that one stands."""
    content = {"plan": plan.as_json(), "included": sorted(decision.include_flagged)}
    session.execute(
        upsert_insert(session, RewardPlan)
        .values(
            campaign=plan.campaign,
            plan_hash=plan.digest(),
            content=json.dumps(content),
            approver=decision.approver.strip(),
            requested_by=requested_by,
            flow_run_id=flow_run_id,
            approved_at=now,
        )
        .on_conflict_do_nothing(index_elements=["campaign"])
    )
    stored = approved_plan(session, plan.campaign)
    if stored is None:  # pragma: no cover - just inserted or kept
        raise RuntimeError(f"no approved plan for {plan.campaign}")
    return stored


def approved_plan(session: Session, campaign: str) -> ApprovedPlan | None:
    row = session.get(RewardPlan, campaign, populate_existing=True)
    if row is None:
        return None
    content = json.loads(row.content)
    return ApprovedPlan(
        PayoutPlan.from_json(content["plan"]),
        set(content["included"]),
        row.approver,
        row.approved_at,
        row.requested_by,
    )


@dataclass
class Standing:
    """Where an approved plan stands in the ledger."""

    paid_users: list[str] = field(default_factory=list)  # in the plan's order
    unpaid: list[PlanEntry] = field(default_factory=list)  # a run may (re)try these
    given_up: int = 0  # failed max_payout_attempts times; their budget is released
    over_budget: int = 0
    excluded: int = 0  # flagged and not included by the approver

    @property
    def paid(self) -> int:
        return len(self.paid_users)


def standing(session: Session, campaign: RewardCampaign, approved: ApprovedPlan) -> Standing:
    rows = {
        user_id: (status, attempts)
        for user_id, status, attempts in session.execute(
            select(
                RewardLedgerEntry.user_id, RewardLedgerEntry.status, RewardLedgerEntry.attempts
            ).where(
                RewardLedgerEntry.campaign == campaign.name,
                RewardLedgerEntry.reward == campaign.reward.kind,
            )
        )
    }
    payable = approved.payable()
    result = Standing(excluded=len(approved.plan.entries) - len(payable))
    for entry in payable:
        status, attempts = rows.get(entry.user_id, (None, 0))
        if status == "paid":
            result.paid_users.append(entry.user_id)
        elif status == "over_budget":
            result.over_budget += 1
        elif status == "failed" and attempts >= campaign.max_payout_attempts:
            result.given_up += 1
        else:
            result.unpaid.append(entry)
    return result
