"""`yunying payouts show CAMPAIGN`: the ledger, the budget and who approved what."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.rewards.approval import approved_plan
from yunying.rewards.ledger import ledger
from yunying.rewards.plan import mask
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.models import RewardApproval, RewardBudget


def ledger_report(settings: Settings, campaign: str) -> str:
    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            budget = session.get(RewardBudget, campaign)
            rows = ledger(session, campaign)
            approvals = list(
                session.scalars(select(RewardApproval).where(RewardApproval.campaign == campaign))
            )
            if not (budget or rows or approvals):
                _check_known(settings, session, campaign)
            lines = [
                f"{campaign}: "
                + (
                    f"budget {budget.total}, reserved {budget.reserved}"
                    if budget
                    else "no payout yet"
                )
            ]
            # The approved plan's public ids tell apart users whose masks collide.
            approved = approved_plan(session, campaign)
            public = {e.user_id: e.public_id for e in approved.plan.entries} if approved else {}
            lines += [
                f"  {mask(r.user_id):10} {public.get(r.user_id) or '-':16} {r.reward:7}"
                f" {r.amount:>10} {r.status:12} {r.reason or ''}"
                for r in rows
            ]
            lines += [
                f"  {'approved' if a.approved else 'refused' if a.refusal else 'rejected'}"
                f" by {a.approver or '(nobody named)'}"
                f" at {a.decided_at:%Y-%m-%d %H:%M} UTC, plan {a.plan_hash[:12]}: {a.note}"
                + (f" (run started by {a.requested_by})" if a.requested_by else "")
                + (f" — {a.refusal}" if a.refusal else "")
                for a in approvals
            ]
    finally:
        engine.dispose()
    return "\n".join(lines)


def _check_known(settings: Settings, session: Session, campaign: str) -> None:
    """A name with neither a file nor a ledger is a typo, not a campaign without payouts."""
    files = {path.stem for path in settings.reward_dir.glob("*.toml")}
    paid = set(session.scalars(select(RewardBudget.campaign)))
    if campaign not in files | paid:
        known = ", ".join(sorted(files | paid)) or f"none (no files in {settings.reward_dir})"
        raise ConfigError(f"unknown reward campaign {campaign!r}; known: {known}")
