"""Lifecycle states as of an earlier computed date, from the recorded transitions.

`lifecycle_states` holds the latest run only. A run records a transition for every user whose
state it set (their first state too), and dates run in order, so a user's state on a computed
date is the `to_state` of their last transition on or before it, and `since` is that
transition's date: exactly what that date's run stored. Tiers and RFM scores are not kept per
date; they exist for the latest run only.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, Integer, String, Subquery, func, null, select
from sqlalchemy.orm import Session

from yunying.store.models import LifecycleRun, LifecycleTransition


def computed_range(session: Session) -> tuple[dt.date, dt.date] | None:
    """The first and the latest date the lifecycle was computed for, or None."""
    first, last = session.execute(
        select(func.min(LifecycleRun.business_date), func.max(LifecycleRun.business_date))
    ).one()
    return None if first is None else (first, last)


def was_computed(session: Session, business_date: dt.date) -> bool:
    return session.get(LifecycleRun, business_date) is not None


def states_as_of(business_date: dt.date) -> Subquery:
    """`lifecycle_states` as it stood after the run for `business_date`: a subquery with its
    column names, of which state, since and prev_state are known (the others are null)."""
    t = LifecycleTransition
    last = (
        select(t.user_id, func.max(t.business_date).label("day"))
        .where(t.business_date <= business_date)
        .group_by(t.user_id)
        .subquery()
    )
    return (
        select(
            t.user_id.label("user_id"),
            t.to_state.label("state"),
            t.business_date.label("since"),
            t.from_state.label("prev_state"),
            null().cast(Date).label("prev_since"),
            null().cast(Integer).label("recency_score"),
            null().cast(Integer).label("frequency_score"),
            null().cast(Integer).label("monetary_score"),
            null().cast(String).label("tier"),
        )
        .join(last, (last.c.user_id == t.user_id) & (last.c.day == t.business_date))
        .subquery("lifecycle_then")
    )
