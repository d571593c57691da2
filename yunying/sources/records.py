"""Validate raw source records into store rows.

Each `to_*_row` takes a raw mapping (already renamed by the source's `mapping`) and returns a
row for the store, or raises `InvalidRecord` with a reason a person can act on. Timestamps
with an offset are converted to UTC; naive timestamps are taken as UTC; numbers are epoch
seconds. `day` is the calendar date in the company's time zone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import partial
from itertools import compress, count, repeat
from operator import is_, itemgetter, not_
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yunying.errors import PermanentError

Row = dict[str, Any]
# An event as both stores take it, in the order of EVENT_COLUMNS: occurred_at as UTC
# 'YYYY-MM-DD HH:MM:SS.ffffff' and day as 'YYYY-MM-DD' in the company's time zone.
EventRow = tuple[str, str, str, str, str]
EVENT_COLUMNS = ("event_id", "user_id", "name", "occurred_at", "day")
# A user and an order the same way, in the order of USER_COLUMNS and ORDER_COLUMNS: moments as
# UTC 'YYYY-MM-DD HH:MM:SS.ffffff', days as 'YYYY-MM-DD', an amount as its text in cents.
UserRow = tuple[
    str, str, str, str, str, str | None, str | None, str | None, bool, bool, bool, str | None,
    bool, str | None, str | None, str | None, int, str,
]  # fmt: skip
OrderRow = tuple[str, str, str, str, str, str, str]
StoreRow = EventRow | UserRow | OrderRow
USER_COLUMNS = (
    "user_id", "signup_at", "signup_day", "timezone", "locale", "email", "phone", "push_token",
    "email_opt_in", "sms_opt_in", "push_opt_in", "openid", "wechat_opt_in", "device_hash",
    "ip_hash", "referred_by", "holdout_bucket", "updated_at",
)  # fmt: skip
ORDER_COLUMNS = ("order_id", "user_id", "amount", "currency", "status", "created_at", "day")

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9]{6,20}$")
KEY = re.compile(r"[\w.:@-]{1,200}")
USER_ID_LENGTH = 64  # the stores' user_id columns; other keys take up to 200 characters
MAX_AMOUNT = 10**12  # the stores' amounts: 14 digits, 2 after the point
LOCALES = {"zh-CN", "en"}  # the locales messages have templates in
ORDER_STATUSES = {"paid", "refunded", "cancelled"}


class InvalidRecord(PermanentError):
    """A source record that cannot be loaded, for what is wrong with one field; the message
    ("<field>: <why>") is stored as the reason."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field, self.why = field, why


class Rejected(NamedTuple):
    """A record set aside: its raw form (JSON, or the text that could not be read), the field
    it failed on ("csv", "json" or "file" when it is no record at all) and the reason."""

    raw: str
    field: str
    why: str

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.why}"


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
        "timezone": _time_zone(raw.get("timezone"), zone),
        "locale": _locale(raw.get("locale"), defaults),
        "email": _email(raw.get("email")),
        "phone": _phone(raw.get("phone")),
        "push_token": _text(raw, "push_token", required=False),
        "email_opt_in": _flag(raw, "email_opt_in", defaults.opt_in),
        "sms_opt_in": _flag(raw, "sms_opt_in", defaults.opt_in),
        "push_opt_in": _flag(raw, "push_opt_in", defaults.opt_in),
        "openid": _text(raw, "openid", required=False, max_length=64),
        # WeChat messages need the user's own consent: none recorded means none given.
        "wechat_opt_in": _flag(raw, "wechat_opt_in", False),
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


def _time_zone(value: Any, zone: ZoneInfo) -> str:
    tz_name = _text({"timezone": value}, "timezone", required=False) or zone.key
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRecord("timezone", f"unknown time zone {tz_name!r}") from None
    return tz_name


def _locale(value: Any, defaults: RecordDefaults) -> str:
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


