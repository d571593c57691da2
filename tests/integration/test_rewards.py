"""Reward rules, fraud screens and the payout ledger on planted data, on SQLite and PostgreSQL."""

import datetime as dt
import hashlib
import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from tests.builders import load_records
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.errors import ConfigError
from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.commitment import DrawRefused, public_id, salt_of
from yunying.rewards.ledger import http_rewards_provider, pay_batch
from yunying.rewards.plan import compute_plan
from yunying.rewards.publish import commit, publications
from yunying.rewards.verify import problems
from yunying.store.engine import session_scope
from yunying.store.models import PointsEntry, RewardBudget, RewardDraw, RewardLedgerEntry

START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def campaign(**changes: Any) -> RewardCampaign:
    base: dict[str, Any] = {
        "name": "nov",
        "start": START,
        "end": START + dt.timedelta(days=7),
        "budget": 1000,
        "per_user_cap": 80,
        "rule": {"kind": "min_actions", "event": "checkin", "count": 3},
        "reward": {"kind": "points", "amounts": [100, 50, 10]},
    }
    return RewardCampaign.model_validate({**base, **changes})


def load(
    engine: Engine,
    settings: Settings,
    users: list[dict[str, Any]],
    actions: dict[str, list[dt.datetime]],
) -> None:
    events = [
        {
            "event_id": f"{uid}-{i}",
            "user_id": uid,
            "name": "checkin",
            "occurred_at": moment.isoformat(),
        }
        for uid, moments in actions.items()
        for i, moment in enumerate(moments)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)


def user(uid: str, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": uid,
        "signup_at": "2026-10-01T00:00:00Z",
        "device_hash": f"dev-{uid}",
        "ip_hash": f"ip-{uid}",
        **extra,
    }


def days(*offsets: int, hour: int = 4) -> list[dt.datetime]:
    return [START + dt.timedelta(days=d, hours=hour) for d in offsets]


@pytest.fixture
def planted(engine: Engine, settings: Settings) -> None:
    load(
        engine,
        settings,
        [user(u) for u in ("a", "b", "c", "d")],
        {
            "a": days(0, 1, 2, 3, 4),  # a five-day streak
            "b": days(0, 1, 3),  # three actions, a two-day streak
            "c": days(0),
            "d": [
                START + dt.timedelta(hours=5, minutes=m) for m in range(0, 80, 10)
            ],  # 8 in one day
        },
    )


@pytest.mark.usefixtures("planted")
def test_each_rule_picks_its_winners(engine: Engine) -> None:
    with session_scope(engine) as session:
        at_least = compute_plan(session, campaign())
        streak = compute_plan(
            session, campaign(rule={"kind": "streak", "event": "checkin", "days": 3})
        )
        top = compute_plan(
            session, campaign(rule={"kind": "top_n", "event": "checkin", "winners": 2})
        )
    assert [e.user_id for e in at_least.entries] == ["a", "b", "d"]
    assert [e.user_id for e in streak.entries] == ["a"]
    assert [(e.user_id, e.rank, e.amount) for e in top.entries] == [
        ("d", 1, Decimal(80)),  # 100 for first place, capped per user at 80
        ("a", 2, Decimal(50)),
    ]


