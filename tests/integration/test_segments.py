"""Segments: every operator against an independent Python computation on generated data.

The Python side converts each event's and order's UTC time to the user's local date and
compares dates; the SQL side compares UTC instants to local midnights. Users live in zones
from UTC-11 to UTC+14 and in New York, whose clocks go back on 2026-11-01 (the business
date), and their events fall exactly on, a second before and a second after local midnights.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from cli.main import main
from tests.builders import load_records
from yunying.config import Settings
from yunying.errors import ConfigError, PermanentError
from yunying.lifecycle.states import compute_lifecycle
from yunying.reports.effects import Money
from yunying.segments.compile import compile_segment
from yunying.segments.definition import SegmentLibrary, load_segment, parse_segment
from yunying.segments.evaluate import record_sizes, show, size_history
from yunying.store.engine import session_scope, utcnow
from yunying.store.models import LifecycleState, SegmentSize, Suppression

BD = dt.date(2026, 11, 1)
ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "UTC",
]
EVENT_NAMES = ["app_open", "purchase", "share"]
UTC = dt.UTC


def _edge_instants(zone: ZoneInfo, rng: random.Random, days_back: int = 40) -> dt.datetime:
    """A naive UTC instant at, just before or just after a local midnight, or anywhere."""
    day = BD - dt.timedelta(days=rng.randint(-1, days_back))
    midnight = dt.datetime.combine(day, dt.time(), zone).astimezone(UTC)
    shift = rng.choice(
        [dt.timedelta(0), dt.timedelta(seconds=-1), dt.timedelta(seconds=1)]
        + [dt.timedelta(hours=rng.randint(1, 23))] * 2
    )
    return (midnight + shift).replace(tzinfo=None)


@dataclass
class Person:
    user_id: str
    zone: str
    locale: str
    signup_at: dt.datetime
    email: str | None
    phone: str | None
    push: str | None
    opt_in: dict[str, bool]
    suppressed: set[str] = field(default_factory=set)
    events: list[tuple[str, dt.datetime]] = field(default_factory=list)
    orders: list[tuple[Decimal, str, dt.datetime]] = field(default_factory=list)
    lifecycle: Any = None  # the stored lifecycle row, read back


def _people(count: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    people = []
    for i in range(count):
        zone = ZONES[i % len(ZONES)]
        tz = ZoneInfo(zone)
        person = Person(
            user_id=f"u{i:04d}",
            zone=zone,
            locale=rng.choice(["zh-CN", "en"]),
            signup_at=_edge_instants(tz, rng, 90),
            email=f"u{i}@example.com" if rng.random() < 0.7 else None,
            phone=f"+86139{i:08d}" if rng.random() < 0.5 else None,
            push=f"tok{i}" if rng.random() < 0.4 else None,
            opt_in={c: rng.random() < 0.8 for c in ("email", "sms", "push")},
        )
        if rng.random() < 0.15:
            person.suppressed.add(rng.choice(["email", "sms", "any"]))
        for _ in range(rng.choice([0, 1, 3, 8])):
            person.events.append((rng.choice(EVENT_NAMES), _edge_instants(tz, rng)))
        for _ in range(rng.choice([0, 0, 1, 2, 4])):
            amount = Decimal(rng.choice(["0.01", "50.00", "99.99", "100.00", "250.00"]))
            status = rng.choice(["paid", "paid", "paid", "refunded"])
            person.orders.append((amount, status, _edge_instants(tz, rng, 60)))
        people.append(person)
    return people


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat() + "Z"


def _load(engine: Engine, settings: Settings, people: list[Person]) -> None:
    users = [
        {
            "user_id": p.user_id,
            "signup_at": _iso(p.signup_at),
            "timezone": p.zone,
            "locale": p.locale,
            "email": p.email,
            "phone": p.phone,
            "push_token": p.push,
            "email_opt_in": p.opt_in["email"],
            "sms_opt_in": p.opt_in["sms"],
            "push_opt_in": p.opt_in["push"],
        }
        for p in people
    ]
    events = [
        {"event_id": f"{p.user_id}-e{j}", "user_id": p.user_id, "name": n, "occurred_at": _iso(t)}
        for p in people
        for j, (n, t) in enumerate(p.events)
    ]
    orders = [
        {
            "order_id": f"{p.user_id}-o{j}",
            "user_id": p.user_id,
            "amount": str(a),
            "status": s,
            "created_at": _iso(t),
        }
        for p in people
        for j, (a, s, t) in enumerate(p.orders)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        load_records(session, settings.zone, "orders", orders)
        session.add_all(
            Suppression(user_id=p.user_id, channel=c, reason="test", created_at=utcnow())
            for p in people
            for c in p.suppressed
        )
        # Two runs, so that users who kept their state have been in it for 12 days.
        compute_lifecycle(session, BD - dt.timedelta(days=12), settings.lifecycle)
        compute_lifecycle(session, BD, settings.lifecycle)
    with session_scope(engine) as session:
        rows = {row.user_id: row for row in session.scalars(select(LifecycleState))}
        session.expunge_all()
    for p in people:
        p.lifecycle = rows.get(p.user_id)


# The independent computation: local dates, not UTC midnights.


def _local_day(person: Person, moment: dt.datetime) -> dt.date:
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(person.zone)).date()


def _in_window(person: Person, moment: dt.datetime, days: int) -> bool:
    return BD - dt.timedelta(days=days - 1) <= _local_day(person, moment) <= BD


def _until_bd(person: Person, moment: dt.datetime) -> bool:
    return _local_day(person, moment) <= BD


def _between(value: Decimal | int, low: float | None, high: float | None) -> bool:
    return (low is None or value >= Decimal(str(low))) and (
        high is None or value <= Decimal(str(high))
    )


def _reachable(p: Person, channel: str) -> bool:
    if p.suppressed & {channel, "any"}:
        return False
    present = {"email": p.email, "sms": p.phone, "push": p.push}
    return channel == "webhook" or (present[channel] is not None and p.opt_in[channel])


Check = Callable[[Person], bool]


def _python(condition: dict[str, Any], nested: dict[str, dict[str, Any]]) -> Check:
    ((key, value),) = condition.items()
    if key == "all":
        parts = [_python(c, nested) for c in value]
        return lambda p: all(part(p) for part in parts)
    if key == "any":
        parts = [_python(c, nested) for c in value]
        return lambda p: any(part(p) for part in parts)
    if key == "not":
        inner = _python(value, nested)
        return lambda p: not inner(p)
    if key == "segment":
        return _python(nested[value], nested)
    if key in ("state", "tier"):
        return lambda p: p.lifecycle is not None and getattr(p.lifecycle, key) in value
    if key == "locale":
        return lambda p: p.locale in value
    if key == "timezone":
        return lambda p: p.zone in value
    if key == "days_in_state":
        return lambda p: (
            p.lifecycle is not None
            and _between((BD - p.lifecycle.since).days, value.get("min"), value.get("max"))
        )
    if key.endswith("_score"):
        return lambda p: (
            p.lifecycle is not None
            and _between(getattr(p.lifecycle, key), value.get("min"), value.get("max"))
        )
    if key == "reachable":
        return lambda p: any(_reachable(p, c) for c in value)
    if key == "signed_up":

        def signed(p: Person) -> bool:
            day = _local_day(p, p.signup_at)
            ok = True
            if "within_days" in value:
                ok = ok and _in_window(p, p.signup_at, value["within_days"])
            if "on_or_after" in value:
                ok = ok and day >= value["on_or_after"]
            if "before" in value:
                ok = ok and day < value["before"]
            return ok

        return signed
    if key == "events":
        return lambda p: _between(
            sum(
                1
                for n, t in p.events
                if n in value["names"] and _in_window(p, t, value["within_days"])
            ),
            value.get("min"),
            value.get("max"),
        )
    if key in ("orders", "spend"):

        def measured(p: Person) -> bool:
            paid = [
                a for a, s, t in p.orders if s == "paid" and _in_window(p, t, value["within_days"])
            ]
            total = len(paid) if key == "orders" else sum(paid, Decimal(0))
            return _between(total, value.get("min"), value.get("max"))

        return measured
    if key == "last_order_days":

        def last_order(p: Person) -> bool:
            days = [_local_day(p, t) for _, s, t in p.orders if s == "paid" and _until_bd(p, t)]
            return bool(days) and _between(
                (BD - max(days)).days, value.get("min"), value.get("max")
            )

        return last_order
    if key == "first_event":

        def first(p: Person) -> bool:
            times = [t for n, t in p.events if n == value["name"] and _until_bd(p, t)]
            if not times:
                return False
            return "within_days" not in value or _in_window(p, min(times), value["within_days"])

        return first
    raise AssertionError(key)


NESTED = {
    "big-spender": {"spend": {"within_days": 30, "min": 100}},
    "big-spender-asleep": {
        "all": [
            {"segment": "big-spender"},
            {"not": {"events": {"names": ["app_open"], "within_days": 7, "min": 1}}},
        ]
    },
    "nobody": {"all": [{"locale": ["en"]}, {"not": {"locale": ["en"]}}]},
}

CASES: dict[str, dict[str, Any]] = {
    "state": {"state": ["silent", "churned"]},
    "not-state": {"not": {"state": ["active"]}},
    "days-in-state": {"days_in_state": {"min": 12, "max": 30}},
    "days-in-state-under-12": {"days_in_state": {"max": 11.5}},
    "tier": {"tier": ["high", "mid"]},
    "recency": {"recency_score": {"min": 2}},
    "frequency": {"frequency_score": {"max": 1}},
    "monetary": {"monetary_score": {"min": 2, "max": 3}},
    "locale": {"locale": ["zh-CN"]},
    "timezone": {"timezone": ["Pacific/Kiritimati", "America/New_York"]},
    "reachable-email": {"reachable": ["email"]},
    "reachable-sms-or-push": {"reachable": ["sms", "push"]},
    "reachable-webhook": {"reachable": ["webhook"]},
    "signed-up-within-1": {"signed_up": {"within_days": 1}},
    "signed-up-within-30": {"signed_up": {"within_days": 30}},
    "signed-up-dates": {"signed_up": {"on_or_after": dt.date(2026, 9, 1), "before": BD}},
    "events-1-day": {"events": {"names": ["app_open"], "within_days": 1, "min": 1}},
    "events-7-days-2-plus": {
        "events": {"names": ["app_open", "share"], "within_days": 7, "min": 2}
    },
    "events-none-in-14": {"events": {"names": ["app_open"], "within_days": 14, "max": 0}},
    "events-at-most-2": {"events": {"names": ["purchase"], "within_days": 30, "max": 2}},
    "orders-2-plus": {"orders": {"within_days": 60, "min": 2}},
    "orders-exactly-1": {"orders": {"within_days": 30, "min": 1, "max": 1}},
    "spend-100-plus": {"spend": {"within_days": 30, "min": 100}},
    "spend-under-100": {"spend": {"within_days": 60, "max": 99.99}},
    "last-order-30-plus": {"last_order_days": {"min": 30}},
    "last-order-0-7": {"last_order_days": {"max": 7}},
    "last-order-5-20": {"last_order_days": {"min": 5, "max": 20}},
    "first-event-ever": {"first_event": {"name": "share"}},
    "first-event-7": {"first_event": {"name": "purchase", "within_days": 7}},
    "any-of": {"any": [{"locale": ["en"]}, {"orders": {"within_days": 30, "min": 1}}]},
    "nested": {"segment": "big-spender-asleep"},
    "not-nested": {"not": {"segment": "big-spender"}},
    "empty": {"segment": "nobody"},
    "high-value-silent": {
        "all": [
            {"state": ["silent"]},
            {"tier": ["high", "mid"]},
            {"reachable": ["email", "sms"]},
            {"not": {"signed_up": {"within_days": 30}}},
        ]
    },
}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _write_library(folder: Path, segments: dict[str, dict[str, Any]]) -> SegmentLibrary:
    folder.mkdir(exist_ok=True)
    for name, where in segments.items():
        (folder / f"{name}.toml").write_text(f'name = "{name}"\nwhere = {_toml(where)}\n')
    return SegmentLibrary(folder)


def test_every_operator_matches_a_python_computation(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    people = _people(150, seed=5)
    _load(engine, settings, people)
    library = _write_library(tmp_path / "segments", {**NESTED, **CASES})
    wrong = {}
    sizes = {}
    with session_scope(engine) as session:
        for name, where in CASES.items():
            statement = compile_segment(session, library, library.get(name), BD, settings.zone)
            got = set(session.scalars(statement))
            check = _python(where, NESTED)
            expected = {p.user_id for p in people if check(p)}
            sizes[name] = len(expected)
            if got != expected:
                wrong[name] = (sorted(got - expected)[:5], sorted(expected - got)[:5])
    assert not wrong, wrong
    # The data exercises each case: none but `empty` is empty, and none selects everybody.
    assert sizes["empty"] == 0
    trivial = {n for n, s in sizes.items() if n != "empty" and s in (0, len(people))}
    assert trivial <= {"reachable-webhook"}, sizes


def test_a_time_zone_matches_its_aliases_not_other_places(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """Companies store old alias names (Asia/Katmandu) as well as current ones: a segment on
    either name is the one place. Oslo, a link to Berlin's rules, is a place of its own."""
    zones = ["Asia/Kathmandu", "Asia/Katmandu", "Asia/Kolkata", "Asia/Calcutta"]
    zones += ["Europe/Oslo", "Europe/Berlin", "Pacific/Honolulu", "US/Hawaii"]
    people = _people(len(zones), seed=3)
    for person, zone in zip(people, zones, strict=True):
        person.zone = zone
    _load(engine, settings, people)
    wanted = {
        "katmandu": (["Asia/Katmandu"], {"u0000", "u0001"}),
        "kolkata": (["Asia/Kolkata"], {"u0002", "u0003"}),
        "oslo": (["Europe/Oslo"], {"u0004"}),
        "hawaii": (["US/Hawaii", "Asia/Kathmandu"], {"u0000", "u0001", "u0006", "u0007"}),
    }
    library = _write_library(
        tmp_path / "segments", {name: {"timezone": names} for name, (names, _) in wanted.items()}
    )
    with session_scope(engine) as session:
        got = {
            name: set(
                session.scalars(
                    compile_segment(session, library, library.get(name), BD, settings.zone)
                )
            )
            for name in wanted
        }
    assert got == {name: users for name, (_, users) in wanted.items()}


