"""Segment files (人群, `deployments/segments/*.toml`) parsed into a tree of conditions.

A file has a `name`, an optional `description` and one condition under `where`. A condition
is a table with exactly one key:

    all / any = [conditions]      not = condition      segment = "other-segment"
    state = ["silent", ...]       days_in_state = {min, max}
    tier = ["high", ...]          recency_score / frequency_score / monetary_score = {min, max}
    locale = [...]                timezone = [...]      reachable = ["email", ...]
    signed_up = {within_days} or {on_or_after, before}
    events = {names, within_days, min, max}     orders = {within_days, min, max}
    spend = {within_days, min, max}             last_order_days = {min, max}
    first_event = {name, within_days}

Ranges are inclusive; windows of `within_days = N` are the N local days ending on the
business date, midnight to midnight in each user's own time zone. Errors name the file and
the field (`where.all[1].tier`), before anything is evaluated.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yunying.errors import ConfigError
from yunying.sources.validate.rules import template_locale
from yunying.time_zones import same_zone_names

STATES = ("new", "active", "returned", "silent", "churned")
TIERS = ("high", "mid", "low")
CHANNELS = ("email", "sms", "push", "webhook")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Range:
    """Inclusive bounds; None is open."""

    low: Decimal | None = None
    high: Decimal | None = None

    def holds(self, value: Decimal | int) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


@dataclass(frozen=True)
class InSegment:
    name: str


@dataclass(frozen=True)
class Pick:
    """A column of the user's profile or lifecycle row among listed values."""

    field: str  # state | tier | locale | timezone
    values: tuple[str, ...]


@dataclass(frozen=True)
class Score:
    field: str  # days_in_state | recency_score | frequency_score | monetary_score
    range: Range


@dataclass(frozen=True)
class Reachable:
    channels: tuple[str, ...]  # any of them: present, opted in, not suppressed


@dataclass(frozen=True)
class SignedUp:
    within_days: int | None
    on_or_after: dt.date | None
    before: dt.date | None


@dataclass(frozen=True)
class Count:
    """Events of the named kinds, paid orders, or paid spend within the window."""

    kind: str  # events | orders | spend
    names: tuple[str, ...]
    within_days: int
    range: Range


@dataclass(frozen=True)
class LastOrderDays:
    range: Range  # local days from the last paid order to the business date; never: no match


@dataclass(frozen=True)
class FirstEvent:
    name: str
    within_days: int | None  # None: ever


Condition = (
    AllOf | AnyOf | Not | InSegment | Pick | Score | Reachable | SignedUp | Count | LastOrderDays
) | FirstEvent


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    where: Condition
    path: Path


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field {field!r}: {problem}")


def _only_keys(raw: dict[str, Any], at: str, allowed: set[str]) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _Invalid(f"{at}.{unknown[0]}", f"unknown key; use {', '.join(sorted(allowed))}")


