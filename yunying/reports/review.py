"""The campaign review (复盘): objective and target against the result, the funnel, uplift
per variant and overall with 95% intervals, cost and ROI, and where it worked best and
worst by slice, each with its sample size.

Rows are the campaign's outbox rows of the reviewed dates, as intent to treat (like the daily
report's uplift, reports/effects.py), one per user: each user's first row that is not
`suppressed` (a user planned on several nights counts once, from that night on): *eligible* =
those users; *held out* = `holdout`;
*assigned* = the other eligible rows, whatever became of their send; *sent* = sent or
bounced (handed to the provider); *delivered* = sent, except the rows the file outbox wrote
(sending off, or a channel with no provider), counted as *written to files*. A user
*converted* when the campaign's objective happened within `objective.within_days` company-
local days after the row's business date. Each variant's assigned users are compared to the
whole holdout (one control shared by all variants) and the leading variant to the runner-up.

Cost = messages sent x the campaign's `message_cost` for their channel + rewards paid in the
campaign's name (cash, or points at `point_value`), over every message of the reviewed
dates, + each converted assigned user x their variant's (or the campaign's)
`cost_per_conversion`. Incremental revenue = (revenue per
assigned - revenue per held out) x assigned; ROI = (incremental revenue - cost) / cost.

A slice is what was known when the user was planned, never after the outcome: the tier is the
one kept on the outbox row (a return raises the tier in lifecycle_states afterwards, which
would put the converted in a higher tier), the channel the row's; locale and time zone are
profile fields the outcome does not change. Rows planned before the tier was kept show "-".
Intervals are score intervals (reports/uplift.py); with fewer than MIN_ARM users in an arm
there is no verdict, no incremental revenue and no ROI: too few users to tell.

Two grouped statements read everything; Python only adds up their few hundred groups.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, func, not_, select
from sqlalchemy.orm import Session

from yunying.messaging.campaign import Campaign
from yunying.messaging.status import OutboxStatus, written_to_file
from yunying.reports.effects import Money, day_bounds_utc, days_after
from yunying.reports.uplift import MIN_ARM, difference_interval, enough_users
from yunying.store.models import (
    ActiveDay,
    Event,
    Order,
    OutboxMessage,
    RewardLedgerEntry,
    User,
)
from yunying.time_zones import place_name

SLICES = ("tier", "locale", "channel", "timezone")
MIN_SLICE = MIN_ARM  # below this a slice is listed but never called best or worst
TargetVerdict = Literal["met", "not_shown", "missed"]


@dataclass
class Arm:
    users: int = 0
    converted: int = 0
    revenue: Decimal = Decimal(0)

    def add(self, users: int, converted: int, revenue: Decimal) -> None:
        self.users += users
        self.converted += converted
        self.revenue += revenue

    @property
    def rate(self) -> float | None:
        return self.converted / self.users if self.users else None


@dataclass(frozen=True)
class Comparison:
    """A group of assigned users against a reference group (the holdout, or a variant)."""

    label: str
    treated: Arm
    reference: Arm

    @property
    def uplift(self) -> float | None:
        t, r = self.treated.rate, self.reference.rate
        return None if t is None or r is None else t - r

    @property
    def interval(self) -> tuple[float, float] | None:
        return difference_interval(
            self.treated.converted,
            self.treated.users,
            self.reference.converted,
            self.reference.users,
        )

    @property
    def enough(self) -> bool:
        """Both groups are large enough for a verdict; fewer: "too few users to tell"."""
        return enough_users(self.treated.users, self.reference.users)

    @property
    def significant(self) -> bool:
        interval = self.interval
        return self.enough and interval is not None and (interval[0] > 0 or interval[1] < 0)


@dataclass
class Funnel:
    eligible: int = 0
    held_out: int = 0
    assigned: int = 0
    sent: int = 0
    delivered: int = 0
    written_to_files: int = 0  # "sent" by the file outbox: no one received them
    converted: int = 0  # of the assigned


@dataclass
class Review:
    campaign: str
    description: str
    first_date: dt.date | None
    last_date: dt.date | None
    as_of: dt.date
    objective: str  # activity | order | event
    objective_event: str | None
    within_days: int
    target_uplift_points: float | None
    funnel: Funnel
    overall: Comparison
    variants: list[Comparison]  # each against the holdout, best first
    leader: Comparison | None  # the best variant against the runner-up
    message_cost: Decimal
    reward_cost: Decimal | None  # None: points without a point value
    slices: dict[str, list[Comparison]] = field(default_factory=dict)
    incentive_cost: Decimal = Decimal(0)  # converted users x cost_per_conversion

    @property
    def window_closed(self) -> bool:
        return self.last_date is not None and self.as_of >= self.last_date + dt.timedelta(
            days=self.within_days
        )

    @property
    def cost(self) -> Decimal | None:
        if self.reward_cost is None:
            return None
        return self.message_cost + self.reward_cost + self.incentive_cost

    @property
    def incremental_revenue(self) -> Decimal | None:
        treated, held = self.overall.treated, self.overall.reference
        if not self.overall.enough:
            return None
        per_user = treated.revenue / treated.users - held.revenue / held.users
        return (per_user * treated.users).quantize(Decimal("0.01"))

    @property
    def roi(self) -> float | None:
        revenue, cost = self.incremental_revenue, self.cost
        if revenue is None or not cost:
            return None
        return float((revenue - cost) / cost)

    @property
    def target_verdict(self) -> TargetVerdict | None:
        """`met` only when the whole 95% interval of the overall uplift is at or above the
        target, `missed` when it is all below, otherwise `not_shown` (the interval includes
        the target, whatever the point estimate). None: no target, or too few users."""
        interval = self.overall.interval
        if self.target_uplift_points is None or interval is None or not self.overall.enough:
            return None
        low, high = (bound * 100 for bound in interval)
        if low >= self.target_uplift_points:
            return "met"
        return "missed" if high < self.target_uplift_points else "not_shown"

    def best_and_worst(self, dimension: str) -> tuple[Comparison | None, Comparison | None]:
        """Among slices of at least MIN_SLICE users per arm, the highest and lowest uplift."""
        sized = [
            s
            for s in self.slices.get(dimension, [])
            if s.uplift is not None and min(s.treated.users, s.reference.users) >= MIN_SLICE
        ]
        if len(sized) < 2:
            return None, None
        ordered = sorted(sized, key=lambda s: s.uplift or 0.0)
        return ordered[-1], ordered[0]


def _converted(session: Session, campaign: Campaign, as_of: dt.date) -> Any:
    """Whether a row's user met the objective within its window, as known at the end of
    `as_of`: what came later is not counted in a review as of that date."""
    objective = campaign.objective
    start = OutboxMessage.business_date
    end = days_after(session, OutboxMessage.business_date, objective.within_days)
    if objective.kind == "activity":
        return exists().where(
            ActiveDay.user_id == OutboxMessage.user_id,
            ActiveDay.day > start,
            ActiveDay.day <= end,
            ActiveDay.day <= as_of,
        )
    if objective.kind == "order":
        return exists().where(
            Order.user_id == OutboxMessage.user_id,
            Order.status == "paid",
            Order.day > start,
            Order.day <= end,
            Order.day <= as_of,
        )
    return exists().where(
        Event.user_id == OutboxMessage.user_id,
        Event.name == objective.event,
        Event.day > start,
        Event.day <= end,
        Event.day <= as_of,
    )


def compute_review(
    session: Session,
    campaign: Campaign,
    as_of: dt.date,
    zone: ZoneInfo,
    money: Money,
    only_date: dt.date | None = None,
) -> Review:
    """The review of every date the campaign ran up to `as_of` (or of `only_date`)."""
    within = campaign.objective.within_days
    revenue = (
        select(func.coalesce(func.sum(money.counted()), 0))
        .where(
            Order.user_id == OutboxMessage.user_id,
            Order.status == "paid",
            Order.day > OutboxMessage.business_date,
            Order.day <= days_after(session, OutboxMessage.business_date, within),
            Order.day <= as_of,
        )
        .scalar_subquery()
    )
    status = OutboxMessage.status
    converted = _converted(session, campaign, as_of)
    tier = func.coalesce(OutboxMessage.tier, "-")  # as planned; "-" on rows before 0013
    channel = func.coalesce(OutboxMessage.channel, "-")
    to_file = case((written_to_file(OutboxMessage.provider_ref), 1), else_=0)
    variant = func.coalesce(OutboxMessage.variant, "-")
    reviewed = [OutboxMessage.campaign == campaign.name, OutboxMessage.business_date <= as_of]
    if only_date:
        reviewed.append(OutboxMessage.business_date == only_date)
    first, last = session.execute(
        select(func.min(OutboxMessage.business_date), func.max(OutboxMessage.business_date)).where(
            *reviewed
        )
    ).one()
    # Users, not rows: a user planned on several nights counts once, on their first eligible
    # row, so nightly repeats of the same held-out users do not pile up in the holdout.
    firsts = (
        select(OutboxMessage.user_id, func.min(OutboxMessage.business_date).label("day"))
        .where(*reviewed, OutboxMessage.status != OutboxStatus.SUPPRESSED)
        .group_by(OutboxMessage.user_id)
        .subquery()
    )
    rows = session.execute(
        select(
            status,
            variant,
            tier,
            User.locale,
            channel,
            User.timezone,
            to_file,
            func.count(),
            func.sum(case((converted, 1), else_=0)),
            func.coalesce(func.sum(revenue), 0),
        )
        .select_from(OutboxMessage)
        .join(
            firsts,
            (firsts.c.user_id == OutboxMessage.user_id)
            & (firsts.c.day == OutboxMessage.business_date),
        )
        .join(User, User.user_id == OutboxMessage.user_id)
        .where(OutboxMessage.campaign == campaign.name)
        .group_by(status, variant, tier, User.locale, channel, User.timezone, to_file)
    ).all()
    # Cost is per message: every row handed to a provider (not one the file outbox wrote),
    # not only users' first rows.
    sent_by_channel = {
        ch: int(n)
        for ch, n in session.execute(
            select(channel, func.count())
            .where(
                *reviewed,
                status.in_((OutboxStatus.SENT, OutboxStatus.BOUNCED)),
                not_(written_to_file(OutboxMessage.provider_ref)),
            )
            .group_by(channel)
        )
    }
    funnel = Funnel()
    holdout, assigned = Arm(), Arm()
    by_variant: dict[str, Arm] = defaultdict(Arm)
    slices: dict[str, dict[str, tuple[Arm, Arm]]] = {
        d: defaultdict(lambda: (Arm(), Arm())) for d in SLICES
    }
    for st, var, tr, locale, ch, user_zone, in_file, n, k, rev in rows:
        n, k, rev = int(n), int(k or 0), Decimal(str(rev))
        funnel.eligible += n
        if st in (OutboxStatus.SENT, OutboxStatus.BOUNCED):
            funnel.sent += n
        if st == OutboxStatus.SENT and in_file:
            funnel.written_to_files += n
        elif st == OutboxStatus.SENT:
            funnel.delivered += n
        held = st == OutboxStatus.HOLDOUT
        (holdout if held else assigned).add(n, k, rev)
        if not held:
            by_variant[var].add(n, k, rev)
        # A zone's old alias and its current name are one slice, as they are one segment.
        place = place_name(user_zone)
        for dimension, value in zip(SLICES, (tr, locale, ch, place), strict=True):
            slices[dimension][value][1 if held else 0].add(n, k, rev)
    funnel.held_out, funnel.assigned, funnel.converted = (
        holdout.users,
        assigned.users,
        assigned.converted,
    )
    variants = sorted(
        (Comparison(name, arm, holdout) for name, arm in by_variant.items() if name != "-"),
        key=lambda c: -(c.treated.rate or 0.0),
    )
    leader = (
        Comparison(variants[0].label, variants[0].treated, variants[1].treated)
        if len(variants) > 1
        else None
    )
    message_cost = sum(
        (campaign.message_cost.get(ch, Decimal(0)) * n for ch, n in sent_by_channel.items()),
        Decimal(0),
    )
    per_conversion = {v.name: v.cost_per_conversion for v in campaign.variants}
    incentive_cost = sum(
        (
            per_conversion.get(name, campaign.cost_per_conversion) * arm.converted
            for name, arm in by_variant.items()
        ),
        Decimal(0),
    )
    return Review(
        campaign=campaign.name,
        description=campaign.description,
        first_date=None if first is None else _date(first),
        last_date=None if last is None else _date(last),
        as_of=as_of,
        objective=campaign.objective.kind,
        objective_event=campaign.objective.event,
        within_days=within,
        target_uplift_points=campaign.target_uplift_points,
        funnel=funnel,
        overall=Comparison("overall", assigned, holdout),
        variants=variants,
        leader=leader,
        message_cost=Decimal(message_cost).quantize(Decimal("0.01")),
        reward_cost=_reward_cost(session, campaign.name, as_of, zone, money),
        incentive_cost=Decimal(incentive_cost).quantize(Decimal("0.01")),
        slices={
            d: [Comparison(v, arms[0], arms[1]) for v, arms in sorted(values.items())]
            for d, values in slices.items()
        },
    )


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _reward_cost(
    session: Session, campaign: str, as_of: dt.date, zone: ZoneInfo, money: Money
) -> Decimal | None:
    """Rewards paid in the campaign's name up to the end of `as_of`, in the company's money;
    None when a reward has no cash value (points without `point_value`, coupons)."""
    end = day_bounds_utc(as_of, zone)[1]
    rows = session.execute(
        select(RewardLedgerEntry.reward, func.sum(RewardLedgerEntry.amount))
        .where(
            RewardLedgerEntry.campaign == campaign,
            RewardLedgerEntry.status == "paid",
            RewardLedgerEntry.paid_at < end,
        )
        .group_by(RewardLedgerEntry.reward)
    ).all()
    total = Decimal(0)
    for reward, amount in rows:
        if reward == "cash":
            total += Decimal(str(amount))
        elif reward == "points" and money.point_value is not None:
            total += Decimal(str(amount)) * money.point_value
        else:
            return None
    return total.quantize(Decimal("0.01"))
