"""What the team's actions did: the funnel, recent cohorts, reactivation uplift against the
holdout (with a 95% confidence interval), rewards against budget, and ROI. Set-based SQL.

- funnel: users who signed up 7..13 days before the date; of them, those active on a later day
  within 7 days of signing up (activated), and those with a paid order within 7 days (ordered);
- cohorts: for each of the 7 signup days before the date, its size and D1 / D3 / D7 retention
  (the share active exactly that many days after signing up), where that day has come;
- reactivation: messages of reactivation campaigns planned for the date 7 days before; a user
  is reactivated when active within the 7 days after; uplift = treated rate − holdout rate,
  with a normal-approximation 95% interval;
- ROI = incremental revenue of the treated (their 7-day revenue per user above the holdout's,
  times the treated) − the rewards paid on the date.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session

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
class Uplift:
    cohort_date: dt.date
    treated: int
    treated_reactivated: int
    holdout: int
    holdout_reactivated: int
    treated_revenue: Decimal
    holdout_revenue: Decimal

    def rate(self, group: str) -> float | None:
        n, k = (
            (self.treated, self.treated_reactivated)
            if group == "treated"
            else (self.holdout, self.holdout_reactivated)
        )
        return k / n if n else None

    @property
    def uplift(self) -> float | None:
        t, h = self.rate("treated"), self.rate("holdout")
        return None if t is None or h is None else t - h

    @property
    def interval(self) -> tuple[float, float] | None:
        t, h = self.rate("treated"), self.rate("holdout")
        if t is None or h is None or self.uplift is None:
            return None
        error = 1.96 * math.sqrt(t * (1 - t) / self.treated + h * (1 - h) / self.holdout)
        return self.uplift - error, self.uplift + error

    @property
    def incremental_revenue(self) -> Decimal:
        if not self.treated or not self.holdout:
            return Decimal(0)
        per_user = self.treated_revenue / self.treated - self.holdout_revenue / self.holdout
        return (per_user * self.treated).quantize(Decimal("0.01"))


def days_after(session: Session, column: Any, days: int) -> Any:
    """`column + days` for a date column, in this database's dialect."""
    if is_postgres(session):
        return column + days
    return func.date(column, f"+{days} days")


def _share_with(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def funnel(session: Session, business_date: dt.date) -> Funnel:
    end = days_after(session, User.signup_day, WINDOW)
    activated = exists().where(
        ActiveDay.user_id == User.user_id, ActiveDay.day > User.signup_day, ActiveDay.day <= end
    )
    ordered = exists().where(
        Order.user_id == User.user_id,
        Order.status == "paid",
        Order.day >= User.signup_day,
        Order.day <= end,
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


def reactivation_uplift(session: Session, business_date: dt.date) -> Uplift:
    cohort_date = business_date - dt.timedelta(days=WINDOW)
    end = cohort_date + dt.timedelta(days=WINDOW)
    came_back = exists().where(
        ActiveDay.user_id == OutboxMessage.user_id,
        ActiveDay.day > cohort_date,
        ActiveDay.day <= end,
    )
    revenue = (
        select(func.coalesce(func.sum(Order.amount), 0))
        .where(
            Order.user_id == OutboxMessage.user_id,
            Order.status == "paid",
            Order.day > cohort_date,
            Order.day <= end,
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            OutboxMessage.status,
            func.count(),
            func.sum(case((came_back, 1), else_=0)),
            func.coalesce(func.sum(revenue), 0),
        )
        .where(
            OutboxMessage.business_date == cohort_date,
            OutboxMessage.status.in_(("sent", "holdout")),
            ~OutboxMessage.campaign.like("reward-won%"),
        )
        .group_by(OutboxMessage.status)
    ).all()
    by_status = {status: (int(n), int(k or 0), Decimal(str(r))) for status, n, k, r in rows}
    t = by_status.get("sent", (0, 0, Decimal(0)))
    h = by_status.get("holdout", (0, 0, Decimal(0)))
    return Uplift(cohort_date, t[0], t[1], h[0], h[1], t[2], h[2])


def rewards_paid(
    session: Session, business_date: dt.date, zone: ZoneInfo
) -> tuple[Decimal, Decimal, Decimal]:
    """(paid on the date, paid in total, total budget) across reward campaigns."""
    start = (
        dt.datetime.combine(business_date, dt.time(), zone).astimezone(dt.UTC).replace(tzinfo=None)
    )
    end = start + dt.timedelta(days=1)
    paid = RewardLedgerEntry.status == "paid"
    today = session.scalar(
        select(func.coalesce(func.sum(RewardLedgerEntry.amount), 0)).where(
            paid, and_(RewardLedgerEntry.paid_at >= start, RewardLedgerEntry.paid_at < end)
        )
    )
    total = session.scalar(select(func.coalesce(func.sum(RewardLedgerEntry.amount), 0)).where(paid))
    budget = session.scalar(select(func.coalesce(func.sum(RewardBudget.total), 0)))
    return Decimal(str(today)), Decimal(str(total)), Decimal(str(budget))
