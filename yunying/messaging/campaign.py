"""Reactivation campaign files (TOML under `deployments/campaigns/`), validated up front.

A bad file stops the run before anything is sent, with an error naming the file and field.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from yunying.campaign_files import find_named, load_model_file

Channel = Literal["email", "sms", "push", "webhook", "wechat"]


class QuietHours(BaseModel):
    model_config = {"extra": "forbid"}

    start: dt.time = dt.time(22, 0)
    end: dt.time = dt.time(8, 0)

    def contains(self, moment: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class Campaign(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    segment: list[Literal["new", "active", "returned", "silent", "churned"]] = Field(min_length=1)
    channels: list[Channel] = Field(min_length=1)  # in priority order
    template: str = Field(pattern=r"^[a-z0-9_-]+$")
    holdout_percent: float = Field(default=10.0, ge=0, le=100)
    frequency_cap_days: int = Field(default=7, ge=0)
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    daily_max: int | None = Field(default=None, gt=0)
    # How long after planning a message deferred by quiet hours may still go out; past it,
    # the row is `expired` with the reason (a win-back a week late is worse than none).
    valid_hours: float = Field(default=24, gt=0, le=24 * 14)
    dry_run: bool = False
    # The category a recipient can opt out of on the preference page (win-back, rewards…).
    topic: str = Field(default="general", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    track_clicks: bool = False  # links become signed redirects that record the first click

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _false_means_none(cls, value: object) -> object:
        return None if value is False else value  # TOML has no null: `quiet_hours = false`

    @field_validator("channels")
    @classmethod
    def _no_repeats(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value


def load_campaign(path: Path) -> Campaign:
    return load_model_file(path, Campaign, "campaign")


def find_campaign(campaign_dir: Path, name: str) -> Campaign:
    return find_named(campaign_dir, name, Campaign, "campaign")