def plain_event(values: Sequence[Any], zone: ZoneInfo) -> EventRow | None:
    """The row of an event given as (event_id, user_id, name, occurred_at) whose values are
    plainly valid (ASCII keys, a text name, an ISO timestamp text), or None to leave the event
    to `to_event_row`, which accepts more forms and says what is wrong. The same values as
    `event_values(to_event_row(...))` at a third of the cost: a large pull spends most of its
    Python time here."""
    event_id, user_id, name, occurred_at = values
    if not (
        type(event_id) is str
        and type(user_id) is str
        and type(name) is str
        and type(occurred_at) is str
        and 0 < len(event_id) <= 200
        and 0 < len(user_id) <= USER_ID_LENGTH
        and 0 < len(name) <= 64
        and _KEY_CHARS.issuperset(event_id)
        and _KEY_CHARS.issuperset(user_id)
        and "\ufffd" not in name
        and "\x00" not in name
        and (name.isascii() or _encodable(name))
    ):
        return None
    try:
        if (  # already UTC, as 'YYYY-MM-DD?HH:MM:SS': the text is the stored one
            occurred_at[19:] in _UTC_SUFFIXES
            and len(occurred_at) >= 19
            and occurred_at[4] == occurred_at[7] == "-"
            and occurred_at[13] == occurred_at[16] == ":"
            and occurred_at[10] in "T "
        ):
            dt.datetime.fromisoformat(occurred_at[:19])  # a real date and time?
            text = f"{occurred_at[:10]} {occurred_at[11:19]}.000000"
            if not "1970" <= text[:4] <= "2100":
                return None
        else:
            text = parse_timestamp(occurred_at).isoformat(" ", "microseconds")
    except (ValueError, OverflowError):
        return None
    return event_id, user_id, name, text, _stored_day(text, zone)


def plain_events(columns: Sequence[Sequence[Any]], zone: ZoneInfo) -> list[EventRow | None]:
    """The rows of many events, given as four columns (event_id, user_id, name, occurred_at),
    with None for each event that is not plainly valid with a UTC timestamp of the most
    common shape (left to `plain_event` and `to_event_row`). The same rows as `plain_event`
    for less work a row, as most of a pull's Python time goes here: each column is checked whole
    by C-level string operations, and only a column that holds an odd value is looked at
    value by value to find it."""
    if not columns[0]:
        return []
    ids, odd_ids = _odd_keys(columns[0], 200)
    users, odd_users = _odd_keys(columns[1], USER_ID_LENGTH)
    names, odd_names = _odd_names(columns[2])
    stored, days, odd_moments = _moments(columns[3], zone)
    rows: list[EventRow | None] = list(zip(ids, users, names, stored, days, strict=True))
    for i in odd_ids | odd_users | odd_names | odd_moments:
        rows[i] = None
    return rows


def plain_orders(
    columns: Sequence[Sequence[Any]], zone: ZoneInfo, defaults: RecordDefaults
) -> list[OrderRow | None]:
    """The rows of many orders, given as the columns of FIELDS["orders"], as `plain_events`
    gives events': for each order exactly `order_values(to_order_row(...))`, or None to leave
    it to `to_order_row` (any value of an odd type or shape, anywhere in the batch)."""
    if not columns[0]:
        return []
    order_ids, user_ids, amounts, currencies, statuses, created = columns
    ids, odd = _odd_keys(order_ids, 200)
    users, odd_users = _odd_keys(user_ids, USER_ID_LENGTH)
    cents, odd_amounts = _cents(amounts)
    currency, odd_currencies = _by_value(currencies, lambda value: _currency(value, defaults))
    status, odd_statuses = _by_value(statuses, _status)
    stored, days, odd_moments = _moments(created, zone)
    rows: list[OrderRow | None] = list(
        zip(ids, users, cents, currency, status, stored, days, strict=True)
    )
    for i in odd | odd_users | odd_amounts | odd_currencies | odd_statuses | odd_moments:
        rows[i] = None
    return rows


