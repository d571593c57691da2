"""Reward campaign files (TOML under `deployments/rewards/`), validated before anything is paid.

name = "checkin-nov"
start = 2026-11-01T00:00:00+08:00      # the window, inclusive start, exclusive end
end = 2026-11-08T00:00:00+08:00
budget = 5000                          # in the reward's unit (points, or yuan for cash)
per_user_cap = 100
[rule]                                 # exactly one kind:
kind = "min_actions" | "streak" | "top_n" | "lottery"
event = "checkin"                      # the action counted
count = 3                              # min_actions / lottery: at least this many actions
days = 5                               # streak: consecutive local days with the action
winners = 10                           # top_n / lottery: how many win
[reward]
kind = "points" | "coupon" | "cash"
amounts = [100, 50, 20]                # per rank (top_n); the last applies to the rest

approvers = ["lead@ops"]               # who may approve; empty: anyone who gives a name
require_second_person = true           # the approver may not be who started the run
max_payout_attempts = 3                # a failed payout is retried by later runs, then released
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from yunying.campaign_files import find_named


class Rule(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["min_actions", "streak", "top_n", "lottery"]
    event: str = Field(min_length=1)
    count: int = Field(default=1, gt=0)
    days: int | None = Field(default=None, gt=0)
    winners: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _needs(self) -> Rule:
        if self.kind == "streak" and self.days is None:
            raise ValueError("a streak rule needs 'days'")
        if self.kind in ("top_n", "lottery") and self.winners is None:
            raise ValueError(f"a {self.kind} rule needs 'winners'")
        return self


class Reward(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["points", "coupon", "cash"]
    amounts: list[Decimal] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive(self) -> Reward:
        if any(amount <= 0 for amount in self.amounts):
            raise ValueError("amounts must be positive")
        return self

    def amount_for(self, rank: int) -> Decimal:
        """The amount for a 1-based rank; ranks past the list get the last amount."""
        return self.amounts[min(rank, len(self.amounts)) - 1]


class RewardCampaign(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    start: dt.datetime
    end: dt.datetime
    budget: Decimal = Field(gt=0)
    per_user_cap: Decimal = Field(gt=0)
    rule: Rule
    reward: Reward
    blocklist: list[str] = Field(default_factory=list)
    # Fraud screen thresholds.
    max_accounts_per_device: int = Field(default=3, gt=0)
    burst_actions_per_hour: int = Field(default=20, gt=0)
    min_seconds_between_actions: float = Field(default=1.0, ge=0)
    # Approval: names are compared without case or surrounding blanks.
    approvers: list[str] = Field(default_factory=list)
    require_second_person: bool = False
    max_payout_attempts: int = Field(default=3, gt=0)

    @model_validator(mode="after")
    def _window(self) -> RewardCampaign:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset, e.g. 2026-11-01T00:00:00+08:00")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if any(not name.strip() for name in self.approvers):
            raise ValueError("approvers: a name is blank")
        return self

    @property
    def start_utc(self) -> dt.datetime:
        return self.start.astimezone(dt.UTC).replace(tzinfo=None)

    @property
    def end_utc(self) -> dt.datetime:
        return self.end.astimezone(dt.UTC).replace(tzinfo=None)


def load_reward_campaign(folder: Path, name: str) -> RewardCampaign:
    return find_named(folder, name, RewardCampaign, "reward campaign")