@pytest.mark.usefixtures("planted")
def test_a_lottery_draws_only_with_a_seed_committed_before_its_window_closed(
    engine: Engine,
) -> None:
    lottery = campaign(rule={"kind": "lottery", "event": "checkin", "count": 3, "winners": 2})
    with session_scope(engine) as session, pytest.raises(DrawRefused, match="before its window"):
        compute_plan(session, lottery)  # nobody committed: no draw
    with session_scope(engine) as session, pytest.raises(ConfigError, match="window closed"):
        commit(session, lottery, lottery.end_utc)  # too late to commit
    with session_scope(engine) as session:
        assert session.get(RewardDraw, "nov") is None
        record = commit(session, lottery, lottery.start_utc)
        again = commit(session, lottery, lottery.start_utc + dt.timedelta(days=1))
        [notice] = publications(session, "nov", "commitment")
    assert again.seed == record.seed  # a second commit keeps the first seed
    assert hashlib.sha256(record.seed.encode()).hexdigest() in notice.content
    assert record.seed not in notice.content  # the hash is published, the seed kept
    with session_scope(engine) as session:
        first = compute_plan(session, lottery)
        rerun = compute_plan(session, lottery)
    assert [e.user_id for e in rerun.entries] == [e.user_id for e in first.entries]
    salt = salt_of(record.seed)
    assert first.public_ids == sorted(public_id(salt, u) for u in ("a", "b", "d"))
    unsalted = hashlib.sha256(b"nov:a").hexdigest()[:16]
    assert unsalted not in first.public_ids  # a guessable id cannot be looked up
    published = {
        "campaign": "nov",
        "sha256_of_seed": record.commitment,
        "committed_at": "2026-11-02T00:00:00Z",
        "window_end": "2026-11-09T00:00:00Z",
    }
    reveal = {
        **published,
        "seed": record.seed,
        "salt": salt,
        "winners": 2,
        "participants": first.public_ids,
        "drawn": [e.public_id for e in first.entries],
    }
    assert problems(published, reveal) == []
    assert problems(published, {**reveal, "seed": "another-seed"})[:2] == [
        "the revealed seed does not hash to the published commitment",
        "the salt is not the one the seed gives",
    ]
    swapped = {**reveal, "drawn": reveal["drawn"][::-1]}  # two winners in the other order
    assert problems(published, swapped) == [
        "re-running the draw gives other winners than the published ones"
    ]
    late = {**published, "committed_at": "2026-11-09T00:00:01Z"}
    assert "the seed was committed after the window closed" in problems(late, reveal)


def test_colliding_masks_are_told_apart_by_public_id(engine: Engine, settings: Settings) -> None:
    twins = ["u0a73", "u0b73"]  # both mask to u0***73
    load(
        engine,
        settings,
        [user(u, device_hash="one-device") for u in twins]
        + [user(f"x{i}", device_hash="one-device") for i in range(2)],
        {u: days(0, 1, 2) for u in twins},
    )
    with session_scope(engine) as session:
        payout = compute_plan(session, campaign())
    assert [e.flags for e in payout.entries] == [["4 accounts share one device"]] * 2
    first, second = payout.entries
    assert first.public_id != second.public_id
    assert [e.user_id for e in payout.payable({second.public_id})] == ["u0b73"]


def test_fraud_screens_flag_planted_cheaters(engine: Engine, settings: Settings) -> None:
    three = days(0, 1, 2)
    users = [
        user("honest"),
        *[user(f"farm{i}", device_hash="shared-device") for i in range(4)],
        user("bot"),
        user("burst", signup_at=(START + dt.timedelta(hours=1)).isoformat()),
        user("loop1", referred_by="loop2"),
        user("loop2", referred_by="loop1"),
        user("self", referred_by="self"),
        user("blocked"),
    ]
    actions = {u["user_id"]: three for u in users}
    actions["bot"] = [START + dt.timedelta(hours=2, milliseconds=200 * i) for i in range(6)]
    actions["burst"] = [START + dt.timedelta(hours=2, minutes=2 * i) for i in range(25)]
    load(engine, settings, users, actions)
    with session_scope(engine) as session:
        payout = compute_plan(session, campaign(blocklist=["blocked"]))
    flags = {e.user_id: e.flags for e in payout.entries}
    assert flags["honest"] == []
    assert all("4 accounts share one device" in flags[f"farm{i}"] for i in range(4))
    assert flags["bot"] == ["actions faster than a person could make them"]
    assert "new account with a burst of actions" in flags["burst"]
    assert flags["loop1"] == ["referral loop with lo***p2"]
    assert flags["self"] == ["referred themselves"]
    assert flags["blocked"] == ["blocklisted"]
    assert [e.user_id for e in payout.payable()] == ["honest"]
    assert {e.user_id for e in payout.payable({"bot"})} == {"honest", "bot"}


