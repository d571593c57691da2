"""The reference rule per entity: a raw record (already renamed by the source's `mapping`)
to its store row, or `InvalidRecord` naming the field and what is wrong with it.

`to_event_row`, `to_user_row` and `to_order_row` accept every form a source may give and say
what is wrong; `event_values`, `user_values` and `order_values` put their rows in the stores'
text formats (`rows`). Timestamps with an offset are converted to UTC; naive timestamps are
taken as UTC; numbers are epoch seconds. A day is the calendar date in the company's time
zone. The column-at-a-time path (`fast`) must give exactly these rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yunying.sources.validate.days import local_day
from yunying.sources.validate.rows import (
    USER_COLUMNS,
    EventRow,
    InvalidRecord,
    OrderRow,
    Row,
    UserRow,
)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9]{6,20}$")
KEY = re.compile(r"[\w.:@-]{1,200}")
USER_ID_LENGTH = 64  # the stores' user_id columns; other keys take up to 200 characters
MAX_AMOUNT = 10**12  # the stores' amounts: 14 digits, 2 after the point
LOCALES = {"zh-CN", "en"}  # the locales messages have templates in
ORDER_STATUSES = {"paid", "refunded", "cancelled"}


@dataclass(frozen=True)
class RecordDefaults:
    """What a record gets for what the source leaves out (settings `default_locale`,
    `consent.assume_opt_in_when_missing` and `currency`). A missing opt-in flag is no consent,
    unless the company says otherwise; an order without a currency is in the company's."""

    locale: str = "zh-CN"
    opt_in: bool = False
    currency: str = "CNY"


def template_locale(tag: str) -> str | None:
    """The template locale for a language tag, BCP 47 or POSIX ('en-US', 'en_GB.UTF-8',
    'zh-Hans-CN', 'zh_CN'), or None when no template is in its language and script (Chinese
    in traditional characters, 'zh-TW' or 'zh-Hant', is not 'zh-CN')."""
    subtags = tag.split(".")[0].split("@")[0].replace("_", "-").lower().split("-")
    language, rest = subtags[0], set(subtags[1:])
    if language == "en":
        return "en"
    if language == "zh" and "hant" not in rest and ("hans" in rest or not rest & _HANT_REGIONS):
        return "zh-CN"
    return None


_HANT_REGIONS = {"tw", "hk", "mo"}  # where Chinese is written in traditional characters
NO_CONSENT_ASSUMED = RecordDefaults()


def holdout_bucket(user_id: str) -> int:
    """A stable 31-bit hash of the user id (the same on every machine and run)."""
    return holdout_buckets([user_id])[0]


def holdout_buckets(user_ids: Iterable[str]) -> list[int]:
    """`holdout_bucket` of each user id, in one loop."""
    sha256, from_bytes = hashlib.sha256, int.from_bytes
    return [from_bytes(sha256(user.encode()).digest()[:4], "big") & 0x7FFFFFFF for user in user_ids]


def to_user_row(
    raw: Mapping[str, Any],
    zone: ZoneInfo,
    now: dt.datetime,
    defaults: RecordDefaults = NO_CONSENT_ASSUMED,
) -> Row:
    signup_at = _timestamp(raw, "signup_at")
    user_id = _key(raw, "user_id", USER_ID_LENGTH)
    return {
        "user_id": user_id,
        "signup_at": signup_at,
        "signup_day": local_day(signup_at, zone),
        "timezone": time_zone_of(raw.get("timezone"), zone),
        "locale": locale_of(raw.get("locale"), defaults),
        "email": _email(raw.get("email")),
        "phone": _phone(raw.get("phone")),
        "push_token": _text(raw, "push_token", required=False),
        "email_opt_in": flag(raw, "email_opt_in", defaults.opt_in),
        "sms_opt_in": flag(raw, "sms_opt_in", defaults.opt_in),
        "push_opt_in": flag(raw, "push_opt_in", defaults.opt_in),
        "openid": _text(raw, "openid", required=False, max_length=64),
        # WeChat messages need the user's own consent: none recorded means none given.
        "wechat_opt_in": flag(raw, "wechat_opt_in", False),
        "device_hash": _text(raw, "device_hash", required=False, max_length=64),
        "ip_hash": _text(raw, "ip_hash", required=False, max_length=64),
        "referred_by": _text(raw, "referred_by", required=False, max_length=64),
        "holdout_bucket": holdout_bucket(user_id),
        "updated_at": now,
    }


