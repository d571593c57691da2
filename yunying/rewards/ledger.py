"""The payout ledger: one row per (campaign, user, reward) under a unique key, with the budget
reserved atomically before anything is paid.

    reserved -> paid | failed        over_budget: the budget ran out, nothing reserved
    failed -> reserved               a later run retries it, up to max_payout_attempts

1. Reserve (one transaction per batch): insert the ledger row (a conflict means another run
   already has it) and add its amount to the budget's `reserved` only while
   `reserved + amount <= total` — one conditional UPDATE, so two payouts at once can never
   overrun the budget.
2. Pay (one transaction per batch): points go to the embedded points ledger under the same
   key in the same transaction that marks the row paid, so a crash pays nobody twice; an HTTP
   rewards provider gets the key as its idempotency key. A payout the provider refused
   releases its amount in the same transaction that marks it failed, so a failure never
   holds budget; a later run of the approved plan reserves it again and retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import httpx
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from yunying.errors import ProviderRejected
from yunying.http_client import request, with_retries
from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.plan import PlanEntry
from yunying.store.engine import session_scope, upsert_insert, utcnow
from yunying.store.models import PointsEntry, RewardBudget, RewardLedgerEntry


@dataclass
class PayoutResult:
    paid: int = 0
    already_paid: int = 0
    over_budget: int = 0
    failed: int = 0
    amount: Decimal = Decimal(0)
    released: Decimal = Decimal(0)  # reserved for payouts that failed, given back
    given_up: int = 0  # failed max_payout_attempts times (or no budget left to retry)


def ledger_key(campaign: str, entry: PlanEntry, reward: str) -> str:
    return f"{campaign}:{entry.user_id}:{reward}"


def ensure_budget(session: Session, campaign: RewardCampaign) -> None:
    statement = upsert_insert(session, RewardBudget).values(
        campaign=campaign.name, total=campaign.budget, reserved=Decimal(0)
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["campaign"]))


def remaining_budget(session: Session, campaign: str) -> Decimal:
    budget = session.get(RewardBudget, campaign)
    return Decimal(0) if budget is None else budget.total - budget.reserved


def _take_budget(session: Session, campaign: str, amount: Decimal) -> bool:
    granted = session.execute(
        update(RewardBudget)
        .where(
            RewardBudget.campaign == campaign,
            RewardBudget.reserved + amount <= RewardBudget.total,
        )
        .values(reserved=RewardBudget.reserved + amount)
    )
    return bool(granted.rowcount == 1)  # type: ignore[attr-defined]


def reserve(session: Session, campaign: RewardCampaign, entries: Iterable[PlanEntry]) -> list[str]:
    """Reserve budget for new entries; returns the keys now reserved: new, left by a crash,
    or failed before and retried (under their attempt limit, if the budget allows)."""
    reward = campaign.reward.kind
    keys = []
    for entry in entries:
        key = ledger_key(campaign.name, entry, reward)
        inserted = session.execute(
            upsert_insert(session, RewardLedgerEntry)
            .values(
                key=key,
                campaign=campaign.name,
                user_id=entry.user_id,
                reward=reward,
                amount=entry.amount,
                status="reserved",
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(RewardLedgerEntry.id)
        ).first()
        if inserted is None:
            row = session.execute(
                select(
                    RewardLedgerEntry.status, RewardLedgerEntry.attempts, RewardLedgerEntry.amount
                )
                .where(RewardLedgerEntry.key == key)
                .with_for_update()
            ).one()
            if row.status == "reserved":
                keys.append(key)
            elif row.status == "failed" and row.attempts < campaign.max_payout_attempts:
                # Its amount was released when it failed; another payout may have taken it.
                retried = _take_budget(session, campaign.name, row.amount)
                session.execute(
                    update(RewardLedgerEntry)
                    .where(RewardLedgerEntry.key == key, RewardLedgerEntry.status == "failed")
                    .values(
                        status="reserved" if retried else "over_budget",
                        attempts=RewardLedgerEntry.attempts + int(retried),
                        reason=None if retried else "the budget was used up before a retry",
                    )
                )
                if retried:
                    keys.append(key)
            continue
        if _take_budget(session, campaign.name, entry.amount):
            keys.append(key)
        else:
            left = session.scalar(
                select(RewardBudget.total - RewardBudget.reserved).where(
                    RewardBudget.campaign == campaign.name
                )
            )
            session.execute(
                update(RewardLedgerEntry)
                .where(RewardLedgerEntry.key == key)
                .values(
                    status="over_budget",
                    reason=f"{entry.amount:.2f} did not fit the {left:.2f} left of the budget",
                )
            )
    return keys


PayFunction = Callable[[list[RewardLedgerEntry]], dict[str, str | None]]


def pay_points(session: Session, rows: list[RewardLedgerEntry]) -> None:
    """The embedded points ledger: same key, same transaction as the status change."""
    if not rows:
        return
    statement = upsert_insert(session, PointsEntry).values(
        [
            {
                "key": r.key,
                "user_id": r.user_id,
                "campaign": r.campaign,
                "points": r.amount,
                "created_at": utcnow(),
            }
            for r in rows
        ]
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["key"]))


def pay_batch(
    engine: Engine,
    campaign: RewardCampaign,
    entries: list[PlanEntry],
    provider: PayFunction | None = None,
) -> PayoutResult:
    """Reserve then pay one batch. `provider` pays outside the store (HTTP), returning an
    error message per key, or None when paid; without it rewards go to the points ledger."""
    result = PayoutResult()
    with session_scope(engine) as session:
        ensure_budget(session, campaign)
    with session_scope(engine) as session:
        keys = reserve(session, campaign, entries)
        statuses = list(
            session.scalars(
                select(RewardLedgerEntry.status).where(
                    RewardLedgerEntry.key.in_(
                        [ledger_key(campaign.name, e, campaign.reward.kind) for e in entries]
                    )
                )
            )
        )
    # Before this batch pays: "paid" was paid by an earlier run, "failed" is not retried.
    result.over_budget = sum(1 for status in statuses if status == "over_budget")
    result.already_paid = sum(1 for status in statuses if status == "paid")
    result.given_up = sum(1 for status in statuses if status == "failed")
    with session_scope(engine) as session:
        rows = list(
            session.scalars(
                select(RewardLedgerEntry)
                .where(RewardLedgerEntry.key.in_(keys), RewardLedgerEntry.status == "reserved")
                .with_for_update()
            )
        )
        errors = provider(rows) if provider else {}
        if provider is None:
            pay_points(session, rows)
        now = utcnow()
        for row in rows:
            error = errors.get(row.key)
            row.status = "failed" if error else "paid"
            row.reason = error
            row.paid_at = None if error else now
            if error:
                result.failed += 1
                result.released += row.amount
            else:
                result.paid += 1
                result.amount += row.amount
        if result.released:
            session.execute(
                update(RewardBudget)
                .where(RewardBudget.campaign == campaign.name)
                .values(reserved=RewardBudget.reserved - result.released)
            )
    return result


def http_rewards_provider(url: str, timeout: float) -> PayFunction:
    """Pay through a rewards provider's HTTP API, the ledger key as the idempotency key.
    A permanent refusal fails that payout; a transient failure raises, so the batch stays
    reserved and the task's retry pays it under the same keys."""

    def pay(rows: list[RewardLedgerEntry]) -> dict[str, str | None]:
        errors: dict[str, str | None] = {}
        with httpx.Client(timeout=timeout) as client:
            for row in rows:
                body = {
                    "user_id": row.user_id,
                    "reward": row.reward,
                    "amount": str(row.amount),
                    "campaign": row.campaign,
                }
                try:
                    with_retries(
                        partial(
                            request,
                            client,
                            "POST",
                            url,
                            json=body,
                            headers={"Idempotency-Key": row.key},
                        )
                    )
                except ProviderRejected as exc:
                    errors[row.key] = str(exc)
        return errors

    return pay


def paid_users(session: Session, campaign: RewardCampaign) -> set[str]:
    """Who this campaign has paid already, by any run."""
    return set(
        session.scalars(
            select(RewardLedgerEntry.user_id).where(
                RewardLedgerEntry.campaign == campaign.name,
                RewardLedgerEntry.reward == campaign.reward.kind,
                RewardLedgerEntry.status == "paid",
            )
        )
    )


def ledger(session: Session, campaign: str) -> list[RewardLedgerEntry]:
    return list(
        session.scalars(
            select(RewardLedgerEntry)
            .where(RewardLedgerEntry.campaign == campaign)
            .order_by(RewardLedgerEntry.id)
        )
    )