def plain_users(
    columns: Sequence[Sequence[Any]], zone: ZoneInfo, now: dt.datetime, defaults: RecordDefaults
) -> list[UserRow | None]:
    """The rows of many users, given as the columns of FIELDS["users"], as `plain_orders`
    gives orders': exactly `user_values(to_user_row(...))`, or None."""
    if not columns[0]:
        return []
    (user_ids, signups, zones, locales, emails, phones, push_tokens, email_ok, sms_ok, push_ok,
     devices, ips, referrers, openids, wechat_ok) = columns  # fmt: skip
    ids, odd = _odd_keys(user_ids, USER_ID_LENGTH)
    stored, days, odd_signups = _moments(signups, zone)
    odd |= odd_signups
    picked: list[Sequence[Any]] = [ids, stored, days]
    for column, rule in (
        (zones, lambda value: _time_zone(value, zone)),
        (locales, lambda value: _locale(value, defaults)),
    ):
        values, odd_values = _by_value(column, rule)
        picked.append(values)
        odd |= odd_values
    for column, limit, lines in ((emails, 254, _EMAILS), (phones, 255, _PHONES)):
        values, odd_values = _optional_texts(column, limit, lines)
        picked.append(values)
        odd |= odd_values
    texts = {"push_token": 255, "openid": 64, "device_hash": 64, "ip_hash": 64, "referred_by": 64}
    flags = {"email_opt_in": defaults.opt_in, "sms_opt_in": defaults.opt_in}
    flags |= {"push_opt_in": defaults.opt_in, "wechat_opt_in": False}
    given = dict(zip(("push_token", "email_opt_in", "sms_opt_in", "push_opt_in", "device_hash",
                      "ip_hash", "referred_by", "openid", "wechat_opt_in"),
                     (push_tokens, email_ok, sms_ok, push_ok, devices, ips, referrers, openids,
                      wechat_ok), strict=True))  # fmt: skip
    for name in USER_COLUMNS[7:16]:
        if name in texts:
            values, odd_values = _optional_texts(given[name], texts[name])
        else:
            values, odd_values = _by_value(given[name], partial(_flag_of, name, flags[name]))
        picked.append(values)
        odd |= odd_values
    picked += [holdout_buckets(ids), [now.isoformat(" ", "microseconds")] * len(ids)]
    rows: list[UserRow | None] = list(zip(*picked, strict=True))
    for i in odd:
        rows[i] = None
    return rows


def _moments(column: Sequence[Any], zone: ZoneInfo) -> tuple[list[str], list[str], set[int]]:
    """The stored UTC text and local day of each moment of a column, and where a moment is
    odd (not 'YYYY-MM-DD?HH:MM:SS' in UTC in the column's most common shape)."""
    moments, odd, suffix = _odd_moments(column)
    # Plain moments are 'YYYY-MM-DD?HH:MM:SS<suffix>': the stored text replaces the separator
    # (their only T) and the suffix. No moment holds a newline by now, so the split keeps
    # each row in its place.
    stored = (
        ("\n".join(moments) + "\n")
        .replace("T", " ")
        .replace(f"{suffix}\n", ".000000\n")
        .split("\n")
    )
    stored.pop()
    return stored, _local_days(stored, zone), odd


_ODD = object()  # a value its field's rule refuses
_RULED_TYPES = frozenset((str, type(None), bool, int))
_TEXT_TYPES = frozenset((str, type(None)))


def _by_value(column: Sequence[Any], rule: Callable[[Any], Any]) -> tuple[list[Any], set[int]]:
    """Each value through `rule` (the reference's rule for its field), applied once per
    distinct value: a column of few values (time zones, flags) costs a lookup a row. Where
    the rule raises InvalidRecord, or a value is of a type whose equal values differ in
    text (1.0 and 1, Decimal('1.0')), the row is odd."""
    if _TEXT_TYPES.issuperset(map(type, column)):  # the usual column: values are their keys
        keys: Sequence[Any] = column
    elif _RULED_TYPES.issuperset(map(type, column)):
        keys = list(zip(map(type, column), column, strict=True))
    else:  # a float, a JSON list or object: every row left to the reference
        return [None] * len(column), set(range(len(column)))
    outcomes: dict[Any, Any] = {}
    for key in set(keys):
        try:
            outcomes[key] = rule(key if keys is column else key[1])
        except InvalidRecord:
            outcomes[key] = _ODD
    values = list(map(outcomes.__getitem__, keys))
    return values, _where(map(is_, values, repeat(_ODD)))


def _optional_texts(
    column: Sequence[Any], limit: int, lines: re.Pattern[str] | None = None
) -> tuple[list[str | None], set[int]]:
    """The column as `_text` keeps an optional field (None for no value), and where a value
    is odd: no text, too long, not storable, or not a line `lines` matches."""
    if column.count(None) == len(column):  # a field the source leaves out
        return [None] * len(column), set()
    with suppress(TypeError):  # unless a value is a JSON list or object, found as no text
        column = list(map(_NO_VALUE.get, column, column))
    texts, odd = _texts(column)
    if max(map(len, texts), default=0) > limit:
        odd |= _where(map(limit.__lt__, map(len, texts)))
    text = "\n".join(texts) + "\n"
    for needle in ("\ufffd", "\x00"):
        if needle in text:
            odd |= _lines_holding(text, needle)
    if not (text.isascii() or _encodable(text)):
        odd |= _where(map(not_, map(_encodable, texts)))
    if lines is not None:
        odd |= _unmatched_lines(lines, text)
    return list(map(_NO_TEXT.get, texts, texts)), odd


