"""KPIs of a business date, set-based over the store, everything as of that date. Each KPI is
defined once, here:

- DAU / WAU / MAU: users with an activity event on the date / in the 7 / 30 days ending on it;
- stickiness: DAU / MAU;
- new users: signups on the date; D1 / D7 / D30 retention: of the users who signed up 1 / 7 /
  30 days before, the share active on the date;
- orders: paid orders created on the date; paying users: their distinct users;
- revenue: those orders' amounts in the company currency (`currency`; an order in another
  currency is converted at a configured rate, otherwise reported apart in `revenue_other` and
  left out of revenue, ARPU and ARPPU); ARPU = revenue / DAU; ARPPU = revenue / the paying
  users whose orders count in revenue;
- users per lifecycle state as of the date's own lifecycle run (the latest one's counts, or
  for an earlier date each user's last transition on or before it); the date's transitions;
  messages per outbox status; the funnel, recent cohorts, reactivation uplift per campaign,
  reward spend per campaign and ROI (effects.py);
- flags: DAU, new users, orders and revenue against their bands (anomaly.py).
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

from yunying.config import Settings
from yunying.lifecycle.history import states_as_of
from yunying.lifecycle.states import STATES, latest_date, summarise
from yunying.messaging.outbox import counts as outbox_counts
from yunying.messaging.outbox import suppressions
from yunying.messaging.status import OutboxStatus, written_while_sending_off
from yunying.reports.anomaly import SERIES_DAYS, Flag, judge
from yunying.reports.effects import (
    WINDOW,
    Cohort,
    Funnel,
    Money,
    RewardSpend,
    Uplift,
    cohorts,
    funnel,
    reactivation_uplift,
    reward_spend,
)
from yunying.store.models import (
    ActiveDay,
    LifecycleRun,
    LifecycleTransition,
    Order,
    OutboxMessage,
    User,
)

FLAGGED = ("dau", "new_users", "orders", "revenue")
CENT = Decimal("0.01")


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
    revenue: Decimal  # in `currency`
    paying_users: int
    currency: str = "CNY"
    revenue_other: dict[str, Decimal] = field(default_factory=dict)  # not converted
    counted_payers: int = 0  # paying users whose orders count in `revenue`
    lifecycle: dict[str, int] | None = None  # None: no lifecycle run for the date
    transitions: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)  # by the outbox row's reason
    dau_trend: list[tuple[dt.date, int]] = field(default_factory=list)
    d30_retention: float | None = None
    funnel: Funnel = field(default_factory=lambda: Funnel(0, 0, 0))
    cohorts: list[Cohort] = field(default_factory=list)
    uplifts: list[Uplift] = field(default_factory=list)
    rewards: list[RewardSpend] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)

    @property
    def uplift_window(self) -> dt.timedelta:
        """How far back the messages measured by `uplifts` were planned."""
        return dt.timedelta(days=WINDOW)

    @property
    def raised_flags(self) -> list[Flag]:
        return [f for f in self.flags if f.raised]

    @property
    def stickiness(self) -> float | None:
        return self.dau / self.mau if self.mau else None

    @property
    def arpu(self) -> Decimal | None:
        return (self.revenue / self.dau).quantize(Decimal("0.01")) if self.dau else None

    @property
    def arppu(self) -> Decimal | None:
        if not self.counted_payers:
            return None
        return (self.revenue / self.counted_payers).quantize(Decimal("0.01"))

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), default=str))
        data["dau_trend"] = [[day.isoformat(), count] for day, count in self.dau_trend]
        data["uplifts"] = [
            {
                "campaign": u.campaign,
                "assigned": u.assigned,
                "holdout": u.holdout,
                "sent": u.sent,
                "uplift": u.uplift,
                "interval": u.interval,
                "incremental_revenue": _text(u.incremental_revenue),
            }
            for u in self.uplifts
        ]
        for item, spend in zip(data["rewards"], self.rewards, strict=True):
            item["roi"] = spend.roi
        for name in ("stickiness", "arpu", "arppu"):
            data[name] = _text(getattr(self, name))
        return data


def _text(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


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


def kpi_series(
    session: Session, business_date: dt.date, money: Money
) -> dict[str, dict[dt.date, float]]:
    """Daily values of the flagged KPIs over the days the bands look back on."""
    first = business_date - dt.timedelta(days=SERIES_DAYS)
    paid = (Order.status == "paid", Order.day.between(first, business_date))
    queries: dict[str, Select[Any]] = {
        "dau": select(ActiveDay.day, func.count())
        .where(ActiveDay.day.between(first, business_date))
        .group_by(ActiveDay.day),
        "new_users": select(User.signup_day, func.count())
        .where(User.signup_day.between(first, business_date))
        .group_by(User.signup_day),
        "orders": select(Order.day, func.count()).where(*paid).group_by(Order.day),
        "revenue": select(Order.day, func.coalesce(func.sum(money.counted()), 0))
        .where(*paid)
        .group_by(Order.day),
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
    return [judge(kpi, series[kpi], business_date, data_start) for kpi in FLAGGED]


# The messages written to the file outbox while sending was off: "sent" to no one.
WRITTEN_TO_FILES = "written_to_files"


def messages_by_status(session: Session, business_date: dt.date) -> dict[str, int]:
    """The date's messages per outbox status, those sent to files while sending was off
    apart from the sent (a report must not call an evaluation's messages sent)."""
    counted = outbox_counts(session, None, business_date)
    to_files = int(
        session.scalar(
            select(func.count()).where(
                OutboxMessage.business_date == business_date,
                OutboxMessage.status == OutboxStatus.SENT,
                written_while_sending_off(OutboxMessage.provider_ref),
            )
        )
        or 0
    )
    split: dict[str, int] = {}
    for status, count in counted.items():
        split[status] = count - to_files if status == OutboxStatus.SENT else count
        if status == OutboxStatus.SENT:
            split[WRITTEN_TO_FILES] = to_files
    return split


def lifecycle_as_of(session: Session, business_date: dt.date) -> tuple[dict[str, int], int] | None:
    """Users per state and the number of transitions as of the date's own lifecycle run, or
    None when the date had no run. The stored counts describe the latest run only; for an
    earlier date each user's state is their last transition on or before it (a run records a
    transition for every user whose state it set, and dates run in order)."""
    if session.get(LifecycleRun, business_date) is None:
        return None
    if business_date == latest_date(session):
        summary = summarise(session, business_date)
        return summary.by_state, sum(summary.transitions.values())
    then = states_as_of(business_date)
    rows = session.execute(select(then.c.state, func.count()).group_by(then.c.state))
    by_state = dict.fromkeys(STATES, 0)
    for state, users in rows:
        by_state[state] = int(users)
    moved = session.scalar(
        select(func.count())
        .select_from(LifecycleTransition)
        .where(LifecycleTransition.business_date == business_date)
    )
    return by_state, int(moved or 0)


def money_for(settings: Settings) -> Money:
    """The company's money rules from its settings."""
    return Money(
        currency=settings.currency,
        rates=tuple(sorted(settings.exchange_rates.items())),
        point_value=settings.point_value,
    )


def compute_kpis(
    session: Session, business_date: dt.date, zone: ZoneInfo, money: Money | None = None
) -> DailyKpis:
    money = money or Money()
    day = dt.timedelta(days=1)
    series = kpi_series(session, business_date, money)  # daily DAU, signups, orders, revenue
    todays = (Order.day == business_date, Order.status == "paid")
    payers = session.scalar(select(func.count(distinct(Order.user_id))).where(*todays))
    counted_payers = session.scalar(
        select(func.count(distinct(Order.user_id))).where(*todays, money.counted().is_not(None))
    )
    # The date's totals per currency, converted here in Decimal: SQLite sums in floats.
    by_currency = {
        currency: Decimal(str(amount)).quantize(CENT)
        for currency, amount in session.execute(
            select(Order.currency, func.sum(Order.amount)).where(*todays).group_by(Order.currency)
        )
    }
    rates = money.rate_table()
    revenue = sum(
        (total * rates[code] for code, total in by_currency.items() if code in rates), Decimal(0)
    ).quantize(CENT)
    other = {code: total for code, total in sorted(by_currency.items()) if code not in rates}
    first_of_trend = business_date - 29 * day
    trend = [
        (first_of_trend + i * day, int(series["dau"].get(first_of_trend + i * day, 0)))
        for i in range(30)
    ]
    lifecycle = lifecycle_as_of(session, business_date)
    return DailyKpis(
        business_date=business_date,
        dau=int(series["dau"].get(business_date, 0)),
        wau=active_users(session, business_date - 6 * day, business_date),
        mau=active_users(session, business_date - 29 * day, business_date),
        new_users=int(series["new_users"].get(business_date, 0)),
        d1_retention=retention(session, business_date, 1),
        d7_retention=retention(session, business_date, 7),
        orders=int(series["orders"].get(business_date, 0)),
        revenue=revenue,
        paying_users=int(payers or 0),
        currency=money.currency,
        revenue_other=other,
        counted_payers=int(counted_payers or 0),
        lifecycle=None if lifecycle is None else lifecycle[0],
        transitions=0 if lifecycle is None else lifecycle[1],
        messages=messages_by_status(session, business_date),
        suppressed=suppressions(session, None, business_date),
        dau_trend=trend,
        d30_retention=retention(session, business_date, 30),
        funnel=funnel(session, business_date),
        cohorts=cohorts(session, business_date),
        uplifts=reactivation_uplift(session, business_date, money),
        rewards=reward_spend(session, business_date, zone, money),
        flags=anomaly_flags(session, business_date, series),
    )
