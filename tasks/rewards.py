"""Reward payouts: plan (or find the approved plan), record the decision, pay in batches,
publish, notify winners, and say how the run ended."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.messaging.campaign import find_campaign
from yunying.messaging.outbox import counts, plan
from yunying.messaging.send import send_all
from yunying.rewards.approval import (
    Decision,
    Standing,
    approved_plan,
    record_decision,
    refusal,
    standing,
    store_approved_plan,
)
from yunying.rewards.campaign import RewardCampaign, load_reward_campaign
from yunying.rewards.ledger import (
    ensure_budget,
    http_rewards_provider,
    paid_users,
    pay_batch,
    remaining_budget,
)
from yunying.rewards.plan import PayoutPlan, PlanEntry, compute_plan, mask
from yunying.rewards.publish import (
    commit,
    post_to_webhook,
    publications,
    publish_results,
    write_files,
)
from yunying.store.engine import session_scope, utcnow


def rewards_folder(settings: Settings, campaign: str) -> Path:
    return settings.home / "rewards" / campaign


@task(name="load-reward-campaign", **RETRY_TRANSIENT)
def load(settings: Settings, name: str) -> RewardCampaign:
    campaign = load_reward_campaign(settings.reward_dir, name)
    if campaign.reward.kind != "points" and not settings.providers.rewards_url:
        raise ConfigError(
            f"reward campaign {name}: {campaign.reward.kind} rewards need a rewards provider;"
            " set providers.rewards_url (YUNYING_PROVIDERS__REWARDS_URL)"
        )
    return campaign


@task(name="who-started-the-run", **RETRY_TRANSIENT)
def started_by(declared: str) -> str | None:
    """Who started this run: Prefect's record where it keeps one (`created_by`: a Cloud user
    or an automation), else the name given in the requested_by parameter, else unknown."""
    run_id = flow_run.get_id()
    if run_id is not None:
        with get_client(sync_client=True) as client:
            creator = client.read_flow_run(UUID(run_id)).created_by
        if creator is not None and creator.display_value:
            return f"{creator.display_value} ({creator.type.lower() if creator.type else 'user'})"
    return declared.strip() or None


@dataclass
class Prepared:
    """What a run found: a new plan to approve, an approved plan, or an open window."""

    plan: PayoutPlan | None
    approved: bool = False
    to_pay: int = 0
    headline: str = ""


@task(name="plan-payout", task_run_name="plan-payout-{campaign.name}", **RETRY_TRANSIENT)
def plan_payout(settings: Settings, campaign: RewardCampaign) -> Prepared:
    """An approved plan is never recomputed: a re-run only pays what it left unpaid. A lottery
    whose window is open gets its seed committed instead of a draw."""
    now = utcnow()
    with session_scope(engine_for(settings.store_url)) as session:
        ensure_budget(session, campaign)
        remaining = remaining_budget(session, campaign.name)
        approved = approved_plan(session, campaign.name)
        if approved is not None:
            where = standing(session, campaign, approved)
            prepared = Prepared(approved.plan, True, len(where.unpaid))
        elif campaign.rule.kind == "lottery" and now < campaign.end_utc:
            record = commit(session, campaign, now)
            prepared = Prepared(None, headline=f"seed commitment {record.commitment}")
        elif now < campaign.end_utc:  # leaders may still change; an approved plan is final
            return Prepared(None)
        else:
            prepared = Prepared(compute_plan(session, campaign))
            paid_before = paid_users(session, campaign)
        published = publications(session, campaign.name)
    write_files(rewards_folder(settings, campaign.name), published)
    if prepared.plan is None:
        commitment = [row for row in published if row.kind == "commitment"]
        if settings.providers.webhook_url:  # keyed per version: posting it again is harmless
            post_to_webhook(settings.providers.webhook_url, commitment[0])
        return prepared
    payout = prepared.plan
    if approved is not None:
        settled = (
            f"{where.paid} paid, {where.given_up} failed {campaign.max_payout_attempts} times"
            f" (released), {where.over_budget} over budget, {where.excluded} excluded"
        )
        prepared.headline = (
            f"ALREADY PAID: the plan approved by {approved.approver} on"
            f" {approved.approved_at:%Y-%m-%d %H:%M} UTC is settled ({settled}); nothing to pay"
            if not where.unpaid
            else f"APPROVED EARLIER by {approved.approver}: {len(where.unpaid)} entries of that"
            f" plan left unpaid are paid now ({settled}); nothing is drawn again"
        )
    else:
        # A ledger from before plans were stored may have paid some of these already.
        new = [e for e in payout.payable() if e.user_id not in paid_before]
        due = sum((e.amount for e in new), Decimal(0))
        prepared.headline = (
            f"TO APPROVE: {len(payout.entries)} winners of {payout.eligible} eligible;"
            f" {due} {campaign.reward.kind} to pay to {len(new)} (flagged excluded"
            + (f", {len(paid_before)} paid already" if paid_before else "")
            + f") against {remaining} remaining"
            + (f"; seed commitment {payout.commitment}" if payout.commitment else "")
            + (
                f". OVER BUDGET: {due} to pay, {remaining} remaining: in rank order each winner"
                " takes what fits, and those it does not fit are not paid"
                if due > remaining
                else ""
            )
        )
    create_table_artifact(
        key=f"payout-plan-{campaign.name}",
        table=[
            {
                "rank": e.rank,
                "user": mask(e.user_id),
                "public id": e.public_id,  # tells apart users whose masks collide
                "amount": str(e.amount),
                "flags": "; ".join(e.flags) or "-",
                "paid if approved": "only if included" if e.flags else "yes",
            }
            for e in payout.entries
        ],
        description=f"{campaign.name}: {prepared.headline}",
    )
    return prepared


@dataclass
class Verdict:
    accepted: bool  # an approval that stands: the stored plan may be paid
    refused: str | None = None


@task(name="record-decision", **RETRY_TRANSIENT)
def decide(
    settings: Settings,
    campaign: RewardCampaign,
    payout: PayoutPlan,
    decision: Decision,
    requested_by: str | None,
) -> Verdict:
    """Check the approval in the flow (the form's checks can be bypassed), record it, and
    store the plan once approved."""
    refused = refusal(campaign, decision, requested_by, payout) if decision.approve else None
    now = utcnow()
    with session_scope(engine_for(settings.store_url)) as session:
        record_decision(session, payout, decision, requested_by, refused, now)
        if not decision.approve or refused:
            return Verdict(False, refused)
        stored = store_approved_plan(
            session, payout, decision, requested_by, flow_run.get_id(), now
        )
    if stored.plan.digest() != payout.digest():
        return Verdict(
            False,
            f"another run's plan was approved first, by {stored.approver}; only that plan"
            " is paid (run the payout again to pay what it left unpaid)",
        )
    return Verdict(True)


@task(name="payouts-left", **RETRY_TRANSIENT)
def left_to_pay(settings: Settings, campaign: RewardCampaign) -> list[PlanEntry]:
    """The approved plan's entries not paid yet: new, left by a crash, or failed and retried."""
    with session_scope(engine_for(settings.store_url)) as session:
        approved = approved_plan(session, campaign.name)
        return [] if approved is None else standing(session, campaign, approved).unpaid


@task(name="pay-batch", **RETRY_TRANSIENT)
def pay(settings: Settings, campaign: RewardCampaign, entries: list[PlanEntry]) -> dict[str, Any]:
    url = settings.providers.rewards_url
    provider = http_rewards_provider(url, settings.providers.timeout_seconds) if url else None
    result = pay_batch(engine_for(settings.store_url), campaign, entries, provider)
    get_run_logger().info(
        "paid %d (%s), already paid %d, over budget %d, failed %d (%s released)",
        result.paid,
        result.amount,
        result.already_paid,
        result.over_budget,
        result.failed,
        result.released,
    )
    return {
        "paid": result.paid,
        "amount": str(result.amount),
        "over_budget": result.over_budget,
        "already_paid": result.already_paid,
        "failed": result.failed,
    }


@task(name="publish-winners", **RETRY_TRANSIENT)
def publish_winners(settings: Settings, campaign: RewardCampaign) -> Standing:
    """Publish what changed as new versions (the store, then the files and the webhook);
    returns where the approved plan stands."""
    with session_scope(engine_for(settings.store_url)) as session:
        approved = approved_plan(session, campaign.name)
        if approved is None:
            return Standing()
        made = publish_results(session, campaign, approved, utcnow())
        published = publications(session, campaign.name)
        where = standing(session, campaign, approved)
    folder = rewards_folder(settings, campaign.name)
    write_files(folder, published)
    if settings.providers.webhook_url:
        for row in made:
            post_to_webhook(settings.providers.webhook_url, row)
    versions = ", ".join(f"{row.kind} v{row.version}" for row in made) or "nothing new"
    create_markdown_artifact(
        key=f"winners-{campaign.name}",
        markdown=f"# {campaign.name} winners\n\nPublished {versions}; pages under `{folder}`.",
    )
    return where


@task(name="notify-winners", **RETRY_TRANSIENT)
def notify(settings: Settings, campaign: RewardCampaign, winners: list[str]) -> dict[str, int]:
    """Through the outbox: one message per paid winner per reward campaign, ever (it says
    the reward is in their account)."""
    template = find_campaign(settings.campaign_dir, "reward-won")
    notice = template.model_copy(update={"name": f"reward-won-{campaign.name}"})
    day = campaign.end.date()
    engine = engine_for(settings.store_url)
    with session_scope(engine) as session:
        plan(session, notice, day, only_users=winners)
    send_all(engine, settings, notice, day, "payout", settings.batch_size)
    with session_scope(engine) as session:
        return counts(session, notice.name, day)


def announce(campaign: str, outcome: str, headline: str) -> None:
    """The run's headline as an artifact: paid, already paid, rejected, refused, timed out."""
    create_markdown_artifact(
        key=f"payout-outcome-{campaign}",
        markdown=f"# {outcome}: {campaign}\n\n{headline}",
        description=f"{outcome}: {headline}",
    )
