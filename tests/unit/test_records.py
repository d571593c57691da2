import datetime as dt
import random
import string
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from yunying.sources.load import validate
from yunying.sources.validate.fast import plain_events
from yunying.sources.validate.rows import EVENT_FIELDS, EventRow, InvalidRecord
from yunying.sources.validate.rules import (
    RecordDefaults,
    event_values,
    holdout_bucket,
    template_locale,
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
        (
            {"event_id": "e", "user_id": "u\n", "name": "x", "occurred_at": "2024-01-01"},
            "user_id: 'u\\\\n' is not a valid key",
        ),
        (
            {"event_id": "e", "user_id": "u" * 65, "name": "x", "occurred_at": "2024-01-01"},
            "user_id: longer than 64",
        ),
    ],
    ids=[
        "bad-date",
        "missing-key",
        "bad-encoding",
        "wrong-type",
        "bad-key",
        "key-ending-in-newline",
        "long-user-id",
    ],
)
def test_bad_events_say_why(raw: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        to_event_row(raw, SHANGHAI)


def test_orders_reject_negative_and_non_numeric_amounts() -> None:
    base = {"order_id": "o1", "user_id": "u1", "created_at": "2026-01-01T00:00:00Z"}
    # Whole cents only: a fraction of a cent is refused, not rounded away (0.004 -> 0.00).
    for fraction in ("12.345", "0.004", 0.001):
        with pytest.raises(InvalidRecord, match="not a whole number of cents"):
            to_order_row({**base, "amount": fraction}, SHANGHAI)
    # A binary float's noise is not a fraction of a cent.
    assert to_order_row({**base, "amount": 0.1 + 0.2}, SHANGHAI)["amount"] == Decimal("0.30")
    assert to_order_row({**base, "amount": "0"}, SHANGHAI)["amount"] == Decimal("0.00")
    with pytest.raises(InvalidRecord, match="negative"):
        to_order_row({**base, "amount": "-3"}, SHANGHAI)
    with pytest.raises(InvalidRecord, match="not a number"):
        to_order_row({**base, "amount": "ten"}, SHANGHAI)
    with pytest.raises(InvalidRecord, match="currency"):
        to_order_row({**base, "amount": "1", "currency": "yuan"}, SHANGHAI)
    # The stores hold amounts below 10^12 with two decimals.
    top = to_order_row({**base, "amount": "999999999999.99"}, SHANGHAI)["amount"]
    assert top == Decimal("999999999999.99")
    for too_big in ("999999999999.995", 10**12, "1e30", "1e400"):
        with pytest.raises(InvalidRecord, match="is not below 1,000,000,000,000"):
            to_order_row({**base, "amount": too_big}, SHANGHAI)


def test_users_validate_contacts_and_flags() -> None:
    raw = {
        "user_id": "u1",
        "signup_at": "2026-01-01T00:00:00Z",
        "email_opt_in": "0",
        "push_opt_in": "yes",
        "locale": "en",
    }
    row = to_user_row(raw, SHANGHAI, NOW)
    assert (row["email_opt_in"], row["push_opt_in"]) == (False, True)
    assert row["sms_opt_in"] is False  # not given: no consent
    assert to_user_row(raw, SHANGHAI, NOW, RecordDefaults(opt_in=True))["sms_opt_in"] is True
    assert row["holdout_bucket"] == holdout_bucket("u1")
    with pytest.raises(InvalidRecord, match="email"):
        to_user_row({**raw, "email": "nope"}, SHANGHAI, NOW)
    with pytest.raises(InvalidRecord, match="timezone"):
        to_user_row({**raw, "timezone": "Nowhere/City"}, SHANGHAI, NOW)
    with pytest.raises(InvalidRecord, match="sms_opt_in: 'maybe' is not a yes/no value"):
        to_user_row({**raw, "sms_opt_in": "maybe"}, SHANGHAI, NOW)


@pytest.mark.parametrize(
    ("tag", "locale"),
    [
        ("en", "en"), ("en-US", "en"), ("en_GB.UTF-8", "en"), ("EN-us", "en"),
        ("zh-CN", "zh-CN"), ("zh_CN", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("zh-cn", "zh-CN"),
        ("zh", "zh-CN"), ("zh-Hans", "zh-CN"), ("zh-SG", "zh-CN"), ("zh-Hans-HK", "zh-CN"),
        ("zh-TW", None), ("zh-Hant", None), ("zh_HK", None), ("zh-Hant-CN", None),
        ("ja", None), ("fr-FR", None), ("", None), ("english", None),
    ],
)  # fmt: skip
def test_language_tags_map_to_the_template_locales(tag: str, locale: str | None) -> None:
    assert template_locale(tag) == locale


def test_a_locale_without_templates_keeps_the_user_in_the_default_locale() -> None:
    raw = {"user_id": "u1", "signup_at": "2026-01-01T00:00:00Z"}
    english = RecordDefaults(locale="en")
    for given, expected in (("ja", "en"), ("zh-TW", "en"), ("zh_CN", "zh-CN"), (7, "en")):
        assert to_user_row({**raw, "locale": given}, SHANGHAI, NOW, english)["locale"] == expected
    assert to_user_row(raw, SHANGHAI, NOW, english)["locale"] == "en"


ZONES = ["Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]
SUFFIXES = ["", "Z", "+00:00", "-00:00", "+08:00", "-05:30", ".123456", ".5+01:00", "+05:45"]


@pytest.mark.parametrize("zone", ZONES)
def test_plain_events_take_the_fast_path_to_the_same_row(zone: str) -> None:
    """The fast path gives exactly the validator's row, or leaves the event to it."""
    tz = ZoneInfo(zone)
    rng = random.Random(zone)
    starts = [dt.datetime(2016, 1, 1) + dt.timedelta(seconds=rng.randrange(12 * 365 * 86400))]
    # Every quarter hour around this zone's DST changes and local midnights.
    for day in (dt.datetime(2026, 3, 7), dt.datetime(2026, 3, 28), dt.datetime(2026, 10, 3)):
        starts += [day + dt.timedelta(minutes=15 * q) for q in range(3 * 96)]
    starts += [starts[0] + dt.timedelta(seconds=rng.randrange(86400)) for _ in range(500)]
    for suffix in SUFFIXES:
        moments = [moment.isoformat() + suffix for moment in starts]
        fast = _same_rows(["e.1:a@b-c_D"] * len(moments), ["u1"] * len(moments),
                          ["app_open"] * len(moments), moments, tz)  # fmt: skip
        # A column of UTC moments takes the fast path whole; other offsets are the reference's.
        assert fast == (len(starts) if suffix in ("", "Z", "+00:00", "-00:00") else 0), suffix
    odd = [
        ("é1", "u1", "x", "2026-01-01T00:00:00"),  # non-ASCII key: the validator's \w accepts it
        ("e1", "u 1", "x", "2026-01-01T00:00:00"),
        ("e1", "u1", "bad\ufffd", "2026-01-01T00:00:00"),
        ("e1", "u1", "nul\x00", "2026-01-01T00:00:00"),
        ("e1", "u1", "half \ud800", "2026-01-01T00:00:00"),
        ("e1", "u1", "", "2026-01-01T00:00:00"),
        ("e1", "u1", "x" * 65, "2026-01-01T00:00:00"),
        ("e1", "u" * 65, "x", "2026-01-01T00:00:00"),
        ("e" * 201, "u1", "x", "2026-01-01T00:00:00"),
        ("e1", "u1", 5, "2026-01-01T00:00:00"),
        (7, "u1", "x", "2026-01-01T00:00:00"),
        ("e1", None, "x", "2026-01-01T00:00:00"),
        ("e1", "u1", "x", " 2026-01-01T00:00:00 "),
        ("e1", "u1", "x", "2026-01-01"),
        ("e1", "u1", "x", "2026-02-30T00:00:00"),
        ("e1", "u1", "x", "1969-12-31T23:00:00"),
        ("e1", "u1", "x", "2101-01-01T00:00:00"),
        ("e1", "u1", "x", "0001-01-01T00:00:00+01:00"),
        ("e1", "u1", "x", "2026-W01-1T00:00:00"),
        ("e1", "u1", "x", 1_700_000_000),
    ]
    for values in odd:
        _same_rows(*([value] for value in values), tz)


def _same_rows(
    event_ids: list[Any], user_ids: list[Any], names: list[Any], moments: list[Any], zone: ZoneInfo
) -> int:
    """Asserts each of the fast path's rows is the validator's or None; returns how many
    took the fast path."""
    rows = plain_events([event_ids, user_ids, names, moments], zone)
    for row, values in zip(
        rows, zip(event_ids, user_ids, names, moments, strict=True), strict=True
    ):
        raw = dict(zip(EVENT_FIELDS, values, strict=True))
        try:
            expected: EventRow | None = event_values(to_event_row(raw, zone))
        except InvalidRecord:
            expected = None
        assert row is None or row == expected, (raw, row, expected)
    return sum(row is not None for row in rows)


def plain_event(values: tuple[Any, ...], zone: ZoneInfo) -> EventRow | None:
    """The validator's row of an event whose values are plainly valid (texts, keys of ASCII
    key characters), else None: what the fast path gives an event of the column's shape."""
    event_id, user_id = values[:2]
    if not all(type(value) is str for value in values) or not _PLAIN_KEY.issuperset(
        event_id + user_id
    ):
        return None
    try:
        return event_values(to_event_row(dict(zip(EVENT_FIELDS, values, strict=True)), zone))
    except InvalidRecord:
        return None


_PLAIN_KEY = frozenset(string.ascii_letters + string.digits + "_.:@-")


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("shape", ["T+00:00", " Z", "T", "T-00:00", "T+08:00"])
def test_plain_events_give_each_event_the_row_plain_event_gives(zone: str, shape: str) -> None:
    """Checked a column at a time, events get exactly `plain_event`'s row, or None where
    `plain_event` would give none or where the moment has another shape than most; odd
    values in any column, anywhere in the batch, are found."""
    tz = ZoneInfo(zone)
    rng = random.Random(f"{zone}{shape}")
    odd_values: list[list[Any]] = [
        ["é1", "e 1", "e\n1", "", "e" * 201, None, 7, "e\ufffd"],
        ["u é", "u\n1", "", "u" * 65, None, 3.5, "u\x00"],
        ["bad\ufffd", "nul\x00", "half \ud800", "", "x" * 65, None, 5, "née", "two\nlines"],
        [
            "2026-13-01T00:00:00+00:00",
            "2026-02-30T00:00:00+00:00",
            "2026-01-01T24:00:00+00:00",
            "2026-01-01T23:60:00+00:00",
            "2026-01-01T23:00:61+00:00",
            "1969-12-31T23:00:00+00:00",
            "2101-01-01T00:00:00+00:00",
            "2026-01-01T00:00:00+08:00",
            "2026-01-01T00:00:00Z",
            "2026-01-01 00:00:00",
            "2026-01-01T00:00:00.5+00:00",
            "2026-01-0100:00:00+00:00",
            "2026-01-01T00:00:00+00:00\n",
            " 2026-01-01T00:00:00+00:00",
            "２026-01-01T00:00:00+00:00",
            None,
            1_700_000_000,
            "",
        ],
    ]
    assert plain_events([[], [], [], []], tz) == []
    separator, suffix = shape[0], shape[1:]
    start = dt.datetime(2026, 3, 1)
    for odd_rate in (0.0, 0.01, 0.3):
        columns: list[list[Any]] = [[], [], [], []]
        for i in range(600):
            moment = start + dt.timedelta(seconds=rng.randrange(300 * 86400))
            values: list[Any] = [
                f"e{i}.{rng.randrange(10**6)}",
                f"u{rng.randrange(50)}",
                rng.choice(["app_open", "purchase", "签到"]),
                moment.isoformat(separator) + suffix,
            ]
            if rng.random() < odd_rate:
                odd_column = rng.randrange(4)
                values[odd_column] = rng.choice(odd_values[odd_column])
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        rows = plain_events(columns, tz)
        expected = [plain_event(values, tz) for values in zip(*columns, strict=True)]
        assert len(rows) == len(expected)
        for row, one in zip(rows, expected, strict=True):
            assert row is None or row == one, (row, one)
        # Left to plain_event as well: other shapes, and names holding a newline.
        also_plain = [
            one is not None and values[3][10:11] + values[3][19:] == shape and "\n" not in values[2]
            for one, values in zip(expected, zip(*columns, strict=True), strict=True)
        ]
        utc = suffix in ("", "Z", "+00:00", "-00:00")
        assert [row is not None for row in rows] == (also_plain if utc else [False] * len(rows))


def test_records_that_are_not_objects_are_set_aside_with_the_rest_loaded() -> None:
    good = {"event_id": "e1", "user_id": "u1", "name": "x", "occurred_at": "2026-01-01T00:00:00"}
    partial = {"event_id": "e2", "user_id": "u1", "occurred_at": "2026-01-01T00:00:00"}
    rows, rejects = validate("events", [good, "e3", ["e4", "u1"], None, partial], {}, SHANGHAI)
    assert [row[0] for row in rows] == ["e1"]
    assert [r.reason for r in rejects] == ["json: not a JSON object"] * 3 + ["name: missing"]
    assert [r.raw for r in rejects][:3] == ['"e3"', '["e4", "u1"]', "null"]
