"""KPIs of a business date, set-based over the store. Each KPI is defined once, here:

- DAU / WAU / MAU: users with an activity event on the date / in the 7 / 30 days ending on it;
- stickiness: DAU / MAU;
- new users: signups on the date; D1 / D7 retention: of the users who signed up 1 / 7 days
  before, the share active on the date;
- orders, revenue: paid orders created on the date; paying users: their distinct users;
  ARPU = revenue / DAU; ARPPU = revenue / paying users;
- D30 retention likewise; users per lifecycle state and the date's transitions; messages per
  outbox status; the funnel, recent cohorts, reactivation uplift, rewards and ROI (effects.py);
- flags: DAU, new users, orders and revenue against their same-weekday bands (anomaly.py).
Days are calendar days in the company's time zone.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from yunying.lifecycle.states import summarise
from yunying.messaging.outbox import counts as outbox_counts
from yunying.reports.anomaly import Flag, judge
from yunying.reports.effects import (
    Cohort,
    Funnel,
    Uplift,
    cohorts,
    funnel,
    reactivation_uplift,
    rewards_paid,
)
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
    d30_retention: float | None = None
    funnel: Funnel = field(default_factory=lambda: Funnel(0, 0, 0))
    cohorts: list[Cohort] = field(default_factory=list)
    uplift: Uplift | None = None
    rewards_today: Decimal = Decimal(0)
    rewards_total: Decimal = Decimal(0)
    rewards_budget: Decimal = Decimal(0)
    flags: list[Flag] = field(default_factory=list)

    @property
    def roi(self) -> Decimal:
        incremental = self.uplift.incremental_revenue if self.uplift else Decimal(0)
        return incremental - self.rewards_today

    @property
    def raised_flags(self) -> list[Flag]:
        return [f for f in self.flags if f.status in ("new", "continuing")]

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
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), default=str))
        data["dau_trend"] = [[day.isoformat(), count] for day, count in self.dau_trend]
        data["uplift"] = (
            None
            if self.uplift is None
            else {
                "treated": self.uplift.treated,
                "holdout": self.uplift.holdout,
                "uplift": self.uplift.uplift,
                "interval": self.uplift.interval,
            }
        )
        for name in ("stickiness", "arpu", "arppu", "roi"):
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


SERIES_WEEKS = 8


def kpi_series(session: Session, business_date: dt.date) -> dict[str, dict[dt.date, float]]:
    """Daily values of the flagged KPIs over the weeks the bands look back on."""
    first = business_date - dt.timedelta(days=7 * SERIES_WEEKS + 1)
    paid = (Order.status == "paid", Order.day.between(first, business_date))
    queries: dict[str, Select[Any]] = {
        "dau": select(ActiveDay.day, func.count())
        .where(ActiveDay.day.between(first, business_date))
        .group_by(ActiveDay.day),
        "new_users": select(User.signup_day, func.count())
        .where(User.signup_day.between(first, business_date))
        .group_by(User.signup_day),
        "orders": select(Order.day, func.count()).where(*paid).group_by(Order.day),
        "revenue": select(Order.day, func.sum(Order.amount)).where(*paid).group_by(Order.day),
    }
    return {
        kpi: {day: float(value) for day, value in session.execute(query)}
        for kpi, query in queries.items()
    }


def anomaly_flags(
    session: Session, business_date: dt.date, series: dict[str, dict[dt.date, float]]
) -> list[Flag]:
    data_start = session.scalar(select(func.min(User.signup_day)))
    if data_start is None:
        return []

    def history(values: dict[dt.date, float], day: dt.date) -> list[float]:
        days = [day - dt.timedelta(weeks=k) for k in range(1, SERIES_WEEKS + 1)]
        return [values.get(d, 0.0) for d in days if d >= data_start]

    flags = []
    yesterday = business_date - dt.timedelta(days=1)
    for kpi, values in series.items():
        before = judge(kpi, values.get(yesterday, 0.0), history(values, yesterday), False)
        outside = before.status in ("new", "continuing")
        flags.append(
            judge(kpi, values.get(business_date, 0.0), history(values, business_date), outside)
        )
    return flags


def compute_kpis(session: Session, business_date: dt.date, zone: ZoneInfo) -> DailyKpis:
    day = dt.timedelta(days=1)
    series = kpi_series(session, business_date)  # daily DAU, signups, orders, revenue
    payers = session.scalar(
        select(func.count(distinct(Order.user_id))).where(
            Order.day == business_date, Order.status == "paid"
        )
    )
    first_of_trend = business_date - 29 * day
    trend = [
        (first_of_trend + i * day, int(series["dau"].get(first_of_trend + i * day, 0)))
        for i in range(30)
    ]
    lifecycle = summarise(session, business_date)
    today_paid, total_paid, budget = rewards_paid(session, business_date, zone)
    return DailyKpis(
        business_date=business_date,
        dau=int(series["dau"].get(business_date, 0)),
        wau=active_users(session, business_date - 6 * day, business_date),
        mau=active_users(session, business_date - 29 * day, business_date),
        new_users=int(series["new_users"].get(business_date, 0)),
        d1_retention=retention(session, business_date, 1),
        d7_retention=retention(session, business_date, 7),
        orders=int(series["orders"].get(business_date, 0)),
        revenue=Decimal(str(series["revenue"].get(business_date, 0))).quantize(Decimal("0.01")),
        paying_users=int(payers or 0),
        lifecycle=lifecycle.by_state,
        transitions=sum(lifecycle.transitions.values()),
        messages=outbox_counts(session, None, business_date),
        dau_trend=trend,
        d30_retention=retention(session, business_date, 30),
        funnel=funnel(session, business_date),
        cohorts=cohorts(session, business_date),
        uplift=reactivation_uplift(session, business_date),
        rewards_today=today_paid,
        rewards_total=total_paid,
        rewards_budget=budget,
        flags=anomaly_flags(session, business_date, series),
    )