def test_spend_is_counted_in_the_companys_money(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """100 USD at 7.1 is 710 CNY; 200 NZD, with no rate, is not summed in (as the report)."""
    from cli.main import main

    people = _people(3, seed=4)
    for person in people:
        person.orders = []
    _load(engine, settings, people)
    paid = BD - dt.timedelta(days=3)
    orders = [
        {"order_id": f"fx-{user}", "user_id": user, "amount": amount, "currency": currency,
         "status": "paid", "created_at": f"{paid}T04:00:00Z"}
        for user, amount, currency in (("u0000", "100", "USD"), ("u0001", "50", "CNY"),
                                       ("u0002", "200", "NZD"))
    ]  # fmt: skip
    with session_scope(engine) as session:
        load_records(session, settings.zone, "orders", orders)
    library = _write_library(
        tmp_path / "segments", {"spenders": {"spend": {"within_days": 30, "min": 100}}}
    )
    money = Money(currency="CNY", rates=(("USD", Decimal("7.1")),))
    with session_scope(engine) as session:
        statement = compile_segment(
            session, library, library.get("spenders"), BD, settings.zone, money
        )
        assert set(session.scalars(statement)) == {"u0000"}
    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(tmp_path / "segments"))
    monkeypatch.setenv("YUNYING_EXCHANGE_RATES", '{"USD": 7.1}')
    assert main(["segments", "show", "spenders", "--date", str(BD)]) == 0
    assert "spenders on " in (out := capsys.readouterr().out) and ": 1 users" in out