def _ledger(engine: Engine) -> tuple[int, Decimal, Decimal]:
    with session_scope(engine) as session:
        points = session.scalar(select(func.count()).select_from(PointsEntry)) or 0
        total = session.scalar(select(func.coalesce(func.sum(PointsEntry.points), 0)))
        budget = session.get(RewardBudget, "nov")
        return int(points), Decimal(total), budget.reserved if budget else Decimal(0)


@pytest.mark.usefixtures("planted")
def test_paying_twice_pays_once_and_never_over_budget(engine: Engine) -> None:
    tight = campaign(budget=100, rule={"kind": "top_n", "event": "checkin", "winners": 3})
    with session_scope(engine) as session:
        payout = compute_plan(session, tight)  # 80 + 50 + 10 = 140 > 100
    first = pay_batch(engine, tight, payout.payable())
    second = pay_batch(engine, tight, payout.payable())
    assert (first.paid, first.over_budget) == (2, 1)  # 80 then 10 fit; 50 does not
    assert (second.paid, second.already_paid) == (0, 2)
    assert _ledger(engine) == (2, Decimal(90), Decimal(90))


@pytest.mark.usefixtures("planted")
def test_crash_mid_payout_then_rerun_pays_the_rest_once(engine: Engine) -> None:
    chosen = campaign()
    with session_scope(engine) as session:
        entries = compute_plan(session, chosen).payable()

    def provider_dies(rows: list[RewardLedgerEntry]) -> dict[str, str | None]:
        raise RuntimeError("killed mid-payout")

    pay_batch(engine, chosen, entries[:1])
    with pytest.raises(RuntimeError):
        pay_batch(engine, chosen, entries, provider=provider_dies)
    with session_scope(engine) as session:
        statuses = sorted(r.status for r in session.scalars(select(RewardLedgerEntry)))
    assert statuses == ["paid", "reserved", "reserved"]
    rerun = pay_batch(engine, chosen, entries)
    assert (rerun.paid, rerun.already_paid) == (2, 1)
    assert _ledger(engine) == (3, Decimal(240), Decimal(240))


@pytest.mark.usefixtures("planted")
def test_two_payouts_at_once_pay_once_within_budget(engine: Engine) -> None:
    chosen = campaign(budget=150)
    with session_scope(engine) as session:
        entries = compute_plan(session, chosen).payable()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pay_batch(engine, chosen, entries)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    points, total, reserved = _ledger(engine)
    assert total == reserved <= Decimal(150)
    assert points == 1  # 100 fits the budget of 150, the next 100 does not; nobody twice


@pytest.mark.usefixtures("planted")
def test_http_rewards_provider_gets_the_ledger_key_and_a_5xx_storm_pays_once(
    engine: Engine, local_server: LocalServer
) -> None:
    chosen = campaign()
    with session_scope(engine) as session:
        entries = compute_plan(session, chosen).payable()
    local_server.faults.error_rate = 0.4
    local_server.faults.reject_keys.add("nov:b:points")
    provider = http_rewards_provider(local_server.url + "/v1/rewards", timeout=5)
    result = pay_batch(engine, chosen, entries, provider)
    assert (result.paid, result.failed) == (2, 1)
    assert set(local_server.recorder.deliveries) == {"nov:a:points", "nov:d:points"}
    with session_scope(engine) as session:
        failed = session.scalars(
            select(RewardLedgerEntry).where(RewardLedgerEntry.status == "failed")
        ).one()
    assert failed.user_id == "b" and "HTTP 400" in (failed.reason or "")


def _row(engine: Engine, key: str) -> tuple[str, int]:
    with session_scope(engine) as session:
        row = session.scalars(select(RewardLedgerEntry).where(RewardLedgerEntry.key == key)).one()
        return row.status, row.attempts


