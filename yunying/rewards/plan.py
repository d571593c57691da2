"""Compute a payout plan: who wins under the campaign's rule, how much, and which fraud
screens flag them. Counting is set-based SQL; streaks and screens read only the candidates'
actions inside the window."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.commitment import campaign_seed, committed_seed, draw, public_id, salt_of
from yunying.store.engine import utcnow
from yunying.store.models import Event, User


@dataclass
class PlanEntry:
    user_id: str
    rank: int
    amount: Decimal
    flags: list[str] = field(default_factory=list)
    public_id: str = ""  # salted per campaign: tells winners apart where masks collide


@dataclass
class PayoutPlan:
    campaign: str
    entries: list[PlanEntry]
    eligible: int
    commitment: str | None = None  # lotteries: SHA-256 of the seed, published before the draw
    public_ids: list[str] = field(default_factory=list)  # lotteries: who took part

    @property
    def total(self) -> Decimal:
        return sum((e.amount for e in self.entries if not e.flags), Decimal(0))

    def payable(self, include_flagged: set[str] = frozenset()) -> list[PlanEntry]:  # type: ignore[assignment]
        """Unflagged entries, and flagged ones the approver named (user id or public id)."""
        return [
            e
            for e in self.entries
            if not e.flags or e.user_id in include_flagged or e.public_id in include_flagged
        ]

    def digest(self) -> str:
        """A hash of exactly what the approver saw."""
        rows = [[e.user_id, e.rank, str(e.amount), sorted(e.flags)] for e in self.entries]
        return hashlib.sha256(json.dumps([self.campaign, rows]).encode()).hexdigest()

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        for entry in data["entries"]:
            entry["amount"] = str(entry["amount"])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PayoutPlan:
        """The plan as stored by `as_json` (the approved plan)."""
        entries = [
            PlanEntry(
                e["user_id"], int(e["rank"]), Decimal(e["amount"]), list(e["flags"]), e["public_id"]
            )
            for e in data["entries"]
        ]
        return cls(
            data["campaign"],
            entries,
            int(data["eligible"]),
            data["commitment"],
            list(data["public_ids"]),
        )


def mask(user_id: str) -> str:
    """Shown in artifacts and the winners page: enough to recognise, not to identify."""
    if len(user_id) <= 4:
        return user_id[0] + "***"
    return f"{user_id[:2]}***{user_id[-2:]}"


def action_counts(session: Session, campaign: RewardCampaign) -> dict[str, int]:
    rows = session.execute(
        select(Event.user_id, func.count())
        .where(
            Event.name == campaign.rule.event,
            Event.occurred_at >= campaign.start_utc,
            Event.occurred_at < campaign.end_utc,
        )
        .group_by(Event.user_id)
        .having(func.count() >= campaign.rule.count)
    )
    return {user_id: int(count) for user_id, count in rows}


def longest_streaks(session: Session, campaign: RewardCampaign) -> dict[str, int]:
    """The longest run of consecutive local days with the action, per user."""
    rows = session.execute(
        select(Event.user_id, Event.day)
        .where(
            Event.name == campaign.rule.event,
            Event.occurred_at >= campaign.start_utc,
            Event.occurred_at < campaign.end_utc,
        )
        .distinct()
        .order_by(Event.user_id, Event.day)
    )
    best: dict[str, int] = {}
    previous: tuple[str, dt.date] | None = None
    run = 0
    for user_id, day in rows:
        same_run = (
            previous is not None
            and previous[0] == user_id
            and day - previous[1] == dt.timedelta(days=1)
        )
        run = run + 1 if same_run else 1
        best[user_id] = max(best.get(user_id, 0), run)
        previous = (user_id, day)
    return best


def compute_plan(session: Session, campaign: RewardCampaign) -> PayoutPlan:
    """Who wins now. A lottery draws only with a seed committed before its window closed
    (DrawRefused otherwise); other rules get a seed at their first plan, for the salt."""
    rule = campaign.rule
    commitment = None
    if rule.kind == "lottery":
        record = committed_seed(session, campaign)
        commitment = record.commitment
    else:
        record = campaign_seed(session, campaign.name, utcnow())
    salt = salt_of(record.seed)
    if rule.kind == "streak":
        streaks = longest_streaks(session, campaign)
        eligible = sorted(u for u, days in streaks.items() if days >= (rule.days or 0))
        ranked = eligible
    else:
        counts = action_counts(session, campaign)
        eligible = sorted(counts)
        if rule.kind == "top_n":
            ranked = sorted(eligible, key=lambda u: (-counts[u], u))[: rule.winners]
        elif rule.kind == "lottery":
            by_public = {public_id(salt, u): u for u in eligible}
            ranked = [by_public[p] for p in draw(list(by_public), record.seed, rule.winners or 0)]
        else:
            ranked = eligible
    ranked_amounts = rule.kind in ("top_n", "lottery")  # others pay everyone the first amount
    entries = [
        PlanEntry(
            user_id,
            rank,
            min(campaign.reward.amount_for(rank if ranked_amounts else 1), campaign.per_user_cap),
            public_id=public_id(salt, user_id),
        )
        for rank, user_id in enumerate(ranked, start=1)
    ]
    flag_entries(session, campaign, entries)
    public_ids = sorted(public_id(salt, u) for u in eligible) if commitment else []
    return PayoutPlan(campaign.name, entries, len(eligible), commitment, public_ids)


def flag_entries(session: Session, campaign: RewardCampaign, entries: list[PlanEntry]) -> None:
    """Fraud screens (刷单): each adds a reason to the winners it flags."""
    if not entries:
        return
    ids = [e.user_id for e in entries]
    by_id = {e.user_id: e for e in entries}
    for user_id in set(ids) & set(campaign.blocklist):
        by_id[user_id].flags.append("blocklisted")

    users = {u.user_id: u for u in session.scalars(select(User).where(User.user_id.in_(ids)))}
    for column, label in ((User.device_hash, "device"), (User.ip_hash, "IP")):
        shared: dict[str | None, int] = {
            value: count
            for value, count in session.execute(
                select(column, func.count())
                .where(
                    column.in_(
                        [getattr(u, column.key) for u in users.values() if getattr(u, column.key)]
                    )
                )
                .group_by(column)
                .having(func.count() > campaign.max_accounts_per_device)
            )
        }
        for user in users.values():
            value = getattr(user, column.key)
            if value in shared:
                by_id[user.user_id].flags.append(f"{shared[value]} accounts share one {label}")

    for user in users.values():
        referrer = user.referred_by
        if referrer is None:
            continue
        other = users.get(referrer) or session.get(User, referrer)
        if referrer == user.user_id:
            by_id[user.user_id].flags.append("referred themselves")
        elif other is not None and other.referred_by == user.user_id:
            by_id[user.user_id].flags.append(f"referral loop with {mask(referrer)}")
        elif other is not None and other.device_hash and other.device_hash == user.device_hash:
            by_id[user.user_id].flags.append("referred by an account on the same device")

    moments: dict[str, list[dt.datetime]] = defaultdict(list)
    for user_id, moment in session.execute(
        select(Event.user_id, Event.occurred_at)
        .where(
            Event.user_id.in_(ids),
            Event.name == campaign.rule.event,
            Event.occurred_at >= campaign.start_utc,
            Event.occurred_at < campaign.end_utc,
        )
        .order_by(Event.user_id, Event.occurred_at)
    ):
        moments[user_id].append(moment)
    hour = dt.timedelta(hours=1)
    for user_id, times in moments.items():
        gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
        if sum(gap < campaign.min_seconds_between_actions for gap in gaps) >= 3:
            by_id[user_id].flags.append("actions faster than a person could make them")
        account = users.get(user_id)
        new_account = account is not None and account.signup_at >= campaign.start_utc
        if new_account and busiest_hour(times, hour) >= campaign.burst_actions_per_hour:
            by_id[user_id].flags.append("new account with a burst of actions")


def busiest_hour(times: list[dt.datetime], window: dt.timedelta) -> int:
    """The most actions inside any window of that length (times sorted)."""
    best, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best
