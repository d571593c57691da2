"""What the README promises about orders: the status values taken, and that an order of a user
id with no user record is still that id's activity."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from tests.builders import load_records
from yunying.config import Settings
from yunying.sources.load import validate
from yunying.store.engine import session_scope
from yunying.store.models import ActiveDay

ZONE = ZoneInfo("Asia/Shanghai")


def _order(status: object) -> dict[str, object]:
    return {
        "order_id": "o1",
        "user_id": "u1",
        "amount": "9.90",
        "status": status,
        "created_at": "2026-11-01T04:00:00Z",
    }


@pytest.mark.parametrize(
    ("given", "stored"),
    [("paid", "paid"), ("refunded", "refunded"), ("cancelled", "cancelled"), (None, "paid"),
     ("", "paid")],
)  # fmt: skip
def test_order_statuses_taken(given: object, stored: str) -> None:
    rows, rejected = validate("orders", [_order(given)], {}, ZONE)
    assert not rejected
    assert rows[0][4] == stored


@pytest.mark.parametrize("given", ["Paid", "PAID", " paid", "canceled", "void"])
def test_other_statuses_are_rejected_naming_the_field(given: str) -> None:
    rows, rejected = validate("orders", [_order(given)], {}, ZONE)
    assert not rows
    assert rejected[0].reason.startswith("status: ")


def test_an_order_of_a_user_id_with_no_user_record_is_its_activity(
    engine: Engine, settings: Settings
) -> None:
    with session_scope(engine) as session:
        load_records(session, settings.zone, "orders", [_order("paid")])
    with session_scope(engine) as session:
        days = session.execute(select(ActiveDay.user_id, ActiveDay.day)).all()
    assert [tuple(day) for day in days] == [("u1", dt.date(2026, 11, 1))]
