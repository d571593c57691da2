"""The new user: a company's own database with customers and orders only (no events), in US
dollars and New York time, configured through `yunying init`, evaluated without sending,
its thresholds changed, an earlier range backfilled. Every figure against an independent
computation from the source database."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from cli.main import main
from tests.rig import SmtpSink
from yunying.config import Settings, load_settings
from yunying.reports.kpis import compute_kpis, money_for
from yunying.store.engine import session_scope
from yunying.store.models import LifecycleState, LifecycleTransition, OutboxMessage

pytestmark = pytest.mark.usefixtures("prefect")

NEW_YORK = ZoneInfo("America/New_York")
START = dt.date(2026, 8, 1)
ROOT = Path(__file__).resolve().parents[2]
D0, D1 = dt.date(2026, 10, 1), dt.date(2026, 10, 31)  # the month evaluated


def _write_company(path: Path, seed: int = 3) -> None:
    """Customers signed up from START, orders in USD at New York local times (some close to
    midnight, so the UTC day differs), some refunded; no events table at all."""
    rng = random.Random(seed)
    customers, purchases = [], []
    for i in range(160):
        signup = dt.datetime.combine(START + dt.timedelta(days=rng.randrange(85)), dt.time(10))
        customers.append((f"c{i:04d}", _utc(signup), f"c{i}@example.com", "yes"))
        day = signup
        while rng.random() < 0.8:
            day += dt.timedelta(days=rng.choice([1, 3, 9, 20, 40]), hours=rng.choice([0, 13]))
            if day.date() > D1 + dt.timedelta(days=3):
                break
            status = "refunded" if rng.random() < 0.1 else "paid"
            cents = rng.randrange(100, 40000)
            purchases.append(
                (
                    f"p{len(purchases):05d}",
                    f"c{i:04d}",
                    f"{cents / 100:.2f}",
                    "USD",
                    _utc(day),
                    status,
                )
            )
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id TEXT, created TEXT, mail TEXT, marketing TEXT)")
        db.execute(
            "CREATE TABLE purchases (purchase_no TEXT, customer TEXT, total TEXT, ccy TEXT,"
            " placed_at TEXT, state TEXT)"
        )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", customers)
        db.executemany("INSERT INTO purchases VALUES (?, ?, ?, ?, ?, ?)", purchases)


def _utc(local: dt.datetime) -> str:
    return local.replace(tzinfo=NEW_YORK).astimezone(dt.UTC).isoformat()


def _local_day(utc_text: str) -> dt.date:
    return dt.datetime.fromisoformat(utc_text).astimezone(NEW_YORK).date()


def _truth(
    path: Path,
) -> tuple[dict[str, dt.date], dict[str, set[dt.date]], dict[str, list[tuple[dt.date, Decimal]]]]:
    """Signup days, active days (any order placed) and paid orders, read straight from the
    company's database."""
    with sqlite3.connect(path) as db:
        signups = {
            uid: _local_day(at) for uid, at in db.execute("SELECT id, created FROM customers")
        }
        active: dict[str, set[dt.date]] = defaultdict(set)
        paid: dict[str, list[tuple[dt.date, Decimal]]] = defaultdict(list)
        for uid, total, at, state in db.execute(
            "SELECT customer, total, placed_at, state FROM purchases"
        ):
            active[uid].add(_local_day(at))
            if state == "paid":
                paid[uid].append((_local_day(at), Decimal(total)))
    return signups, active, paid


