import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from yunying.sources.records import (
    InvalidRecord,
    holdout_bucket,
    to_event_row,
    to_order_row,
    to_user_row,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 1)


def test_timestamps_normalise_to_utc_and_local_day() -> None:
    row = to_event_row(
        {
            "event_id": "e1",
            "user_id": "u1",
            "name": "app_open",
            "occurred_at": "2026-03-01T23:30:00-05:00",
        },
        SHANGHAI,
    )
    assert row["occurred_at"] == dt.datetime(2026, 3, 2, 4, 30)
    assert row["day"] == dt.date(2026, 3, 2)  # 12:30 in Shanghai


def test_epoch_seconds_and_naive_utc() -> None:
    a = to_event_row({"event_id": "e", "user_id": "u", "name": "x", "occurred_at": 0}, SHANGHAI)
    b = to_event_row(
        {"event_id": "e", "user_id": "u", "name": "x", "occurred_at": "1970-01-01T00:00:00"},
        SHANGHAI,
    )
    assert a["occurred_at"] == b["occurred_at"] == dt.datetime(1970, 1, 1)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            {"event_id": "e", "user_id": "u", "name": "x", "occurred_at": "2024-13-45"},
            "occurred_at",
        ),
        ({"event_id": "e", "name": "x", "occurred_at": "2024-01-01"}, "user_id: missing"),
        (
            {"event_id": "e", "user_id": "u", "name": "bad\ufffd", "occurred_at": "2024-01-01"},
            "encoding",
        ),
        (
            {"event_id": "e", "user_id": "u", "name": 5, "occurred_at": "2024-01-01"},
            "expected text",
        ),
        (
            {"event_id": "has space", "user_id": "u", "name": "x", "occurred_at": "2024-01-01"},
            "not a valid key",
        ),
    ],
    ids=["bad-date", "missing-key", "bad-encoding", "wrong-type", "bad-key"],
)
def test_bad_events_say_why(raw: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        to_event_row(raw, SHANGHAI)


def test_orders_reject_negative_and_non_numeric_amounts() -> None:
    base = {"order_id": "o1", "user_id": "u1", "created_at": "2026-01-01T00:00:00Z"}
    assert to_order_row({**base, "amount": "12.345"}, SHANGHAI)["amount"] == Decimal("12.34")
    with pytest.raises(InvalidRecord, match="negative"):
        to_order_row({**base, "amount": "-3"}, SHANGHAI)
    with pytest.raises(InvalidRecord, match="not a number"):
        to_order_row({**base, "amount": "ten"}, SHANGHAI)
    with pytest.raises(InvalidRecord, match="currency"):
        to_order_row({**base, "amount": "1", "currency": "yuan"}, SHANGHAI)


def test_users_validate_contacts_and_flags() -> None:
    raw = {
        "user_id": "u1",
        "signup_at": "2026-01-01T00:00:00Z",
        "email_opt_in": "0",
        "locale": "en",
    }
    row = to_user_row(raw, SHANGHAI, NOW)
    assert row["email_opt_in"] is False
    assert row["sms_opt_in"] is True
    assert row["holdout_bucket"] == holdout_bucket("u1")
    with pytest.raises(InvalidRecord, match="email"):
        to_user_row({**raw, "email": "nope"}, SHANGHAI, NOW)
    with pytest.raises(InvalidRecord, match="timezone"):
        to_user_row({**raw, "timezone": "Nowhere/City"}, SHANGHAI, NOW)
    with pytest.raises(InvalidRecord, match="locale"):
        to_user_row({**raw, "locale": "fr"}, SHANGHAI, NOW)