@pytest.mark.usefixtures("planted")
def test_a_failed_payout_releases_its_budget_and_a_later_run_retries_it(
    engine: Engine, local_server: LocalServer
) -> None:
    chosen = campaign(budget=160, max_payout_attempts=2)  # a, b, d at 80 each: 240 > 160
    with session_scope(engine) as session:
        entries = compute_plan(session, chosen).payable()
    provider = http_rewards_provider(local_server.url + "/v1/rewards", timeout=5)
    local_server.faults.reject_keys.add("nov:a:points")
    first = pay_batch(engine, chosen, entries, provider)
    assert (first.paid, first.failed, first.over_budget) == (1, 1, 1)  # a failed, d no budget
    assert first.released == Decimal(80)
    assert _budget(engine) == Decimal(80)  # only b's payout holds budget
    assert _row(engine, "nov:a:points") == ("failed", 1)

    local_server.faults.reject_keys.clear()  # the provider's problem is fixed
    retry = pay_batch(engine, chosen, entries, provider)
    assert (retry.paid, retry.already_paid, retry.over_budget) == (1, 1, 1)
    assert _row(engine, "nov:a:points") == ("paid", 2)
    assert _budget(engine) == Decimal(160)
    assert local_server.recorder.refusals["nov:a:points"] == 1


@pytest.mark.usefixtures("planted")
def test_a_payout_that_keeps_failing_is_given_up_after_its_attempts(
    engine: Engine, local_server: LocalServer
) -> None:
    chosen = campaign(max_payout_attempts=2)
    with session_scope(engine) as session:
        entries = compute_plan(session, chosen).payable()
    provider = http_rewards_provider(local_server.url + "/v1/rewards", timeout=5)
    local_server.faults.reject_keys.add("nov:a:points")
    results = [pay_batch(engine, chosen, entries, provider) for _ in range(3)]
    assert [r.failed for r in results] == [1, 1, 0]
    assert results[2].given_up == 1
    assert local_server.recorder.refusals["nov:a:points"] == 2  # never a third call
    assert _row(engine, "nov:a:points") == ("failed", 2)
    assert _budget(engine) == Decimal(160)  # b and d; a's 80 released


def _budget(engine: Engine) -> Decimal:
    with session_scope(engine) as session:
        budget = session.get(RewardBudget, "nov")
        return budget.reserved if budget else Decimal(0)


@pytest.mark.usefixtures("planted")
def test_a_failed_payout_whose_budget_went_elsewhere_is_over_budget_not_retried_forever(
    engine: Engine, local_server: LocalServer
) -> None:
    chosen = campaign(budget=160)  # a, b, d at 80 each
    with session_scope(engine) as session:
        a, b, d = compute_plan(session, chosen).payable()
    provider = http_rewards_provider(local_server.url + "/v1/rewards", timeout=5)
    local_server.faults.reject_keys.add("nov:a:points")
    pay_batch(engine, chosen, [a, b], provider)  # a fails and gives its 80 back
    pay_batch(engine, chosen, [d], provider)  # d takes it
    local_server.faults.reject_keys.clear()
    retry = pay_batch(engine, chosen, [a, b, d], provider)
    assert (retry.paid, retry.over_budget, retry.already_paid) == (0, 1, 2)
    assert _row(engine, "nov:a:points") == ("over_budget", 1)
    assert _budget(engine) == Decimal(160)


def test_the_first_approved_plan_stands(engine: Engine, settings: Settings) -> None:
    from yunying.rewards.approval import Decision, approved_plan, store_approved_plan
    from yunying.rewards.plan import PayoutPlan, PlanEntry

    first = PayoutPlan("nov", [PlanEntry("a", 1, Decimal(10), public_id="p-a")], 1)
    second = PayoutPlan("nov", [PlanEntry("b", 1, Decimal(10), public_id="p-b")], 1)
    now = dt.datetime(2026, 11, 10)
    with session_scope(engine) as session:
        store_approved_plan(session, first, Decision(True, "lead"), None, None, now)
    with session_scope(engine) as session:
        kept = store_approved_plan(session, second, Decision(True, "other"), None, None, now)
        stored = approved_plan(session, "nov")
    assert kept.plan.digest() == first.digest() != second.digest()
    assert stored is not None and [e.user_id for e in stored.payable()] == ["a"]
    assert stored.approver == "lead"