_NO_TEXT: dict[Any, None] = {"": None}
_NO_VALUE = {None: ""}
# Whole lines: an optional email or phone as the validator accepts it, or none.
_EMAILS = re.compile(r"(?:(?:[^@\s]+@[^@\s]+\.[^@\s]+)?\n)*")
_PHONES = re.compile(r"(?:(?:\+?[0-9]{6,20})?\n)*")
# Whole lines: an amount in plain decimal, below MAX_AMOUNT, in whole cents.
_AMOUNTS = re.compile(r"(?:(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?\n)*")


def _cents(column: Sequence[Any]) -> tuple[list[str], set[int]]:
    """Amounts as the stored text with two decimals, and where one is odd (no text, or
    not plainly a decimal amount in whole cents below MAX_AMOUNT)."""
    texts, odd = _texts(column)
    odd |= _unmatched_lines(_AMOUNTS, "\n".join(texts) + "\n")
    cents = [
        amount if amount[-3:-2] == "." else amount + "0" if amount[-2:-1] == "." else amount + ".00"
        for amount in texts
    ]
    return cents, odd


def _where(flags: Iterable[object]) -> set[int]:
    """The indices of the true flags, found in C."""
    return set(compress(count(), flags))


def _texts(column: Sequence[Any]) -> tuple[Sequence[str], set[int]]:
    """The column with "" in place of what is no text or holds a newline (which the checks
    use as a separator), and where those were."""
    odd: set[int] = set()
    try:
        text = "".join(column)
    except TypeError:
        odd = _where(map(not_, map(str.__instancecheck__, column)))
        column = _blanked(column, odd)
        text = "".join(column)
    if "\n" in text:
        newlines = _where(map(str.__contains__, column, repeat("\n")))
        column = _blanked(column, newlines)
        odd |= newlines
    return column, odd


def _blanked(column: Sequence[Any], where: set[int]) -> list[Any]:
    blanked = list(column)
    for i in where:
        blanked[i] = ""
    return blanked


def _odd_lengths(column: Sequence[str], limit: int) -> set[int]:
    lengths = list(map(len, column))
    if min(lengths, default=1) > 0 and max(lengths, default=0) <= limit:
        return set()
    return _where(map(not_, map(range(1, limit + 1).__contains__, lengths)))


def _odd_keys(column: Sequence[Any], limit: int) -> tuple[Sequence[str], set[int]]:
    keys, odd = _texts(column)
    odd |= _odd_lengths(keys, limit)
    text = "".join(keys)
    if not text.isascii() or text.encode().translate(None, _KEY_BYTES):
        odd |= _where(map(not_, map(_KEY_CHARS.issuperset, keys)))
    return keys, odd


def _odd_names(column: Sequence[Any]) -> tuple[Sequence[str], set[int]]:
    names, odd = _texts(column)
    odd |= _odd_lengths(names, 64)
    text = "\n".join(names)
    for needle in ("\ufffd", "\x00"):
        if needle in text:
            odd |= _lines_holding(text, needle)
    if not (text.isascii() or _encodable(text)):
        odd |= _where(map(not_, map(_encodable, names)))
    return names, odd


def _odd_moments(column: Sequence[Any]) -> tuple[Sequence[str], set[int], str]:
    """The column as text; where its moments are not real dates (1970-2100) and times as
    'YYYY-MM-DD?HH:MM:SS' in UTC, in the shape most of them have; and that shape's suffix."""
    moments, odd = _texts(column)
    samples = [moments[i][10:11] + moments[i][19:] for i in range(0, len(moments), 97)]
    plain = [sample for sample in samples if sample in _UTC_SHAPES] or ["T"]
    shape = max(plain, key=plain.count)
    text = "\n".join(moments) + "\n"
    odd |= _unmatched_lines(_UTC_SHAPES[shape], text)
    for date in set(map(itemgetter(slice(0, 10)), moments)):
        if date and not _real_date(date):
            odd |= _lines_holding(f"\n{text}", f"\n{date}")
    return moments, odd, shape[1:]