def user_values(row: Row) -> UserRow:
    """A row from `to_user_row` in the stores' text formats."""
    values = [row[column] for column in USER_COLUMNS]
    values[1] = row["signup_at"].isoformat(" ", "microseconds")
    values[2] = row["signup_day"].isoformat()
    values[17] = row["updated_at"].isoformat(" ", "microseconds")
    return tuple(values)


def time_zone_of(value: Any, zone: ZoneInfo) -> str:
    tz_name = _text({"timezone": value}, "timezone", required=False) or zone.key
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRecord("timezone", f"unknown time zone {tz_name!r}") from None
    return tz_name


def locale_of(value: Any, defaults: RecordDefaults) -> str:
    # A locale with no template of its own keeps the user, in the company's default locale.
    return (isinstance(value, str) and template_locale(value)) or defaults.locale


def _email(value: Any) -> str | None:
    email = _text({"email": value}, "email", required=False, max_length=254)
    if email and not EMAIL.match(email):
        raise InvalidRecord("email", "not an email address")
    return email


def _phone(value: Any) -> str | None:
    phone = _text({"phone": value}, "phone", required=False)
    if phone and not PHONE.match(phone):
        raise InvalidRecord("phone", "not a phone number")
    return phone


def to_event_row(raw: Mapping[str, Any], zone: ZoneInfo) -> Row:
    occurred_at = _timestamp(raw, "occurred_at")
    return {
        "event_id": _key(raw, "event_id"),
        "user_id": _key(raw, "user_id", USER_ID_LENGTH),
        "name": _text(raw, "name", required=True, max_length=64),
        "occurred_at": occurred_at,
        "day": local_day(occurred_at, zone),
    }


def event_values(row: Row) -> EventRow:
    """A row from `to_event_row` in the stores' text formats."""
    moment = row["occurred_at"].isoformat(" ", "microseconds")
    return (row["event_id"], row["user_id"], row["name"], moment, row["day"].isoformat())


def to_order_row(
    raw: Mapping[str, Any], zone: ZoneInfo, defaults: RecordDefaults = NO_CONSENT_ASSUMED
) -> Row:
    created_at = _timestamp(raw, "created_at")
    amount = _amount(raw, "amount")
    currency = currency_of(raw.get("currency"), defaults)
    status = status_of(raw.get("status"))
    return {
        "order_id": _key(raw, "order_id"),
        "user_id": _key(raw, "user_id", USER_ID_LENGTH),
        "amount": amount,
        "currency": currency,
        "status": status,
        "created_at": created_at,
        "day": local_day(created_at, zone),
    }


def order_values(row: Row) -> OrderRow:
    """A row from `to_order_row` in the stores' text formats."""
    return (
        row["order_id"],
        row["user_id"],
        str(row["amount"]),
        row["currency"],
        row["status"],
        row["created_at"].isoformat(" ", "microseconds"),
        row["day"].isoformat(),
    )


def currency_of(value: Any, defaults: RecordDefaults) -> str:
    currency = (_text({"currency": value}, "currency", required=False) or defaults.currency).upper()
    if not _CURRENCY.fullmatch(currency):
        raise InvalidRecord("currency", f"{currency!r} is not an ISO 4217 code")
    return currency


