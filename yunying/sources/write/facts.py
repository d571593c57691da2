"""The per-user facts (last activity, counts, spend) and active days, kept current set-based
from what a batch added: the statements both writers share, and the orders' fold."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, Numeric, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yunying.store.engine import is_postgres, utcnow


def activity_filter(activity_events: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """A condition on `name` keeping the events that count as activity (all when none are
    configured), with its parameters."""
    if not activity_events:
        return "TRUE", {}
    names = ", ".join(f":name{i}" for i in range(len(activity_events)))
    return f"name IN ({names})", {f"name{i}": name for i, name in enumerate(activity_events)}


# An upsert's SET keeping a user's latest activity, stored or new.
LATEST_ACTIVITY = (
    " last_active_at = CASE WHEN user_facts.last_active_at IS NULL"
    "   OR excluded.last_active_at > user_facts.last_active_at"
    "   THEN excluded.last_active_at ELSE user_facts.last_active_at END,"
    " last_active_day = CASE WHEN user_facts.last_active_day IS NULL"
    "   OR excluded.last_active_day > user_facts.last_active_day"
    "   THEN excluded.last_active_day ELSE user_facts.last_active_day END,"
)


FACTS = (
    "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
    " order_count, revenue, updated_at) {select}"
    " ON CONFLICT (user_id) DO UPDATE SET"
    + LATEST_ACTIVITY
    + " event_count = user_facts.event_count + excluded.event_count,"
    " updated_at = excluded.updated_at"
)


def fact_updates(fresh: str, only: str) -> tuple[str, str]:
    """SQLite: the statements folding the new events in `fresh` into user_facts and
    active_days."""
    facts = FACTS.format(
        select=f"SELECT user_id, MAX(occurred_at), MAX(day), COUNT(*), 0, 0, :now FROM {fresh}"
        f" WHERE {only} GROUP BY user_id"
    )
    days = (
        f"INSERT INTO active_days (user_id, day) SELECT DISTINCT user_id, day FROM {fresh}"
        f" WHERE {only} ON CONFLICT DO NOTHING"
    )
    return facts, days


def fold_events(fresh: str, only: str, look_pairs_up: bool = False) -> str:
    """PostgreSQL: one statement folding the new events that the query `fresh` gives into
    user_facts and active_days, through one (user, day) aggregate; it returns how many events
    `fresh` gave. `look_pairs_up` leaves out the pairs already stored by looking them up
    instead of with ON CONFLICT (about half the server's work), but fails if another writer
    adds one of them meanwhile."""
    new_pairs = (
        " AND NOT EXISTS (SELECT 1 FROM active_days AS known"
        " WHERE known.user_id = pairs.user_id AND known.day = pairs.day)"
        if look_pairs_up
        else " ON CONFLICT DO NOTHING"
    )
    facts = FACTS.format(
        select="SELECT user_id, MAX(last_at), MAX(day), SUM(active), 0, 0, :now FROM pairs"
        " WHERE active > 0 GROUP BY user_id"
    )
    return (
        f"WITH fresh AS ({fresh}),"
        " pairs AS MATERIALIZED (SELECT user_id, day, COUNT(*) AS events,"
        f" COUNT(*) FILTER (WHERE {only}) AS active,"
        f" MAX(occurred_at) FILTER (WHERE {only}) AS last_at FROM fresh GROUP BY user_id, day),"
        " days AS (INSERT INTO active_days (user_id, day) SELECT user_id, day FROM pairs"
        f" WHERE active > 0{new_pairs} RETURNING 1),"
        f" facts AS ({facts} RETURNING 1)"
        " SELECT SUM(events) FROM pairs"
    )


def spend_in(currency: str | None, rates: Mapping[str, Decimal], of: str = "") -> str:
    """SQL: an order's amount in the company's `currency` (the order row aliased `of`),
    converted at `rates`, and 0 in a currency with none: the spend its user's facts add
    (RFM monetary), counted as the report counts money; with no `currency`, the amount as
    it is. Codes are validated ISO 4217."""
    row = f"{of}." if of else ""
    if currency is None:
        return f"{row}amount"
    whens = [f"WHEN '{currency}' THEN {row}amount"] + [
        f"WHEN '{code}' THEN {row}amount * {rate}"
        for code, rate in sorted(rates.items())
        if code != currency
    ]
    return f"COALESCE(CASE {row}currency {' '.join(whens)} END, 0)"


def fold_new_orders(fresh: str, as_activity: bool, postgres: bool) -> list[str]:
    """The statements folding orders all new to the store, those the query `fresh` gives
    (user_id, amount, status, created_at, day; amount in the company's money), into
    user_facts and, with `as_activity`, active_days. Paid orders and spend are added to the
    stored counts, which held every earlier order, instead of recounting each user's orders
    (a second read of them through an index). On PostgreSQL one statement returning how
    many orders `fresh` gave; on SQLite two, the days' first."""
    if postgres:
        return [_fold_new_orders_postgres(fresh, as_activity)]
    times = "created_at, day" if as_activity else "NULL, NULL"
    # An order at a time: SQLite's upsert takes a user twice in one statement, and that
    # costs less than sorting the batch by user to aggregate it first.
    facts = _NEW_ORDERS_FACTS.format(
        select=f"SELECT user_id, {times}, 0, status = 'paid',"
        " CASE WHEN status = 'paid' THEN amount ELSE 0 END,"
        f" CASE WHEN status = 'paid' THEN created_at END, :now FROM ({fresh}) WHERE TRUE",
        activity=LATEST_ACTIVITY if as_activity else "",
    )
    days = (
        f"INSERT INTO active_days (user_id, day) SELECT user_id, day FROM ({fresh})"
        " WHERE TRUE ON CONFLICT DO NOTHING"
    )
    return [days, facts] if as_activity else [facts]


def _fold_new_orders_postgres(fresh: str, as_activity: bool) -> str:
    """One statement through one (user, day) aggregate (PostgreSQL's upsert takes a key once
    a statement); the new days are looked up, as `fold_events(look_pairs_up=True)` does."""
    paid = "FILTER (WHERE status = 'paid')"
    times = "MAX(last_at), MAX(day)" if as_activity else "NULL, NULL"
    facts = _NEW_ORDERS_FACTS.format(
        select=f"SELECT user_id, {times}, 0, SUM(paid), COALESCE(SUM(spend), 0),"
        " MAX(last_paid), :now FROM pairs GROUP BY user_id",
        activity=LATEST_ACTIVITY if as_activity else "",
    )
    days = (
        "INSERT INTO active_days (user_id, day) SELECT user_id, day FROM pairs"
        " WHERE NOT EXISTS (SELECT 1 FROM active_days AS known"
        " WHERE known.user_id = pairs.user_id AND known.day = pairs.day)"
    )
    return (
        "WITH pairs AS MATERIALIZED (SELECT user_id, day, COUNT(*) AS orders,"
        f" MAX(created_at) AS last_at, COUNT(*) {paid} AS paid, SUM(amount) {paid} AS spend,"
        f" MAX(created_at) {paid} AS last_paid FROM ({fresh}) AS fresh GROUP BY user_id, day)"
        + (f", days AS ({days} RETURNING 1)" if as_activity else "")
        + f", facts AS ({facts} RETURNING 1) SELECT SUM(orders) FROM pairs"
    )


# The upsert adding new orders to a user's facts.
_NEW_ORDERS_FACTS = (
    "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
    " order_count, revenue, last_order_at, updated_at) {select}"
    " ON CONFLICT (user_id) DO UPDATE SET{activity}"
    " order_count = user_facts.order_count + excluded.order_count,"
    " revenue = user_facts.revenue + excluded.revenue,"
    " last_order_at = CASE WHEN user_facts.last_order_at IS NULL"
    "   OR excluded.last_order_at > user_facts.last_order_at"
    "   THEN excluded.last_order_at ELSE user_facts.last_order_at END,"
    " updated_at = excluded.updated_at"
)


def fold_orders(
    session: Session,
    batch: str,
    params: dict[str, Any],
    as_activity: bool,
    spend: str = "o.amount",
) -> None:
    """Recount paid orders and spend for the users of the orders the query `batch` gives
    (user_id, created_at, day: the batch as the writer holds it, with `params`) and, with
    `as_activity`, fold the orders into their last activity and active days, as events'.
    `spend` is an order's amount in the company's money, the order aliased `o` (`spend_in`).
    Counts and last activity go in one upsert of user_facts: as two, the orders of the load
    were found and their users written twice (a fifth of an orders load's time)."""
    params = {**params, "now": store_time(session)}
    if as_activity:
        _add_order_days(session, batch, params)
    last_active = LATEST_ACTIVITY if as_activity else ""
    # Without `as_activity` the load's times are left out (NULL, as for no activity).
    times = "MAX(touched.last_at), MAX(touched.last_day)" if as_activity else "NULL, NULL"
    session.execute(
        text(
            "INSERT INTO user_facts (user_id, last_active_at, last_active_day, event_count,"
            f" order_count, revenue, last_order_at, updated_at) SELECT touched.user_id, {times},"
            f" 0, COUNT(o.order_id), COALESCE(SUM({spend}), 0), MAX(o.created_at), :now"
            " FROM (SELECT user_id, MAX(created_at) AS last_at, MAX(day) AS last_day"
            f" FROM ({batch}) AS batch GROUP BY user_id) AS touched"
            " LEFT JOIN orders o ON o.user_id = touched.user_id AND o.status = 'paid'"
            " GROUP BY touched.user_id"
            f" ON CONFLICT (user_id) DO UPDATE SET{last_active}"
            " order_count = excluded.order_count, revenue = excluded.revenue,"
            " last_order_at = excluded.last_order_at, updated_at = excluded.updated_at"
        ),
        params,
    )


def _add_order_days(session: Session, batch: str, params: dict[str, Any]) -> None:
    """The (user, local day) pairs of the batch's orders into active_days. On PostgreSQL the
    new pairs are found by looking them up rather than with ON CONFLICT (a third of the
    insert's time); if another writer adds one of them meanwhile, the insert fails on the key
    and runs again with ON CONFLICT."""
    pairs = f"INSERT INTO active_days (user_id, day) SELECT DISTINCT user_id, day FROM ({batch})"
    if is_postgres(session):
        try:
            with session.begin_nested():
                session.execute(
                    text(
                        f"{pairs} AS o WHERE NOT EXISTS (SELECT 1 FROM active_days AS known"
                        " WHERE known.user_id = o.user_id AND known.day = o.day)"
                    ),
                    params,
                )
            return
        except IntegrityError:
            pass
    session.execute(text(f"{pairs} AS o WHERE TRUE ON CONFLICT DO NOTHING"), params)


def store_time(session: Session) -> Any:
    """Now, as a bound value raw SQL text can compare with DateTime columns on either store."""
    now = utcnow()
    return now if is_postgres(session) else _SQLITE_FORMATS[DateTime](now)


_SQLITE_FORMATS: dict[type[Any], Callable[[Any], str]] = {
    DateTime: lambda moment: moment.isoformat(" ", "microseconds"),
    Date: lambda day: day.isoformat(),
    Numeric: str,
}
