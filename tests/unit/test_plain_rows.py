"""The column-at-a-time paths for users and orders against the reference rules: each row is
exactly the reference's row in the stores' formats, or None (left to the reference)."""

import datetime as dt
import random
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from yunying.sources.config import FIELDS
from yunying.sources.validate.fast import plain_orders, plain_users
from yunying.sources.validate.rows import InvalidRecord
from yunying.sources.validate.rules import (
    RecordDefaults,
    order_values,
    to_order_row,
    to_user_row,
    user_values,
)

NOW = dt.datetime(2026, 11, 1, 3, 4, 5, 678)
ZONES = ["Asia/Shanghai", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]
DEFAULTS = [RecordDefaults(), RecordDefaults(locale="en", opt_in=True, currency="usd")]

MOMENTS = [
    "2026-13-01T00:00:00+00:00",  # bad dates and times
    "2026-02-30T00:00:00+00:00",
    "2026-01-01T24:00:00+00:00",
    "1969-12-31T23:00:00+00:00",
    "2101-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00",  # naive, other shapes and offsets
    "2026-01-01 00:00:00",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00+08:00",
    "2026-03-08T07:00:00-05:00",
    "2026-01-01T00:00:00.5+00:00",
    "2026-01-01",
    " 2026-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00+00:00\n",
    "２026-01-01T00:00:00+00:00",
    1_700_000_000,
    None,
    "",
]
KEYS = ["a:b", "o:1@x.y-z_", "é1", "k 1", "k\n1", "", None, 7, "k" * 65, "k" * 201, "k\ufffd"]


def _moment(rng: random.Random, shape: str) -> str:
    # Around DST changes and local midnights as well as anywhere in ten years.
    if rng.random() < 0.5:
        day = rng.choice(
            [dt.datetime(2026, 3, 8), dt.datetime(2026, 4, 5), dt.datetime(2026, 11, 1)]
        )
        moment = day + dt.timedelta(minutes=15 * rng.randrange(-96, 96))
    else:
        moment = dt.datetime(2016, 1, 1) + dt.timedelta(seconds=rng.randrange(10 * 365 * 86400))
    return moment.isoformat(shape[0]) + shape[1:]


def _same(
    plain: list[Any],
    columns: list[list[Any]],
    fields: tuple[str, ...],
    reference: Callable[..., Any],
) -> int:
    """Asserts each plain row is the reference's or None; returns how many were plain."""
    assert len(plain) == len(columns[0])
    for row, values in zip(plain, zip(*columns, strict=True), strict=True):
        raw: Mapping[str, Any] = dict(zip(fields, values, strict=True))
        try:
            expected = reference(raw)
        except InvalidRecord:
            expected = None
        assert row is None or row == expected, (raw, row, expected)
    return sum(row is not None for row in plain)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("defaults", DEFAULTS)
