"""Reward payouts: plan, record the decision, pay in batches, publish, notify winners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from sqlalchemy import select

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.messaging.campaign import find_campaign
from yunying.messaging.outbox import counts, plan
from yunying.messaging.send import send_all
from yunying.rewards.campaign import RewardCampaign, load_reward_campaign
from yunying.rewards.ledger import (
    ensure_budget,
    http_rewards_provider,
    pay_batch,
    remaining_budget,
)
from yunying.rewards.plan import PayoutPlan, PlanEntry, compute_plan, mask
from yunying.rewards.publish import publish, record_decision, winners_page, write_commitment
from yunying.store.engine import session_scope
from yunying.store.models import RewardLedgerEntry


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


@task(name="plan-payout", task_run_name="plan-payout-{campaign.name}", **RETRY_TRANSIENT)
def plan_payout(settings: Settings, campaign: RewardCampaign) -> PayoutPlan:
    with session_scope(engine_for(settings.store_url)) as session:
        payout = compute_plan(session, campaign)
        ensure_budget(session, campaign)
        remaining = remaining_budget(session, campaign.name)
    commitment = write_commitment(rewards_folder(settings, campaign.name), payout)
    create_table_artifact(
        key=f"payout-plan-{campaign.name}",
        table=[
            {
                "rank": e.rank,
                "user": mask(e.user_id),
                "amount": str(e.amount),
                "flags": "; ".join(e.flags) or "-",
                "paid unless included": "no" if e.flags else "yes",
            }
            for e in payout.entries
        ],
        description=(
            f"{campaign.name}: {len(payout.entries)} winners of {payout.eligible} eligible; "
            f"{payout.total} to pay (flagged excluded) against {remaining} budget remaining"
            + (f"; seed commitment {payout.commitment}" if commitment else "")
        ),
    )
    return payout


@task(name="record-decision", **RETRY_TRANSIENT)
def decide(
    settings: Settings, payout: PayoutPlan, approved: bool, approver: str, note: str
) -> None:
    with session_scope(engine_for(settings.store_url)) as session:
        record_decision(session, payout, approved, approver, note)


@task(name="pay-batch", **RETRY_TRANSIENT)
def pay(settings: Settings, campaign: RewardCampaign, entries: list[PlanEntry]) -> dict[str, Any]:
    url = settings.providers.rewards_url
    provider = http_rewards_provider(url, settings.providers.timeout_seconds) if url else None
    result = pay_batch(engine_for(settings.store_url), campaign, entries, provider)
    get_run_logger().info(
        "paid %d (%s), already paid %d, over budget %d",
        result.paid,
        result.amount,
        result.already_paid,
        result.over_budget,
    )
    return {
        "paid": result.paid,
        "amount": str(result.amount),
        "over_budget": result.over_budget,
        "already_paid": result.already_paid,
    }


@task(name="publish-winners", **RETRY_TRANSIENT)
def publish_winners(settings: Settings, campaign: RewardCampaign, payout: PayoutPlan) -> list[str]:
    with session_scope(engine_for(settings.store_url)) as session:
        paid = set(
            session.scalars(
                select(RewardLedgerEntry.user_id).where(
                    RewardLedgerEntry.campaign == campaign.name, RewardLedgerEntry.status == "paid"
                )
            )
        )
        winners = [e for e in payout.entries if e.user_id in paid]
        page = winners_page(session, campaign, payout, winners)
    path = publish(
        rewards_folder(settings, campaign.name), campaign.name, page, settings.providers.webhook_url
    )
    create_markdown_artifact(
        key=f"winners-{campaign.name}",
        markdown=f"# {campaign.name} winners\n\n{len(winners)} paid; page at `{path}`.",
    )
    return [w.user_id for w in winners]


@task(name="notify-winners", **RETRY_TRANSIENT)
def notify(settings: Settings, campaign: RewardCampaign, winners: list[str]) -> dict[str, int]:
    """Through the outbox: one message per winner per reward campaign, ever."""
    template = find_campaign(settings.campaign_dir, "reward-won")
    notice = template.model_copy(update={"name": f"reward-won-{campaign.name}"})
    day = campaign.end.date()
    engine = engine_for(settings.store_url)
    with session_scope(engine) as session:
        plan(session, notice, day, only_users=winners)
    send_all(engine, settings, notice, day, "payout", settings.batch_size)
    with session_scope(engine) as session:
        return counts(session, notice.name, day)
