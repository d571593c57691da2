"""The column-at-a-time path: many records' rows at once, checked a column at a time.

Contract: for each record, exactly the row the reference rule (`rules`) gives in the stores'
formats, or None, which leaves that record to the reference (an odd type or shape, anywhere
in the batch). The path never rejects: what is wrong with a record the reference says. Each
column is checked whole by C-level string operations, and only a column that holds an odd
value is looked at value by value to find it: most of a pull's Python time goes here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from functools import partial
from itertools import compress, count, repeat
from operator import is_, itemgetter, not_
from typing import Any
from zoneinfo import ZoneInfo

from yunying.sources.validate.days import local_days
from yunying.sources.validate.rows import USER_COLUMNS, EventRow, InvalidRecord, OrderRow, UserRow
from yunying.sources.validate.rules import (
    USER_ID_LENGTH,
    RecordDefaults,
    currency_of,
    encodable,
    flag,
    holdout_buckets,
    locale_of,
    status_of,
    time_zone_of,
)


def plain_events(columns: Sequence[Sequence[Any]], zone: ZoneInfo) -> list[EventRow | None]:
    """The rows of many events, given as the columns of EVENT_FIELDS: for each event exactly
    `event_values(to_event_row(...))`, or None unless its values are plainly valid (ASCII
    keys, a text name) with a UTC timestamp in the column's most common shape."""
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
    currency, odd_currencies = _by_value(currencies, lambda value: currency_of(value, defaults))
    status, odd_statuses = _by_value(statuses, status_of)
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
        (zones, lambda value: time_zone_of(value, zone)),
        (locales, lambda value: locale_of(value, defaults)),
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


def _flag_of(field: str, missing: bool, value: Any) -> bool:
    return flag({field: value}, field, missing)


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
    return stored, local_days(stored, zone), odd


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
    if not (text.isascii() or encodable(text)):
        odd |= _where(map(not_, map(encodable, texts)))
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
    if not (text.isascii() or encodable(text)):
        odd |= _where(map(not_, map(encodable, names)))
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