def _unmatched_lines(lines: re.Pattern[str], text: str) -> set[int]:
    """The numbers of the lines of `text` that `lines` (a pattern of whole lines) does not
    match: one regular expression over the text, resumed after each such line."""
    odd: set[int] = set()
    position = line = 0
    while (stop := lines.match(text, position).end()) < len(text):  # type: ignore[union-attr]
        line += text.count("\n", position, stop)
        odd.add(line)
        position, line = text.index("\n", stop) + 1, line + 1
    return odd


def _lines_holding(text: str, needle: str) -> set[int]:
    """The numbers of the lines of `text` in which `needle` starts."""
    lines: set[int] = set()
    position = line = 0
    found = text.find(needle)
    while found != -1:
        line += text.count("\n", position, found)
        lines.add(line)
        position, found = found, text.find(needle, found + 1)
    return lines


def _real_date(date: str) -> bool:
    """Whether `date` is 'YYYY-MM-DD', a real date from 1970 to 2100."""
    if len(date) != 10 or date[4] != "-" or date[7] != "-":
        return False
    try:
        dt.date.fromisoformat(date)
    except ValueError:
        return False
    return "1970" <= date[:4] <= "2100"


def _local_days(stored: Sequence[str], zone: ZoneInfo) -> list[str]:
    """The local date in `zone` of each stored UTC text, looked up by its UTC hour; in the
    rare hour in which the local date turns (a zone offset by a half or quarter hour), by
    the time of day."""
    hours = _HOUR_DAYS.get(zone) or _HOUR_DAYS.setdefault(zone, {})
    if len(hours) > 200_000:
        hours.clear()
    by_hour = list(map(itemgetter(slice(0, 13)), stored))
    seen = set(by_hour)
    for hour in seen.difference(hours):
        hours[hour] = _hour_day(hour, zone)
    days = list(map(hours.__getitem__, by_hour))
    if any(hours[hour] is _TURNS_WITHIN for hour in seen):
        for i, day in enumerate(days):
            if day is _TURNS_WITHIN:
                days[i] = _stored_day(stored[i], zone)
    return days


def _hour_day(hour: str, zone: ZoneInfo) -> str:
    """The local date of every moment in a UTC hour ('YYYY-MM-DD HH'), or _TURNS_WITHIN."""
    if not _real_date(hour[:10]):  # an odd event's, which is not kept
        return ""
    split = _split(hour[:10], zone)
    if f"{hour[11:]}:00:00" >= split[0]:
        return split[2]
    if f"{hour[11:]}:59:59.999999" < split[0]:
        return split[1]
    return _TURNS_WITHIN


_KEY_CHARS_TEXT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-"
_KEY_CHARS = frozenset(_KEY_CHARS_TEXT)
_UTC_SUFFIXES = frozenset(("", "Z", "+00:00", "-00:00"))
_KEY_BYTES = _KEY_CHARS_TEXT.encode()
# Per separator and suffix: a column of such moments, one per line, real times of day.
_UTC_SHAPES = {
    separator + suffix: re.compile(
        f"(?:[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}{separator}(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
        f"{re.escape(suffix)}\n)*"
    )
    for separator in "T "
    for suffix in _UTC_SUFFIXES
}
_TURNS_WITHIN = "turns within the hour"
_HOUR_DAYS: dict[ZoneInfo, dict[str, str]] = {}
# Per zone and UTC date: the UTC time at which the local date turns, and the local dates
# before and after it.
_DAY_SPLITS: dict[ZoneInfo, dict[str, tuple[str, str, str]]] = {}


def _stored_day(text: str, zone: ZoneInfo) -> str:
    """The local date in `zone` of a stored UTC text ('YYYY-MM-DD HH:MM:SS.ffffff')."""
    split = _split(text[:10], zone)
    return split[2] if text[11:] >= split[0] else split[1]


def _split(date: str, zone: ZoneInfo) -> tuple[str, str, str]:
    splits = _DAY_SPLITS.get(zone) or _DAY_SPLITS.setdefault(zone, {})
    return splits.get(date) or _day_split(splits, date, zone)


