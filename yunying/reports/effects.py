"""What the team's actions did: the funnel, recent cohorts, reactivation uplift against the
holdout (with a 95% confidence interval), reward spend in each reward's own unit, and ROI.
Set-based SQL.

- funnel: users who signed up 7..13 days before the date; of them, those active on a later day
  within 7 days of signing up (activated), and those with a paid order within 7 days (ordered);
- cohorts: for each of the 7 signup days before the date, its size and D1 / D3 / D7 retention
  (the share active exactly that many days after signing up), where that day has come;
- reactivation, per campaign: the outbox rows planned for the date 7 days before, as intent to
  treat: *assigned* = every row planned to be sent (whatever became of the send), against
  *held out* = the holdout, which plan() draws among the same eligible users. A user is
  reactivated when active within the 7 days after; uplift = assigned rate - holdout rate, in
  percentage points, with a 95% score interval (reports/uplift.py); incremental revenue =
  (revenue per assigned user - revenue per held-out user) x assigned, in the company
  currency, given only when each arm has MIN_ARM users (fewer: "too few users to tell");
- rewards, per reward campaign and in its own unit (points stay points, cash is money): paid on
  the date, paid up to the end of the date, the budget; its cost in cash (cash as is, points at
  `point_value` when set, otherwise unknown); the revenue of its rewarded users since their
  payout up to the date; ROI = (that revenue - cash cost) / cash cost. Reward campaigns have no
  holdout, so their ROI is not incremental; the report says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, null, select
from sqlalchemy.orm import Session

from yunying.messaging.status import OutboxStatus
from yunying.reports.uplift import difference_interval, enough_users
from yunying.store.engine import is_postgres
from yunying.store.models import (
    ActiveDay,
    Order,
    OutboxMessage,
    RewardBudget,
    RewardLedgerEntry,
    User,
)

WINDOW = 7


@dataclass(frozen=True)
class Funnel:
    signed_up: int
    activated: int
    ordered: int


@dataclass(frozen=True)
class Cohort:
    signup_day: dt.date
    size: int
    retention: dict[int, float | None]  # day offset -> share


@dataclass(frozen=True)
class Money:
    """How order amounts become the company's money: amounts in `currency` count as they are,
    amounts in a currency with a configured rate are converted, any other stays apart."""

    currency: str = "CNY"
    rates: tuple[tuple[str, Decimal], ...] = ()  # (code, company currency per 1 unit)
    point_value: Decimal | None = None  # company currency per reward point

    def rate_table(self) -> dict[str, Decimal]:
        """Company currency per unit of each currency that counts (1 for its own)."""
        return {self.currency: Decimal(1), **dict(self.rates)}

    def counted(self) -> Any:
        """Each order's amount in the company currency, NULL when it cannot be converted."""
        whens: list[tuple[Any, Any]] = [(Order.currency == self.currency, Order.amount)]
        whens += [(Order.currency == code, Order.amount * rate) for code, rate in self.rates]
        return case(*whens, else_=null())


@dataclass(frozen=True)
class Uplift:
    """One reactivation campaign's messages of one date, intent to treat."""

    campaign: str
    cohort_date: dt.date
    assigned: int  # planned to be sent: queued, sent, failed, bounced, deferred ...
    assigned_reactivated: int
    holdout: int
    holdout_reactivated: int
    assigned_revenue: Decimal
    holdout_revenue: Decimal
    sent: int = 0  # of the assigned, how many were actually sent

    def rate(self, group: str) -> float | None:
        n, k = (
            (self.assigned, self.assigned_reactivated)
            if group == "assigned"
            else (self.holdout, self.holdout_reactivated)
        )
        return k / n if n else None

    @property
    def uplift(self) -> float | None:
        t, h = self.rate("assigned"), self.rate("holdout")
        return None if t is None or h is None else t - h

    @property
    def interval(self) -> tuple[float, float] | None:
        return difference_interval(
            self.assigned_reactivated, self.assigned, self.holdout_reactivated, self.holdout
        )

    @property
    def enough(self) -> bool:
        """Both arms are large enough for a verdict (reports/uplift.py MIN_ARM)."""
        return enough_users(self.assigned, self.holdout)

    @property
    def significant(self) -> bool:
        interval = self.interval
        return self.enough and interval is not None and (interval[0] > 0 or interval[1] < 0)

    @property
    def incremental_revenue(self) -> Decimal | None:
        if not self.enough:
            return None
        per_user = self.assigned_revenue / self.assigned - self.holdout_revenue / self.holdout
        return (per_user * self.assigned).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class RewardSpend:
    """One reward campaign's payouts as of a date, in the reward's own unit."""

    campaign: str
    unit: str  # points | coupon | cash (from the ledger)
    paid_today: Decimal
    paid_total: Decimal  # paid up to the end of the date
    budget: Decimal | None
    cash_cost: Decimal | None  # paid_total in the company currency; None when unknown
    revenue: Decimal  # of its rewarded users since their payout, company currency

    @property
    def roi(self) -> float | None:
        if not self.cash_cost:
            return None
        return float((self.revenue - self.cash_cost) / self.cash_cost)


def days_after(session: Session, column: Any, days: int) -> Any:
    """`column + days` for a date column, in this database's dialect."""
    if is_postgres(session):
        return column + days
    return func.date(column, f"+{days} days")