@pytest.mark.parametrize("shape", ["T+00:00", " Z", "T"])
def test_plain_orders_are_the_reference_rows(
    zone: str, defaults: RecordDefaults, shape: str
) -> None:
    tz = ZoneInfo(zone)
    rng = random.Random(f"{zone}{shape}{defaults}")
    odd: list[list[Any]] = [
        KEYS,
        [*KEYS[:-2], "u" * 65],
        ["0.004", "1.005", "-1", "1e3", "00.5", "5.", ".5", "1,5", "NaN", "Infinity",
         "999999999999.99", "1000000000000", "0", "0.0", "0.1", 12.5, 3, 0.1 + 0.2, True, None, "",
         " 5", "5\n", "١٢"],
        ["usd", "US", "EURO", "", None, 5, "ＵSD", "u\x00d", "€€€"],
        ["refunded", "cancelled", "PAID", "void", "", None, 1],
        MOMENTS,
    ]  # fmt: skip
    reference = lambda raw: order_values(to_order_row(raw, tz, defaults))  # noqa: E731
    for odd_rate in (0.0, 0.05, 0.5):
        columns: list[list[Any]] = [[] for _ in FIELDS["orders"]]
        for i in range(400):
            values = [
                f"o{i}:{rng.randrange(50)}" if rng.random() < 0.9 else f"o{rng.randrange(5)}",
                f"u{rng.randrange(50)}",
                rng.choice(["1", "19.9", "20.00", "0.5", "123456.78", "0"]),
                rng.choice(["CNY", "usd", None, ""]),
                rng.choice(["paid", "refunded", None]),
                _moment(rng, shape),
            ]
            if rng.random() < odd_rate:
                field = rng.randrange(len(values))
                values[field] = rng.choice(odd[field])
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        plain = _same(plain_orders(columns, tz, defaults), columns, FIELDS["orders"], reference)
        if odd_rate == 0.0 and shape != "T":
            assert plain == len(columns[0])
    missing: list[list[Any]] = [["o1"], ["u1"], [None], [None], [None], ["2026-01-01T00:00"]]
    _same(plain_orders(missing, tz, defaults), missing, FIELDS["orders"], reference)
    assert plain_orders([[] for _ in FIELDS["orders"]], tz, defaults) == []


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("defaults", DEFAULTS)
def test_plain_users_are_the_reference_rows(zone: str, defaults: RecordDefaults) -> None:
    tz = ZoneInfo(zone)
    rng = random.Random(f"{zone}{defaults}")
    odd: dict[str, list[Any]] = {
        "user_id": [*KEYS[:-2], "u" * 65],
        "signup_at": MOMENTS,
        "timezone": ["Mars/Olympus", "", None, "UTC", "asia/shanghai", 8, "../etc", "Asia/Tokyo"],
        "locale": ["ja", "zh-TW", "zh_CN", "en-US", "", None, 7, "zh-Hant"],
        "email": ["no-at", "a@b", "a b@c.d", "a@b.c\n", "é@例え.jp", "a@b.c" + "x" * 260, "", None,
                  5, "a\x00@b.c", "a\ufffd@b.c", "\ud800@b.c"],
        "phone": ["12345", "+8613800000000", "++123456", "１２３４５６７", "", None, 13800000000],
        "push_token": ["t" * 256, "tab\there", "line\nbreak", "", None, 5, "ok\ud800"],
        "email_opt_in": ["yes", "no", "Y", "maybe", 2, 1, 0, True, "", None, 1.0, " true ",
                         Decimal("1"), Decimal("1.0")],
        "device_hash": ["d" * 65, "", None, "ok"],
        "referred_by": ["r" * 65, "", None, "u:1"],
        "openid": ["o" * 65, "", None, "oid"],
        "wechat_opt_in": ["1", "0", "x", None, True],
    }  # fmt: skip
    odd["sms_opt_in"] = odd["push_opt_in"] = odd["email_opt_in"]
    odd["ip_hash"] = odd["device_hash"]
    reference = lambda raw: user_values(to_user_row(raw, tz, NOW, defaults))  # noqa: E731
    fields = FIELDS["users"]
    for odd_rate in (0.0, 0.05, 0.5):
        columns: list[list[Any]] = [[] for _ in fields]
        for i in range(400):
            values: dict[str, Any] = {
                "user_id": f"u{i}:{rng.randrange(9)}" if rng.random() < 0.9 else "u0:0",
                "signup_at": _moment(rng, "T+00:00"),
                "timezone": rng.choice(["Asia/Shanghai", "America/New_York", None]),
                "locale": rng.choice(["zh-CN", "en", None]),
                "email": rng.choice([f"u{i}@example.com", f"用户{i}@例子.中国", None]),
                "phone": rng.choice([f"+86138{i:08d}", None]),
                "push_token": rng.choice([f"tok{i}", None]),
                "email_opt_in": rng.choice([1, 0, None]),
                "sms_opt_in": rng.choice(["true", "false", None]),
                "push_opt_in": rng.choice([True, False]),
                "device_hash": rng.choice([f"d{i}", None]),
                "ip_hash": f"ip{i}",
                "referred_by": None,
                "openid": None,
                "wechat_opt_in": None,
            }
            if rng.random() < odd_rate:
                field = rng.choice(list(odd))
                values[field] = rng.choice(odd[field])
            for column, field in zip(columns, fields, strict=True):
                column.append(values[field])
        plain = _same(plain_users(columns, tz, NOW, defaults), columns, fields, reference)
        if odd_rate == 0.0:
            assert plain == len(columns[0])
    missing: list[list[Any]] = [["u1"], ["2026-01-01T00:00:00+00:00"]] + [[None]] * 13
    _same(plain_users(missing, tz, NOW, defaults), missing, fields, reference)
    assert plain_users([[] for _ in fields], tz, NOW, defaults) == []