def _reference(
    signups: dict[str, dt.date],
    active: dict[str, set[dt.date]],
    paid: dict[str, list[tuple[dt.date, Decimal]]],
    plan: list[tuple[dt.date, dict[str, int]]],
) -> tuple[dict[str, tuple[str, str]], dict[dt.date, dict[str, tuple[str | None, str]]]]:
    """The README's rules, user by user, day by day, each date under its own thresholds
    (default RFM cut points)."""
    previous: dict[str, tuple[str, dt.date]] = {}
    moves: dict[dt.date, dict[str, tuple[str | None, str]]] = {}
    today: dict[str, tuple[str, str]] = {}
    for day, rules in plan:
        today, moves[day] = {}, {}
        for uid, signup in signups.items():
            if signup > day:
                continue
            seen = [d for d in active.get(uid, ()) if d <= day]
            idle = (day - (max(seen) if seen else signup)).days
            before, since = previous.get(uid, (None, None))
            if (day - signup).days < rules["new_days"]:
                state = "new"
            elif idle < rules["active_days"]:
                back = before in ("silent", "churned") or (
                    before == "returned" and (day - since).days < rules["returned_days"]
                )
                state = "returned" if back else "active"
            elif idle < rules["churn_days"]:
                state = "silent"
            else:
                state = "churned"
            orders = [amount for placed, amount in paid.get(uid, ()) if placed <= day]
            score = (
                (3 if idle < 7 else 2 if idle < 30 else 1)
                + (3 if len(orders) >= 5 else 2 if len(orders) >= 2 else 1)
                + (3 if sum(orders) >= 500 else 2 if sum(orders) >= 100 else 1)
            )
            today[uid] = (state, "high" if score >= 8 else "mid" if score >= 5 else "low")
            if state != before:
                moves[day][uid] = (before, state)
            previous[uid] = (state, day if state != before else since)  # type: ignore[assignment]
    return today, moves


def _store(
    engine: Engine,
) -> tuple[dict[str, tuple[str, str]], dict[dt.date, dict[str, tuple[str | None, str]]]]:
    with session_scope(engine) as session:
        states = {
            uid: (state, tier)
            for uid, state, tier in session.execute(
                select(LifecycleState.user_id, LifecycleState.state, LifecycleState.tier)
            )
        }
        moves: dict[dt.date, dict[str, tuple[str | None, str]]] = defaultdict(dict)
        for day, uid, before, after in session.execute(
            select(
                LifecycleTransition.business_date,
                LifecycleTransition.user_id,
                LifecycleTransition.from_state,
                LifecycleTransition.to_state,
            )
        ):
            moves[day][uid] = (before, after)
    return states, moves


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _init(
    config: Path, db: Path, active: int, churn: int, zone: str = "America/New_York"
) -> list[str]:
    return [
        "init", "--config", str(config), "--force",
        "--timezone", zone, "--locale", "en", "--currency", "USD",
        "--active-days", str(active), "--churn-days", str(churn),
        "--sql", f"sqlite:///{db}", "--users-table", "customers", "--orders-table", "purchases",
        "--map", "users.user_id=id", "--map", "users.signup_at=created",
        "--map", "users.email=mail", "--map", "users.email_opt_in=marketing",
        "--map", "orders.order_id=purchase_no", "--map", "orders.user_id=customer",
        "--map", "orders.amount=total", "--map", "orders.currency=ccy",
        "--map", "orders.created_at=placed_at", "--map", "orders.status=state",
    ]  # fmt: skip


