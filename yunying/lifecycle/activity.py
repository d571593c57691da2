"""What counts as a user's activity, said in words for `init` and the pull summary.

Activity decides active/silent/churned and DAU/MAU: the events named in
`lifecycle.activity_events` (all events when empty) and, with `lifecycle.orders_are_activity`
(the default), every order placed. A company with customers and orders only is then
evaluated on its orders instead of finding every customer churned.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from yunying.config import LifecycleSettings
from yunying.store.models import Event, Order, User


def describe_activity(entities: Collection[str], rules: LifecycleSettings) -> str | None:
    """A sentence on how activity is derived when there are users but no events, else None.
    `entities` are those present (stored, or configured): each clause says what holds."""
    if "users" not in entities or "events" in entities:
        return None
    if "orders" in entities and rules.orders_are_activity:
        return (
            "no events: activity is derived from orders (lifecycle.orders_are_activity = true):"
            " a customer is active on each local day they placed an order"
        )
    if "orders" in entities:
        why = "no events and orders are not activity (lifecycle.orders_are_activity = false)"
    elif rules.orders_are_activity:
        why = "no events and no orders: nothing to derive activity from"
    else:
        why = "no events, no orders, and orders would not be activity anyway"
        why += " (lifecycle.orders_are_activity = false)"
    return f"{why}: every user will be silent or churned, and DAU/MAU will be 0"


def stored_entities(session: Session) -> set[str]:
    """Which of users, events and orders the store holds any of."""
    present = session.execute(
        select(
            exists().where(User.user_id.is_not(None)),
            exists().where(Event.event_id.is_not(None)),
            exists().where(Order.order_id.is_not(None)),
        )
    ).one()
    return {
        name for name, there in zip(("users", "events", "orders"), present, strict=True) if there
    }