def _share_with(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def funnel(session: Session, business_date: dt.date) -> Funnel:
    # Came back: active on one of the WINDOW days after the signup day. Ordered: a paid
    # order in the first WINDOW days, the signup day the first of them.
    end = days_after(session, User.signup_day, WINDOW)
    activated = exists().where(
        ActiveDay.user_id == User.user_id, ActiveDay.day > User.signup_day, ActiveDay.day <= end
    )
    ordered = exists().where(
        Order.user_id == User.user_id,
        Order.status == "paid",
        Order.day >= User.signup_day,
        Order.day < end,
    )
    signed, active, paying = session.execute(
        select(func.count(), _share_with(activated), _share_with(ordered)).where(
            User.signup_day.between(
                business_date - dt.timedelta(days=2 * WINDOW - 1),
                business_date - dt.timedelta(days=WINDOW),
            )
        )
    ).one()
    return Funnel(int(signed), int(active or 0), int(paying or 0))


def cohorts(
    session: Session, business_date: dt.date, offsets: tuple[int, ...] = (1, 3, 7)
) -> list[Cohort]:
    def active_after(offset: int) -> Any:
        return exists().where(
            ActiveDay.user_id == User.user_id,
            ActiveDay.day == days_after(session, User.signup_day, offset),
        )

    rows = session.execute(
        select(User.signup_day, func.count(), *(_share_with(active_after(o)) for o in offsets))
        .where(
            User.signup_day.between(
                business_date - dt.timedelta(days=WINDOW), business_date - dt.timedelta(days=1)
            )
        )
        .group_by(User.signup_day)
    ).all()
    by_day = {row[0]: row[1:] for row in rows}
    result = []
    for back in range(1, WINDOW + 1):
        day = business_date - dt.timedelta(days=back)
        size, *active = by_day.get(day, (0, *([0] * len(offsets))))
        retention: dict[int, float | None] = {
            offset: (
                int(n or 0) / size
                if size and day + dt.timedelta(days=offset) <= business_date
                else None
            )
            for offset, n in zip(offsets, active, strict=True)
        }
        result.append(Cohort(day, int(size), retention))
    return result


def reactivation_uplift(session: Session, business_date: dt.date, money: Money) -> list[Uplift]:
    cohort_date = business_date - dt.timedelta(days=WINDOW)
    end = cohort_date + dt.timedelta(days=WINDOW)
    came_back = exists().where(
        ActiveDay.user_id == OutboxMessage.user_id,
        ActiveDay.day > cohort_date,
        ActiveDay.day <= end,
    )
    revenue = (
        select(func.coalesce(func.sum(money.counted()), 0))
        .where(
            Order.user_id == OutboxMessage.user_id,
            Order.status == "paid",
            Order.day > cohort_date,
            Order.day < end,
        )
        .scalar_subquery()
    )
    arm = case((OutboxMessage.status == OutboxStatus.HOLDOUT, "holdout"), else_="assigned")
    rows = session.execute(
        select(
            OutboxMessage.campaign,
            arm,
            func.count(),
            func.sum(case((came_back, 1), else_=0)),
            func.coalesce(func.sum(revenue), 0),
            func.sum(case((OutboxMessage.status == OutboxStatus.SENT, 1), else_=0)),
        )
        .where(
            OutboxMessage.business_date == cohort_date,
            OutboxMessage.status != OutboxStatus.SUPPRESSED,  # not eligible: in neither arm
            ~OutboxMessage.campaign.like("reward-won%"),
        )
        .group_by(OutboxMessage.campaign, arm)
    ).all()
    arms: dict[str, dict[str, tuple[int, int, Decimal, int]]] = {}
    for campaign, group, n, k, r, sent in rows:
        arms.setdefault(campaign, {})[group] = (int(n), int(k or 0), Decimal(str(r)), int(sent))
    empty = (0, 0, Decimal(0), 0)
    result = []
    for campaign in sorted(arms):
        a = arms[campaign].get("assigned", empty)
        h = arms[campaign].get("holdout", empty)
        result.append(Uplift(campaign, cohort_date, a[0], a[1], h[0], h[1], a[2], h[2], a[3]))
    return result


def day_bounds_utc(business_date: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The date's local midnight and the next one, as naive UTC (how the store keeps time)."""

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC).replace(tzinfo=None)

    return midnight(business_date), midnight(business_date + dt.timedelta(days=1))


def reward_spend(
    session: Session, business_date: dt.date, zone: ZoneInfo, money: Money
) -> list[RewardSpend]:
    """Per reward campaign with a payout by the end of the date, each in its own unit."""
    start, end = day_bounds_utc(business_date, zone)
    entry = RewardLedgerEntry
    paid = and_(entry.status == "paid", entry.paid_at < end)
    since_payout = (
        select(func.coalesce(func.sum(money.counted()), 0))
        .where(
            Order.user_id == entry.user_id,
            Order.status == "paid",
            Order.created_at >= entry.paid_at,
            Order.created_at < end,
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            entry.campaign,
            entry.reward,
            func.sum(case((entry.paid_at >= start, entry.amount), else_=0)),
            func.sum(entry.amount),
            func.sum(since_payout),
            RewardBudget.total,
        )
        .outerjoin(RewardBudget, RewardBudget.campaign == entry.campaign)
        .where(paid)
        .group_by(entry.campaign, entry.reward, RewardBudget.total)
        .order_by(entry.campaign, entry.reward)
    ).all()
    result = []
    for campaign, unit, today, total, revenue, budget in rows:
        total = Decimal(str(total))
        cost: Decimal | None = None
        if unit == "cash":
            cost = total
        elif unit == "points" and money.point_value is not None:
            cost = (total * money.point_value).quantize(Decimal("0.01"))
        result.append(
            RewardSpend(
                campaign=campaign,
                unit=unit,
                paid_today=Decimal(str(today or 0)),
                paid_total=total,
                budget=None if budget is None else Decimal(str(budget)),
                cash_cost=cost,
                revenue=Decimal(str(revenue or 0)).quantize(Decimal("0.01")),
            )
        )
    return result
