"""A campaign's dry run (`dry_run = true`): what a run would send, with nothing written.

The plan is the real one (`outbox.stage_plan`: the same audience, caps, holdout and variant
draw) staged in a temporary table, summarised, and dropped. No outbox row is written, so no
frequency cap, cross-campaign cap, review, report or later real run can see a dry run.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from yunying.messaging.campaign import Campaign
from yunying.messaging.outbox import stage_plan
from yunying.messaging.send import quiet_until
from yunying.messaging.status import OutboxStatus
from yunying.rewards.plan import mask
from yunying.store.engine import utcnow
from yunying.store.models import OutboxMessage, User

EXAMPLES = 5


@dataclass(frozen=True)
class DryRun:
    campaign: str
    business_date: dt.date
    # (variant or "-", channel) -> messages that would be sent
    would_send: Counter[tuple[str, str]] = field(default_factory=Counter)
    held_out: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)  # by reason
    # (masked user id, channel, variant or "-") of a few users it would send to
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    already_planned: int = 0  # rows a real run of this date already wrote (left as they are)
    deferred: int = 0  # of those it would send, how many its users' quiet hours would defer

    @property
    def sends(self) -> int:
        return sum(self.would_send.values())

    def lines(self) -> list[str]:
        """What a person reads: the run's figures, per variant and channel, and why not."""
        head = f"dry run of {self.campaign} for {self.business_date}: nothing was written or sent"
        deferred = (
            f" ({self.deferred} of them deferred by quiet hours, sent when they end)"
            if self.deferred
            else ""
        )
        lines = [head, f"would send: {self.sends}{deferred}"]
        lines += [
            f"  {channel}" + ("" if variant == "-" else f", variant {variant}") + f": {count}"
            for (variant, channel), count in sorted(self.would_send.items())
        ]
        lines.append(f"would hold out: {self.held_out}")
        lines.append(f"would suppress: {sum(self.suppressed.values())}")
        lines += [f"  {reason}: {count}" for reason, count in self.suppressed.most_common()]
        if self.already_planned:
            lines.append(f"already planned by an earlier real run (kept): {self.already_planned}")
        if self.examples:
            lines.append(
                "e.g. "
                + ", ".join(
                    f"{user} {channel}" + ("" if variant == "-" else f" ({variant})")
                    for user, channel, variant in self.examples
                )
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        """For the flow's return value: no top-level counts, so nobody sums it as sent."""
        return {
            "would_send": {
                f"{channel}" + ("" if variant == "-" else f"/{variant}"): count
                for (variant, channel), count in sorted(self.would_send.items())
            },
            "would_defer_by_quiet_hours": self.deferred,
            "would_hold_out": self.held_out,
            "would_suppress": dict(self.suppressed.most_common()),
            "examples": [
                " ".join(part for part in example if part != "-") for example in self.examples
            ],
            "note": "dry run: nothing was written or sent",
        }


def dry_run(
    session: Session,
    campaign: Campaign,
    business_date: dt.date,
    audience: Select[tuple[str]] | None = None,
) -> DryRun:
    """Plan the campaign's run for the date, summarise it, and keep none of it."""
    planned = stage_plan(session, campaign, business_date, audience=audience)
    try:
        taken = exists().where(OutboxMessage.key == planned.c.key)
        new = select(planned).where(~taken).subquery()
        already = session.scalar(select(func.count()).select_from(planned).where(taken)) or 0
        would_send: Counter[tuple[str, str]] = Counter()
        held_out = 0
        suppressed: Counter[str] = Counter()
        grouped = select(
            new.c.status, new.c.reason, new.c.variant, new.c.channel, func.count()
        ).group_by(new.c.status, new.c.reason, new.c.variant, new.c.channel)
        for status, reason, variant, channel, count in session.execute(grouped):
            if status == OutboxStatus.QUEUED:
                would_send[variant or "-", channel or "-"] += count
            elif status == OutboxStatus.HOLDOUT:
                held_out += count
            else:
                suppressed[reason or status] += count
        now = utcnow()
        by_zone = select(User.timezone, func.count()).join(new, new.c.user_id == User.user_id)
        deferred = sum(
            count
            for zone, count in session.execute(
                by_zone.where(new.c.status == OutboxStatus.QUEUED).group_by(User.timezone)
            )
            if quiet_until(campaign.quiet_hours, zone, now) is not None
        )
        examples = [
            (mask(user), channel or "-", variant or "-")
            for user, channel, variant in session.execute(
                select(new.c.user_id, new.c.channel, new.c.variant)
                .where(new.c.status == OutboxStatus.QUEUED)
                .order_by(new.c.user_id)
                .limit(EXAMPLES)
            )
        ]
    finally:
        planned.drop(session.connection())
    return DryRun(
        campaign.name,
        business_date,
        would_send,
        held_out,
        suppressed,
        examples,
        int(already),
        deferred,
    )
