"""KPIs of a business date, set-based over the store. Each KPI is defined once, here:

- DAU / WAU / MAU: users with an activity event on the date / in the 7 / 30 days ending on it;
- stickiness: DAU / MAU;
- new users: signups on the date; D1 / D7 retention: of the users who signed up 1 / 7 days
  before, the share active on the date;
- orders, revenue: paid orders created on the date; paying users: their distinct users;
  ARPU = revenue / DAU; ARPPU = revenue / paying users;
- users per lifecycle state and the date's transitions; messages per outbox status.
Days are calendar days in the company's time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from yunying.lifecycle.states import summarise
from yunying.messaging.outbox import counts as outbox_counts
from yunying.store.models import ActiveDay, Order, User


@dataclass
class DailyKpis:
    business_date: dt.date
    dau: int
    wau: int
    mau: int
    new_users: int
    d1_retention: float | None
    d7_retention: float | None
    orders: int
    revenue: Decimal
    paying_users: int
    lifecycle: dict[str, int] = field(default_factory=dict)
    transitions: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    dau_trend: list[tuple[dt.date, int]] = field(default_factory=list)

    @property
    def stickiness(self) -> float | None:
        return self.dau / self.mau if self.mau else None

    @property
    def arpu(self) -> Decimal | None:
        return (self.revenue / self.dau).quantize(Decimal("0.01")) if self.dau else None

    @property
    def arppu(self) -> Decimal | None:
        if not self.paying_users:
            return None
        return (self.revenue / self.paying_users).quantize(Decimal("0.01"))

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["business_date"] = self.business_date.isoformat()
        data["revenue"] = str(self.revenue)
        data["dau_trend"] = [[day.isoformat(), count] for day, count in self.dau_trend]
        for name in ("stickiness", "arpu", "arppu"):
            value = getattr(self, name)
            data[name] = str(value) if isinstance(value, Decimal) else value
        return data


def active_users(session: Session, first: dt.date, last: dt.date) -> int:
    return int(
        session.scalar(
            select(func.count(distinct(ActiveDay.user_id))).where(
                ActiveDay.day.between(first, last)
            )
        )
        or 0
    )


def retention(session: Session, business_date: dt.date, days: int) -> float | None:
    cohort_day = business_date - dt.timedelta(days=days)
    cohort = session.scalar(select(func.count()).where(User.signup_day == cohort_day))
    if not cohort:
        return None
    retained = session.scalar(
        select(func.count())
        .select_from(User)
        .join(ActiveDay, (ActiveDay.user_id == User.user_id) & (ActiveDay.day == business_date))
        .where(User.signup_day == cohort_day)
    )
    return int(retained or 0) / int(cohort)


def dau_trend(
    session: Session, business_date: dt.date, days: int = 30
) -> list[tuple[dt.date, int]]:
    first = business_date - dt.timedelta(days=days - 1)
    rows: dict[dt.date, int] = {
        day: count
        for day, count in session.execute(
            select(ActiveDay.day, func.count())
            .where(ActiveDay.day.between(first, business_date))
            .group_by(ActiveDay.day)
        )
    }
    return [
        (first + dt.timedelta(days=i), int(rows.get(first + dt.timedelta(days=i), 0)))
        for i in range(days)
    ]


def compute_kpis(session: Session, business_date: dt.date) -> DailyKpis:
    day = dt.timedelta(days=1)
    orders, revenue, payers = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Order.amount), 0),
            func.count(distinct(Order.user_id)),
        ).where(Order.day == business_date, Order.status == "paid")
    ).one()
    lifecycle = summarise(session, business_date)
    return DailyKpis(
        business_date=business_date,
        dau=active_users(session, business_date, business_date),
        wau=active_users(session, business_date - 6 * day, business_date),
        mau=active_users(session, business_date - 29 * day, business_date),
        new_users=int(
            session.scalar(select(func.count()).where(User.signup_day == business_date)) or 0
        ),
        d1_retention=retention(session, business_date, 1),
        d7_retention=retention(session, business_date, 7),
        orders=int(orders),
        revenue=Decimal(revenue).quantize(Decimal("0.01")),
        paying_users=int(payers),
        lifecycle=lifecycle.by_state,
        transitions=sum(lifecycle.transitions.values()),
        messages=outbox_counts(session, None, business_date),
        dau_trend=dau_trend(session, business_date),
    )