def status_of(value: Any) -> str:
    status = _text({"status": value}, "status", required=False) or "paid"
    if status not in ORDER_STATUSES:
        raise InvalidRecord("status", f"{status!r} is not one of {sorted(ORDER_STATUSES)}")
    return status


_CURRENCY = re.compile("[A-Z]{3}")


def parse_timestamp(value: Any) -> dt.datetime:
    """Parse to naive UTC. Raises ValueError with a short reason."""
    if isinstance(value, str) and value:
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO 8601 time ({ISO_EXAMPLE})") from None
    elif isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp out of range: {value!r}") from None
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    offset = moment.utcoffset()
    if offset is not None:
        moment -= offset
        moment = dt.datetime.combine(moment.date(), moment.time())  # cheaper than replace()
    if not 1970 <= moment.year <= 2100:
        raise ValueError(f"timestamp out of range: {value!r}")
    return moment


ISO_EXAMPLE = (
    "like 2026-11-01T08:30:00+08:00; without an offset, in the source's naive_times_in (else UTC)"
)


def _timestamp(raw: Mapping[str, Any], field: str) -> dt.datetime:
    if raw.get(field) in (None, ""):
        raise InvalidRecord(field, "missing")
    try:
        return parse_timestamp(raw[field])
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidRecord(field, f"{exc}") from None


def _key(raw: Mapping[str, Any], field: str, max_length: int = 200) -> str:
    value = raw.get(field)
    if value is None or value == "":
        raise InvalidRecord(field, "missing")
    text = str(value)
    if not KEY.fullmatch(text):
        raise InvalidRecord(field, f"{text[:40]!r} is not a valid key")
    if len(text) > max_length:
        raise InvalidRecord(field, f"longer than {max_length} characters")
    return text


def _text(
    raw: Mapping[str, Any], field: str, *, required: bool, max_length: int = 255
) -> str | None:
    value = raw.get(field)
    if value is None or value == "":
        if required:
            raise InvalidRecord(field, "missing")
        return None
    if not isinstance(value, str):
        raise InvalidRecord(field, f"expected text, got {type(value).__name__}")
    if "\ufffd" in value or not encodable(value):
        raise InvalidRecord(field, "bad text encoding")
    if "\x00" in value:  # PostgreSQL's text cannot hold it
        raise InvalidRecord(field, "contains a NUL character")
    if len(value) > max_length:
        raise InvalidRecord(field, f"longer than {max_length} characters")
    return value


def encodable(text: str) -> bool:
    """False for text no store can hold: a lone surrogate, which JSON's \\ud800 escapes give."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def flag(raw: Mapping[str, Any], field: str, missing: bool) -> bool:
    value = raw.get(field)
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return missing
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "t"):
        return True
    if text in ("0", "false", "no", "n", "f"):
        return False
    raise InvalidRecord(field, f"{value!r} is not a yes/no value")


def _amount(raw: Mapping[str, Any], field: str) -> Decimal:
    value = raw.get(field)
    if value is None or value == "" or isinstance(value, bool):
        raise InvalidRecord(field, "missing")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRecord(field, f"{str(value)[:40]!r} is not a number") from None
    if not amount.is_finite():
        raise InvalidRecord(field, "not a finite number")
    if amount < 0:
        raise InvalidRecord(field, f"negative amount {amount}")
    if amount >= MAX_AMOUNT - Decimal("0.005"):  # it would round to MAX_AMOUNT or more
        raise InvalidRecord(field, f"{str(value)[:40]} is not below {MAX_AMOUNT:,}")
    cents = amount.quantize(Decimal("0.01"))
    # The store keeps whole cents: a fraction of a cent (0.004 would have become 0.00) is
    # refused, not rounded away. A binary float's noise (19.990000000000002) is not one.
    if abs(amount - cents) > _FLOAT_NOISE:
        raise InvalidRecord(field, f"{str(value)[:40]} is not a whole number of cents")
    return cents


_FLOAT_NOISE = Decimal("1e-9")