def _int(raw: dict[str, Any], key: str, at: str, required: bool) -> int | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise _Invalid(f"{at}.{key}", "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"{at}.{key}", f"must be a whole number of days >= 1, not {value!r}")
    return value


def _range(raw: dict[str, Any], at: str, extra: set[str]) -> Range:
    _only_keys(raw, at, {"min", "max"} | extra)
    bounds: list[Decimal | None] = []
    for key in ("min", "max"):
        value = raw.get(key)
        if value is None:
            bounds.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _Invalid(f"{at}.{key}", f"must be a number, not {value!r}")
        try:
            bounds.append(Decimal(str(value)))
        except InvalidOperation:
            raise _Invalid(f"{at}.{key}", f"must be a number, not {value!r}") from None
    low, high = bounds
    if low is None and high is None:
        raise _Invalid(at, "give min, max or both")
    if low is not None and high is not None and low > high:
        raise _Invalid(at, f"min {low} is above max {high}")
    return Range(low, high)


def _strings(value: Any, at: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _Invalid(at, "must be a non-empty list of strings")
    for item in value:
        if allowed is not None and item not in allowed:
            raise _Invalid(at, f"{item!r} is not one of {', '.join(allowed)}")
    return tuple(value)


def _locale(tag: str, at: str) -> str:
    """The locale as user records store it ('en-US' -> 'en'), or an error: a locale with no
    template is stored as the company's default, so a condition on it would match nobody."""
    stored = template_locale(tag)
    if stored is None:
        raise _Invalid(at, f"{tag!r} is no locale users are stored in; use one of zh-CN, en")
    return stored


def _time_zone(name: str, at: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Invalid(
            at, f"{name!r} is not a time zone; use an IANA name like Asia/Shanghai"
        ) from None
    return name


def _table(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(at, "must be a table, e.g. { min = 1 }")
    return value


def parse_condition(raw: Any, at: str = "where") -> Condition:
    """The condition tree; ConfigError names the field (`at` is where `raw` sits)."""
    try:
        return _condition(raw, at)
    except _Invalid as exc:
        raise ConfigError(str(exc)) from None


def _condition(raw: Any, at: str) -> Condition:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise _Invalid(at, "a condition is a table with exactly one key, e.g. { state = [...] }")
    ((key, value),) = raw.items()
    here = f"{at}.{key}"
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise _Invalid(here, "must be a non-empty list of conditions")
        parts = tuple(_condition(v, f"{here}[{i}]") for i, v in enumerate(value))
        return AllOf(parts) if key == "all" else AnyOf(parts)
    if key == "not":
        return Not(_condition(value, here))
    if key == "segment":
        if not isinstance(value, str) or not NAME.match(value):
            raise _Invalid(here, "must name a segment file (lowercase, digits, - and _)")
        return InSegment(value)
    if key in ("state", "tier"):
        return Pick(key, _strings(value, here, STATES if key == "state" else TIERS))
    if key == "locale":
        return Pick(key, tuple(_locale(v, here) for v in _strings(value, here)))
    if key == "timezone":
        # A zone's old alias and its current name are one place, however users are stored.
        zones = (same_zone_names(_time_zone(v, here)) for v in _strings(value, here))
        return Pick(key, tuple(dict.fromkeys(name for names in zones for name in names)))
    if key in ("days_in_state", "recency_score", "frequency_score", "monetary_score"):
        return Score(key, _range(_table(value, here), here, set()))
    if key == "reachable":
        return Reachable(_strings(value, here, CHANNELS))
    if key == "signed_up":
        table = _table(value, here)
        _only_keys(table, here, {"within_days", "on_or_after", "before"})
        dates = [table.get(k) for k in ("on_or_after", "before")]
        for name, day in zip(("on_or_after", "before"), dates, strict=True):
            if day is not None and (not isinstance(day, dt.date) or isinstance(day, dt.datetime)):
                raise _Invalid(f"{here}.{name}", f"must be a date like 2026-01-31, not {day!r}")
        within = _int(table, "within_days", here, required=False)
        if within is None and dates == [None, None]:
            raise _Invalid(here, "give within_days, or on_or_after and/or before")
        return SignedUp(within, dates[0], dates[1])
    if key in ("events", "orders", "spend"):
        table = _table(value, here)
        names: tuple[str, ...] = ()
        if key == "events":
            names = _strings(table.get("names"), f"{here}.names")
        within = _int(table, "within_days", here, required=True) or 0
        extra = {"within_days"} | ({"names"} if key == "events" else set())
        return Count(key, names, within, _range(table, here, extra))
    if key == "last_order_days":
        return LastOrderDays(_range(_table(value, here), here, set()))
    if key == "first_event":
        table = _table(value, here)
        _only_keys(table, here, {"name", "within_days"})
        event = table.get("name")
        if not isinstance(event, str) or not event:
            raise _Invalid(f"{here}.name", "must be an event name")
        return FirstEvent(event, _int(table, "within_days", here, required=False))
    raise _Invalid(here, "unknown condition; see README 'Segments and campaigns'")


def parse_segment(data: dict[str, Any], path: Path) -> Segment:
    """A segment from a file's parsed TOML; ConfigError names the file and the field."""
    try:
        _only_keys(data, "(file)", {"name", "description", "where"})
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _Invalid("name", "must be lowercase letters, digits, - and _ (up to 64)")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise _Invalid("description", "must be a string")
        if "where" not in data:
            raise _Invalid("where", "is required: the condition that picks the users")
        return Segment(name, description, _condition(data["where"], "where"), path)
    except _Invalid as exc:
        raise ConfigError(f"segment file {path}: {exc}") from None


def load_segment(path: Path) -> Segment:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"segment file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"segment file {path}: not valid TOML: {exc}") from None
    segment = parse_segment(data, path)
    if segment.name != path.stem:
        raise ConfigError(
            f"segment file {path}: field 'name' is {segment.name!r};"
            f" it must match the file name: {path.stem!r}"
        )
    return segment


class SegmentLibrary:
    """The segment files of one folder, read on demand; resolves `segment = "..."` nesting."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: dict[str, Segment] = {}

    def get(self, name: str) -> Segment:
        if name not in self._loaded:
            if not NAME.match(name):
                raise ConfigError(f"segment {name!r}: not a segment name")
            self._loaded[name] = load_segment(self.folder / f"{name}.toml")
        return self._loaded[name]

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.toml"))

    def check(self, segment: Segment) -> None:
        """Every nested segment exists and is valid, and none contains itself."""
        self._walk(segment.where, (segment.name,), segment.path)

    def _walk(self, condition: Condition, chain: tuple[str, ...], path: Path) -> None:
        if isinstance(condition, InSegment):
            if condition.name in chain:
                loop = " -> ".join((*chain, condition.name))
                raise ConfigError(f"segment file {path}: segments contain each other: {loop}")
            inner = self.get(condition.name)
            self._walk(inner.where, (*chain, condition.name), inner.path)
        elif isinstance(condition, AllOf | AnyOf):
            for part in condition.parts:
                self._walk(part, chain, path)
        elif isinstance(condition, Not):
            self._walk(condition.part, chain, path)