def test_windows_end_at_local_midnight(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    """One event a second before and one at midnight starting the business date's local day,
    in a zone 14 hours ahead and one 11 behind: only the second is within one day."""
    people = []
    for i, zone in enumerate(["Pacific/Kiritimati", "Pacific/Pago_Pago"]):
        midnight = dt.datetime.combine(BD, dt.time(), ZoneInfo(zone)).astimezone(UTC)
        before = Person(f"b{i}", zone, "en", dt.datetime(2026, 1, 1), None, None, None, {})
        at = Person(f"a{i}", zone, "en", dt.datetime(2026, 1, 1), None, None, None, {})
        before.events.append(
            ("app_open", (midnight - dt.timedelta(seconds=1)).replace(tzinfo=None))
        )
        at.events.append(("app_open", midnight.replace(tzinfo=None)))
        people += [before, at]
    for p in people:
        p.opt_in = {"email": True, "sms": True, "push": True}
    _load(engine, settings, people)
    library = _write_library(
        tmp_path / "s", {"today": {"events": {"names": ["app_open"], "within_days": 1, "min": 1}}}
    )
    with session_scope(engine) as session:
        got = set(
            session.scalars(
                compile_segment(session, library, library.get("today"), BD, settings.zone)
            )
        )
    assert got == {"a0", "a1"}


def test_segment_sizes_are_kept_per_day_and_show_masks_members(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    people = _people(40, seed=9)
    _load(engine, settings, people)
    library = _write_library(
        tmp_path / "s", {"en": {"locale": ["en"]}, "zh": {"locale": ["zh-CN"]}}
    )
    with session_scope(engine) as session:
        first = record_sizes(session, library, ["en", "zh"], BD, settings.zone, Money())
        record_sizes(session, library, ["en"], BD, settings.zone, Money())  # a rerun overwrites
        view = show(session, library, "en", BD, settings.zone, Money())
    with session_scope(engine) as session:
        history = size_history(session, ["en", "zh"], BD)
    english = sum(1 for p in people if p.locale == "en")
    assert first == {"en": english, "zh": len(people) - english}
    assert history == {"en": {BD: english}, "zh": {BD: len(people) - english}}
    assert view.users == english
    assert view.sample and all("***" in m for m in view.sample)
    assert not any(p.user_id in view.text() for p in people)
    assert "SELECT" in view.sql and "'en'" in view.sql


def test_locales_in_conditions_are_normalised_like_user_records(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """User records keep 'en-US' as 'en' and 'zh_CN' as 'zh-CN'; so do conditions."""
    people = _people(40, seed=9)
    _load(engine, settings, people)
    library = _write_library(
        tmp_path / "s", {"en-us": {"locale": ["en-US"]}, "zh-posix": {"locale": ["zh_CN.UTF-8"]}}
    )
    with session_scope(engine) as session:
        sizes = record_sizes(session, library, ["en-us", "zh-posix"], BD, settings.zone, Money())
    english = sum(1 for p in people if p.locale == "en")
    assert sizes == {"en-us": english, "zh-posix": len(people) - english} and english


def test_segments_that_contain_each_other_are_refused(tmp_path: Path) -> None:
    library = _write_library(
        tmp_path / "s",
        {"a": {"segment": "b"}, "b": {"all": [{"locale": ["en"]}, {"segment": "a"}]}},
    )
    with pytest.raises(ConfigError, match="segments contain each other: a -> b -> a"):
        library.check(library.get("a"))


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ({"tier": ["gold"]}, "where.tier"),
        ({"all": [{"locale": ["en"]}, {"stat": ["silent"]}]}, "where.all[1].stat"),
        ({"events": {"names": ["x"], "min": 1}}, "where.events.within_days"),
        ({"spend": {"within_days": 7, "min": 10, "max": 5}}, "where.spend"),
        ({"not": {"reachable": ["fax"]}}, "where.not.reachable"),
        ({"orders": {"within_days": 0, "min": 1}}, "where.orders.within_days"),
        ({"last_order_days": {"minimum": 3}}, "where.last_order_days.minimum"),
        ({"locale": ["en"], "tier": ["high"]}, "where"),
        ({"any": [{"timezone": ["Asia/Shanghai", "Asia/Kathmandoo"]}]}, "where.any[0].timezone"),
        ({"locale": ["fr-FR"]}, "where.locale"),
    ],
    ids=[
        "tier",
        "nested-key",
        "window",
        "range",
        "channel",
        "zero-days",
        "range-key",
        "two-keys",
        "time-zone",
        "locale-without-templates",
    ],
)
def test_bad_segment_files_name_the_file_and_field(
    where: dict[str, Any], field: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    with pytest.raises(ConfigError, match=re.escape(f"bad.toml: field '{field}'")):
        parse_segment({"name": "bad", "where": where}, path)


def test_a_segment_file_must_be_named_like_its_file(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text('name = "two"\nwhere = { locale = ["en"] }\n')
    with pytest.raises(ConfigError, match="one.toml: field 'name' is 'two'"):
        load_segment(path)


def test_lifecycle_segments_need_that_dates_lifecycle(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    library = _write_library(tmp_path / "s", {"silent": {"state": ["silent"]}})
    with session_scope(engine) as session, pytest.raises(PermanentError, match="run the lifecycle"):
        compile_segment(session, library, library.get("silent"), BD, settings.zone)


def test_cli_shows_a_segment_with_masked_members_and_its_sql(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    people = _people(30, seed=3)
    _load(engine, settings, people)
    library = _write_library(tmp_path / "s", {"zh": {"locale": ["zh-CN"]}})
    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(library.folder))
    assert main(["segments", "show", "zh", "--date", BD.isoformat()]) == 0
    out = capsys.readouterr().out
    chinese = sum(1 for p in people if p.locale == "zh-CN")
    assert f"segment zh on {BD}: {chinese} users" in out
    assert "FROM users" in out and "***" in out
    assert not any(p.user_id in out for p in people)
    assert main(["segments", "show", "missing"]) == 2
    assert "missing.toml does not exist" in capsys.readouterr().err
    assert main(["segments", "list"]) == 0
    assert capsys.readouterr().out.split() == ["zh"]
    assert main(["segments", "sizes", "--date", BD.isoformat()]) == 0
    assert capsys.readouterr().out.split() == ["zh", str(chinese)]
    with session_scope(engine) as session:
        assert size_history(session, ["zh"], BD) == {"zh": {BD: chinese}}


def test_the_shipped_segment_files_are_valid(settings: Settings, engine: Engine) -> None:
    library = SegmentLibrary(settings.segment_dir)
    assert {"high-value-silent", "repeat-buyers-lapsed", "churned-sms-recent-open"} <= set(
        library.names()
    )
    people = _people(20, seed=1)
    _load(engine, settings, people)
    with session_scope(engine) as session:
        for name in library.names():
            segment = library.get(name)
            session.scalars(compile_segment(session, library, segment, BD, settings.zone)).all()


def test_the_segments_flow_keeps_sizes_and_shows_the_trend(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.segments import segments

    people = _people(30, seed=4)
    _load(engine, settings, people)
    english = sum(1 for p in people if p.locale == "en")
    folder = tmp_path / f"s{uuid.uuid4().hex[:6]}"
    _write_library(folder, {"en": {"locale": ["en"]}})
    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(folder))
    with session_scope(engine) as session:  # the day before, a smaller segment
        session.add(
            SegmentSize(
                segment="en", business_date=BD - dt.timedelta(days=1), users=2, computed_at=utcnow()
            )
        )
    assert segments(business_date=BD) == {"en": english}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["segment-sizes"]))
        )
    latest = max(artifacts, key=lambda a: a.created)
    table = json.loads(str(latest.data)) if isinstance(latest.data, str) else latest.data
    assert table == [
        {
            "segment": "en",
            **{(BD - dt.timedelta(days=n)).isoformat(): "" for n in range(6, 1, -1)},
            (BD - dt.timedelta(days=1)).isoformat(): 2,
            BD.isoformat(): english,
            "change": f"{english - 2:+d}",
        }
    ]


def test_the_readme_examples_are_the_shipped_segment_files(settings: Settings) -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Segments and campaigns", 1)[1].split("\n## ", 1)[0]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    library = SegmentLibrary(settings.segment_dir)
    examples = [e for e in block.split("\n\n") if e.strip()]
    assert len(examples) == 3
    for example in examples:
        data = tomllib.loads(example)
        shipped = library.get(data["name"])
        assert parse_segment(data, Path("readme")).where == shipped.where
    # The error the README quotes.
    with pytest.raises(ConfigError) as error:
        parse_segment(
            {"name": "x", "where": {"all": [{"locale": ["en"]}, {"tier": ["gold"]}]}},
            Path("x.toml"),
        )
    assert "field 'where.all[1].tier': 'gold' is not one of high, mid, low" in str(error.value)


@pytest.mark.postgres
def test_postgresql_finds_users_without_events_by_an_anti_join(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """`NOT IN (subquery)` becomes a scan of the subquery per user on PostgreSQL once the
    subquery outgrows work_mem (hours at 1M users / 50M events); an anti-join doesn't."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    _load(engine, settings, _people(40, seed=3))
    where = {"events": {"names": ["app_open"], "within_days": 30, "max": 0}}
    library = _write_library(tmp_path / "s", {"quiet": where})
    with session_scope(engine) as session:
        statement = compile_segment(session, library, library.get("quiet"), BD, settings.zone)
        compiled = statement.compile(
            session.get_bind(), compile_kwargs={"render_postcompile": True}
        )
        explained = session.connection().exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        plan = "\n".join(row[0] for row in explained)
    assert "Anti Join" in plan, plan