def _day_split(
    splits: dict[str, tuple[str, str, str]], date: str, zone: ZoneInfo
) -> tuple[str, str, str]:
    if len(splits) > 100_000:
        splits.clear()
    midnight = dt.datetime.fromisoformat(date)
    before = local_day(midnight, zone)
    split = ("99", before.isoformat(), before.isoformat())
    quarters: Iterable[int] = range(1, 96)  # the local date turns on a UTC quarter hour
    offset = _offset(midnight, zone)
    if offset == _offset(midnight + dt.timedelta(minutes=15 * 95), zone):
        # One offset all day: the date turns at local midnight, the one quarter worth trying
        # when the quarters on either side of it say so (else all are tried).
        quarter = (-offset % dt.timedelta(days=1)) // dt.timedelta(minutes=15)
        if 0 < quarter < 96 and local_day(
            midnight + dt.timedelta(minutes=15 * (quarter - 1)), zone
        ) == before != local_day(midnight + dt.timedelta(minutes=15 * quarter), zone):
            quarters = (quarter,)
    for quarter in quarters:
        moment = midnight + dt.timedelta(minutes=15 * quarter)
        after = local_day(moment, zone)
        if after != before:
            split = (moment.time().isoformat(), before.isoformat(), after.isoformat())
            break
    splits[date] = split
    return split


def _offset(moment: dt.datetime, zone: ZoneInfo) -> dt.timedelta:
    """The offset of `zone` at a naive UTC moment."""
    return moment.replace(tzinfo=dt.UTC).astimezone(zone).utcoffset() or dt.timedelta()


def to_order_row(
    raw: Mapping[str, Any], zone: ZoneInfo, defaults: RecordDefaults = NO_CONSENT_ASSUMED
) -> Row:
    created_at = _timestamp(raw, "created_at")
    amount = _amount(raw, "amount")
    currency = _currency(raw.get("currency"), defaults)
    status = _status(raw.get("status"))
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


def _currency(value: Any, defaults: RecordDefaults) -> str:
    currency = (_text({"currency": value}, "currency", required=False) or defaults.currency).upper()
    if not _CURRENCY.fullmatch(currency):
        raise InvalidRecord("currency", f"{currency!r} is not an ISO 4217 code")
    return currency


def _status(value: Any) -> str:
    status = _text({"status": value}, "status", required=False) or "paid"
    if status not in ORDER_STATUSES:
        raise InvalidRecord("status", f"{status!r} is not one of {sorted(ORDER_STATUSES)}")
    return status


_CURRENCY = re.compile("[A-Z]{3}")


def local_day(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The calendar date in `zone` of a naive UTC moment.

    Every time zone changes its offset on a quarter hour, so the date is the same for a whole
    UTC quarter hour and is looked up per quarter (converting each moment costs far more)."""
    quarter = moment.toordinal() * 96 + moment.hour * 4 + moment.minute // 15
    dates = _LOCAL_DATES.setdefault(zone.key, {})
    date = dates.get(quarter)
    if date is None:
        if len(dates) > 500_000:
            dates.clear()
        start = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
        date = dates[quarter] = start.replace(tzinfo=dt.UTC).astimezone(zone).date()
    return date


_LOCAL_DATES: dict[str, dict[int, dt.date]] = {}


def parse_timestamp(value: Any) -> dt.datetime:
    """Parse to naive UTC. Raises ValueError with a short reason."""
    if isinstance(value, str) and value:
        moment = dt.datetime.fromisoformat(value.strip())
    elif isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = dt.datetime.fromtimestamp(value, dt.UTC)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    offset = moment.utcoffset()
    if offset is not None:
        moment -= offset
        moment = dt.datetime.combine(moment.date(), moment.time())  # cheaper than replace()
    if not 1970 <= moment.year <= 2100:
        raise ValueError(f"timestamp out of range: {value!r}")
    return moment


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
    if "\ufffd" in value or not _encodable(value):
        raise InvalidRecord(field, "bad text encoding")
    if "\x00" in value:  # PostgreSQL's text cannot hold it
        raise InvalidRecord(field, "contains a NUL character")
    if len(value) > max_length:
        raise InvalidRecord(field, f"longer than {max_length} characters")
    return value


def _encodable(text: str) -> bool:
    """False for text no store can hold: a lone surrogate, which JSON's \\ud800 escapes give."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _flag_of(field: str, missing: bool, value: Any) -> bool:
    return _flag({field: value}, field, missing)


def _flag(raw: Mapping[str, Any], field: str, missing: bool) -> bool:
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
