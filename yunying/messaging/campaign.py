"""Reactivation campaign files (TOML under `deployments/campaigns/`), validated up front.

A bad file stops the run before anything is sent, with an error naming the file and field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from yunying.campaign_files import find_named, load_model_file
from yunying.errors import ConfigError
from yunying.segments.definition import NAME, Segment, SegmentLibrary, parse_condition

Channel = Literal["email", "sms", "push", "webhook", "wechat"]
MAX_WITHIN_DAYS = 90  # the longest objective window a campaign may measure


class QuietHours(BaseModel):
    model_config = {"extra": "forbid"}

    start: dt.time = dt.time(22, 0)
    end: dt.time = dt.time(8, 0)

    def contains(self, moment: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class Variant(BaseModel):
    """One message of a campaign; users are split by weight, deterministically (variants.py).
    `stopped = true` sends its share to the other variants; nobody else moves."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    template: str = Field(pattern=r"^[a-z0-9_-]+$")
    weight: int = Field(default=1, ge=1, le=10_000)
    stopped: bool = False
    # What the message promises each user it brings back (a gift, a coupon): the review's cost.
    cost_per_conversion: Decimal = Field(default=Decimal(0), ge=0)


class Objective(BaseModel):
    """What counts as converted, within `within_days` local days after the send date."""

    model_config = {"extra": "forbid"}

    kind: Literal["activity", "order", "event"] = "activity"
    event: str | None = None  # for kind = "event"
    within_days: int = Field(default=7, ge=1, le=MAX_WITHIN_DAYS)

    @model_validator(mode="after")
    def _event_named(self) -> Objective:
        if (self.kind == "event") != (self.event is not None):
            raise ValueError('name the event (event = "...") exactly when kind = "event"')
        return self


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
    # The strategy layer (README "Segments and campaigns"): who, when, in which order, what
    # for, with which messages, at what cost.
    audience: str | dict[str, Any] | None = None  # a segment file's name or an inline condition
    starts: dt.date | None = None
    ends: dt.date | None = None  # inclusive
    priority: int = Field(default=100, ge=0)  # lower goes first in the nightly
    objective: Objective = Field(default_factory=Objective)
    target_uplift_points: float | None = None  # the uplift aimed at, in percentage points
    variants: list[Variant] = Field(default_factory=list)
    message_cost: dict[Channel, Decimal] = Field(default_factory=dict)  # per message sent
    cost_per_conversion: Decimal = Field(default=Decimal(0), ge=0)  # without variants
    cross_campaign_cap: bool = True  # no message if another campaign has the user tonight
    nightly: bool = False  # sent by the nightly's campaigns step (flows/campaigns.py)

    @field_validator("audience")
    @classmethod
    def _audience_parses(cls, value: object) -> object:
        if isinstance(value, dict):
            try:
                parse_condition(value, "audience")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        elif isinstance(value, str) and not NAME.match(value):
            raise ValueError("must name a segment file (lowercase, digits, - and _)")
        return value

    @field_validator("variants")
    @classmethod
    def _variants_usable(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError("a variant name is used twice")
        if value and all(v.stopped for v in value):
            raise ValueError("every variant is stopped: keep one, or stop the campaign (ends)")
        return value

    @field_validator("ends")
    @classmethod
    def _ends_after_start(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        starts = info.data.get("starts")
        if value is not None and starts is not None and value < starts:
            raise ValueError(f"{value} is before starts {starts}")
        return value

    def active_on(self, day: dt.date) -> bool:
        return (self.starts is None or self.starts <= day) and (
            self.ends is None or day <= self.ends
        )

    def templates(self) -> list[str]:
        """Every template a send of this campaign may use (for preflight)."""
        return sorted({v.template for v in self.variants if not v.stopped} or {self.template})

    def template_for(self, variant: str | None) -> str:
        for each in self.variants:
            if each.name == variant:
                return each.template
        return self.template

    def audience_segment(self, library: SegmentLibrary) -> Segment | None:
        if self.audience is None:
            return None
        if isinstance(self.audience, str):
            return library.get(self.audience)
        where = parse_condition(self.audience, "audience")
        return Segment(f"{self.name}-audience", "", where, library.folder / "(inline)")

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


def nightly_campaigns(
    campaign_dir: Path, day: dt.date, names: list[str] | None = None
) -> list[Campaign]:
    """The campaigns the nightly sends on `day` (or the active ones of `names`), in priority
    order, then by name. Every file is validated: one bad file stops the night before
    anything is sent."""
    stems = names if names is not None else [p.stem for p in sorted(campaign_dir.glob("*.toml"))]
    loaded = [find_campaign(campaign_dir, stem) for stem in stems]
    chosen = [c for c in loaded if (names is not None or c.nightly) and c.active_on(day)]
    return sorted(chosen, key=lambda c: (c.priority, c.name))


def find_campaign(campaign_dir: Path, name: str) -> Campaign:
    return find_named(campaign_dir, name, Campaign, "campaign")
