"""Publication (公示): the winners page with masked ids, the rules, and for lotteries the seed
whose commitment was published before the draw. Also the approval audit."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from yunying.http_client import request, with_retries
from yunying.messaging.render import TEMPLATES
from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.plan import PayoutPlan, PlanEntry, mask, public_id
from yunying.store.engine import utcnow
from yunying.store.models import RewardApproval, RewardDraw


def rule_text(campaign: RewardCampaign) -> str:
    rule = campaign.rule
    return {
        "min_actions": f"at least {rule.count} × {rule.event}",
        "streak": f"{rule.event} on {rule.days} consecutive days",
        "top_n": f"the top {rule.winners} by number of {rule.event}",
        "lottery": f"{rule.winners} drawn among those with at least {rule.count} × {rule.event}",
    }[rule.kind]


def winners_page(
    session: Session, campaign: RewardCampaign, plan: PayoutPlan, paid: list[PlanEntry]
) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES / "rewards"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )
    draw = session.get(RewardDraw, campaign.name)
    return env.get_template("winners.html").render(
        campaign=campaign,
        plan=plan,
        rule_text=rule_text(campaign),
        amounts=", ".join(str(a) for a in campaign.reward.amounts),
        seed=draw.seed if draw else None,
        winners=[
            {
                "rank": e.rank,
                "masked": mask(e.user_id),
                "public_id": public_id(campaign.name, e.user_id),
                "amount": e.amount,
            }
            for e in paid
        ],
    )


def publish(folder: Path, campaign: str, page: str, webhook_url: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "winners.html"
    path.write_text(page, encoding="utf-8")
    if webhook_url:
        with httpx.Client(timeout=10) as client:
            with_retries(
                lambda: request(
                    client,
                    "POST",
                    webhook_url,
                    json={"campaign": campaign, "html": page},
                    headers={"Idempotency-Key": f"winners:{campaign}"},
                )
            )
    return path


def write_commitment(folder: Path, plan: PayoutPlan) -> Path | None:
    """Publish the seed commitment before anything is drawn or paid."""
    if plan.commitment is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "commitment.json"
    path.write_text(
        json.dumps(
            {
                "campaign": plan.campaign,
                "sha256_of_seed": plan.commitment,
                "participants": plan.public_ids,
            },
            indent=1,
        )
    )
    return path


def record_decision(
    session: Session, plan: PayoutPlan, approved: bool, approver: str, note: str
) -> None:
    session.add(
        RewardApproval(
            campaign=plan.campaign,
            plan_hash=plan.digest(),
            approved=approved,
            approver=approver,
            note=note,
            decided_at=utcnow(),
        )
    )