def test_a_new_company_evaluates_its_own_orders_without_sending(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    smtp_server: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "shop.db"
    _write_company(db)
    config = tmp_path / "yunying.toml"
    monkeypatch.delenv("YUNYING_SENDING")  # a new store's default
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")  # a real mail server is configured
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))

    assert main(_init(config, db, 7, 30)) == 0
    out = capsys.readouterr().out
    assert "a mapped record" in out and '"user_id": "c0000"' in out
    assert "activity is derived from orders" in out
    assert 'timezone = "America/New_York"' in config.read_text()
    assert "c0@example.com" not in out and "***@example.com" in out  # contacts masked
    # The written settings' sources, checked again without writing.
    assert main(["init", "--check"]) == 0
    checked = capsys.readouterr().out
    assert out.count("a mapped record") == checked.count("a mapped record") == 6  # 3 a source

    assert main(["db", "upgrade"]) == 0
    assert main(["run", "pull"]) == 0
    assert "activity: no events: activity is derived from orders" in capsys.readouterr().out
    assert main(["run", "lifecycle", "--from", str(D0), "--date", str(D1)]) == 0
    assert "nothing was sent" in capsys.readouterr().out

    signups, active, paid = _truth(db)
    rules = {"new_days": 7, "active_days": 7, "churn_days": 30, "returned_days": 7}
    want_states, want_moves = _reference(signups, active, paid, [(d, rules) for d in _days(D0, D1)])
    states, moves = _store(engine)
    assert states == want_states
    assert {d: m for d, m in moves.items()} == {d: m for d, m in want_moves.items() if m}
    assert {s for s, _ in states.values()} >= {"active", "silent", "churned"}
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        kpis = compute_kpis(session, D1, NEW_YORK, money_for(load_settings()))  # USD, as init said
    assert smtp_server.messages == []
    assert kpis.dau == sum(1 for days in active.values() if D1 in days)
    window = set(_days(D1 - dt.timedelta(days=29), D1))
    assert kpis.mau == sum(1 for days in active.values() if days & window) > 0
    assert kpis.revenue == sum(a for orders in paid.values() for d, a in orders if d == D1)
    assert kpis.paying_users == sum(
        1 for orders in paid.values() if any(d == D1 for d, _ in orders)
    )

    # Sending stays off: a campaign run writes files, and says so. (Outside quiet hours:
    # the shipped campaign's would defer every message whenever it is night in New York.)
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    shipped = (ROOT / "deployments" / "campaigns" / "winback.toml").read_text()
    (campaigns / "winback.toml").write_text(
        shipped.split("[quiet_hours]")[0] + "quiet_hours = false\n"
    )
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(campaigns))
    assert main(["run", "reactivation", "--date", str(D1)]) == 0
    assert "SENDING IS OFF" in capsys.readouterr().err
    assert smtp_server.messages == []
    assert list((settings.outbox_path / "email").glob("*.eml"))

    # Narrower thresholds: the next date's run looks at every user again.
    assert main(_init(config, db, 3, 14)) == 0
    after = D1 + dt.timedelta(days=1)
    assert main(["run", "lifecycle", "--date", str(after)]) == 0
    assert "lifecycle settings changed" in capsys.readouterr().out
    narrow = {**rules, "active_days": 3, "churn_days": 14}
    plan = [(d, rules) for d in _days(D0, D1)] + [(after, narrow)]
    want_states, want_moves = _reference(signups, active, paid, plan)
    states, moves = _store(engine)
    assert states == want_states
    assert moves.get(after, {}) == want_moves[after]

    # Backfill an earlier range on a store that already has later dates: from there on,
    # every date follows the (new) settings.
    first = D0 - dt.timedelta(days=10)
    assert (
        main(["run", "lifecycle", "--from", str(first), "--date", str(D0 - dt.timedelta(days=1))])
        == 0
    )
    plan = [(d, narrow) for d in _days(first, after)]
    want_states, want_moves = _reference(signups, active, paid, plan)
    states, moves = _store(engine)
    assert states == want_states
    assert {d: m for d, m in moves.items()} == {d: m for d, m in want_moves.items() if m}
    assert min(moves) == first and max(moves) == after


def test_a_time_zone_changed_after_the_first_pull_is_refused_naming_both(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pulled in the wrong zone, then corrected: the days already stored (and the active
    days derived from them) stay in the first zone, and DAU, MAU and every state would mix
    the two. Pull, lifecycle and report stop, naming both zones and the ways out."""
    db = tmp_path / "shop.db"
    _write_company(db)
    config = tmp_path / "yunying.toml"
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    monkeypatch.delenv("YUNYING_TIMEZONE", raising=False)
    assert main(_init(config, db, 7, 30, zone="Asia/Shanghai")) == 0
    assert main(["db", "upgrade"]) == 0
    assert main(["run", "pull"]) == 0
    assert main(["run", "lifecycle", "--date", str(D1)]) == 0
    capsys.readouterr()

    assert main(_init(config, db, 7, 30)) == 0
    for command in (["pull"], ["lifecycle", "--date", str(D1)], ["report", "--date", str(D1)]):
        assert main(["run", *command]) == 2, command
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            "error: timezone is America/New_York, but this store's days (of events, orders,"
            " signups) are in Asia/Shanghai, the zone it was filled in; new days in"
            " America/New_York would mix with them. Set timezone back to Asia/Shanghai, or"
            " start a new store (another database_url, or remove this one) and pull again in"
            " the new zone"
        ), command
    assert main(_init(config, db, 7, 30, zone="Asia/Shanghai")) == 0
    assert main(["run", "pull"]) == 0
