"""Campaigns that target segments, run in priority order under a cross-campaign cap, with
message variants drawn deterministically."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from tests.builders import DAY, silent_users
from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.lifecycle.holdout import in_holdout
from yunying.lifecycle.states import compute_lifecycle
from yunying.messaging import send as sending
from yunying.messaging.campaign import Campaign, load_campaign, nightly_campaigns
from yunying.messaging.outbox import plan
from yunying.messaging.variants import variant_of
from yunying.segments.compile import compile_segment
from yunying.segments.definition import SegmentLibrary
from yunying.sources.validate.rules import holdout_bucket
from yunying.store.engine import create_store_engine, session_scope, store_error_is_transient
from yunying.store.models import OutboxMessage, User

NOON_IN_SHANGHAI = dt.datetime(2026, 11, 2, 4, 0)


def campaign(**changes: object) -> Campaign:
    base = {
        "name": "winback",
        "segment": ["silent"],
        "channels": ["email"],
        "template": "winback",
        "holdout_percent": 10,
        "frequency_cap_days": 0,
        "quiet_hours": False,
    }
    return Campaign.model_validate({**base, **changes})


def _variants(*weights: int, stopped: tuple[str, ...] = ()) -> list[dict[str, object]]:
    names = "abcdef"
    return [
        {"name": names[i], "template": "winback", "weight": w, "stopped": names[i] in stopped}
        for i, w in enumerate(weights)
    ]


def test_variant_assignment_is_balanced_by_weight() -> None:
    chosen = campaign(variants=_variants(1, 1, 2))
    drawn = Counter(
        variant_of(b * 104_729 % 2**31, "spring", chosen.variants) for b in range(40_000)
    )
    assert abs(drawn["a"] / 40_000 - 0.25) < 0.01
    assert abs(drawn["b"] / 40_000 - 0.25) < 0.01
    assert abs(drawn["c"] / 40_000 - 0.50) < 0.01


def test_stopping_a_variant_moves_only_its_own_users() -> None:
    before = campaign(variants=_variants(1, 1, 1))
    after = campaign(variants=_variants(1, 1, 1, stopped=("b",)))
    buckets = [b * 7_919 % 2**31 for b in range(20_000)]
    moved = Counter()
    for bucket in buckets:
        was = variant_of(bucket, "spring", before.variants)
        now = variant_of(bucket, "spring", after.variants)
        assert now != "b"
        if was != "b":
            assert now == was
        else:
            moved[now] += 1
    assert abs(moved["a"] - moved["c"]) < 0.1 * sum(moved.values())  # split evenly


def test_variants_are_independent_of_the_holdout() -> None:
    from yunying.lifecycle.holdout import in_holdout

    chosen = campaign(variants=_variants(1, 1))
    by_arm: dict[bool, Counter[str | None]] = {True: Counter(), False: Counter()}
    for b in range(20_000):
        bucket = b * 15_485_863 % 2**31
        by_arm[in_holdout(bucket, "winback", 20)][
            variant_of(bucket, "winback", chosen.variants)
        ] += 1
    for arm in by_arm.values():
        assert abs(arm["a"] / (arm["a"] + arm["b"]) - 0.5) < 0.03


def test_plan_draws_the_same_variants_as_python_and_sends_their_templates(
    engine: Engine, settings: Settings
) -> None:
    silent_users(engine, settings, 200)
    chosen = campaign(
        variants=[
            {"name": "plain", "template": "winback", "weight": 1},
            {"name": "reward", "template": "reward_won", "weight": 1},
        ]
    )
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    with session_scope(engine) as session:
        rows = session.execute(
            select(OutboxMessage.variant, User.holdout_bucket, OutboxMessage.status).join(
                User, User.user_id == OutboxMessage.user_id
            )
        ).all()
    assert rows and all(v == variant_of(b, chosen.name, chosen.variants) for v, b, _ in rows)
    assert {v for v, _, _ in rows} == {"plain", "reward"}
    outbox_dir = settings.outbox_path
    sending.send_all(engine, settings, chosen, DAY, "w1", 50, NOON_IN_SHANGHAI)
    written = [p.read_text(encoding="utf-8") for p in outbox_dir.rglob("*") if p.is_file()]
    sent = Counter(v for v, _, s in rows if s == "queued")
    assert len(written) == sent["plain"] + sent["reward"]


def _plan_in_turn(url: str, chosen: Campaign, audience_of: object, hold: float) -> None:
    """One worker: plan the campaign, keep the transaction open a moment, commit; retried
    like the task when the store reports a transient conflict."""
    engine = create_store_engine(url)
    try:
        for _ in range(20):
            try:
                with session_scope(engine) as session:
                    audience = audience_of(session)  # type: ignore[operator]
                    plan(session, chosen, DAY, audience=audience)
                    time.sleep(hold)
                return
            except OperationalError as exc:
                if not store_error_is_transient(exc):
                    raise
                time.sleep(0.05)
        raise AssertionError("never planned")
    finally:
        engine.dispose()


@pytest.mark.parametrize("order", ["together", "in-turn"])
def test_overlapping_campaigns_never_message_a_user_twice_a_night(
    engine: Engine, settings: Settings, store_url: str, tmp_path: Path, order: str
) -> None:
    users = silent_users(engine, settings, 120)
    folder = tmp_path / "segments"
    folder.mkdir()
    (folder / "everyone-silent.toml").write_text(
        'name = "everyone-silent"\nwhere = { state = ["silent"] }\n'
    )
    (folder / "english.toml").write_text('name = "english"\nwhere = { locale = ["en"] }\n')
    library = SegmentLibrary(folder)

    def audience(name: str) -> object:
        return lambda session: compile_segment(
            session, library, library.get(name), DAY, settings.zone
        )

    first = campaign(name="spring", holdout_percent=10)
    second = campaign(name="summer", holdout_percent=0)
    workers = [
        threading.Thread(
            target=_plan_in_turn, args=(store_url, first, audience("everyone-silent"), 0.4)
        ),
        threading.Thread(target=_plan_in_turn, args=(store_url, second, audience("english"), 0.4)),
    ]
    for worker in workers:
        worker.start()
        if order == "in-turn":
            worker.join()
    for worker in workers:
        worker.join()
    with session_scope(engine) as session:
        rows = session.execute(
            select(OutboxMessage.user_id, OutboxMessage.campaign, OutboxMessage.status)
        ).all()
    taken = Counter(user for user, _, status in rows if status != "suppressed")
    assert taken and max(taken.values()) == 1
    english = {u for i, u in enumerate(users) if i % 2}
    by_campaign = Counter(c for _, c, s in rows if s != "suppressed")
    assert set(taken) == set(users)  # everyone is someone's: nobody lost to the cap
    assert by_campaign["spring"] + by_campaign["summer"] == len(users)
    assert {u for u, c, s in rows if c == "summer"} == english
    for worker_engine in (engine,):
        sending.send_all(worker_engine, settings, first, DAY, "w1", 50, NOON_IN_SHANGHAI)
        sending.send_all(worker_engine, settings, second, DAY, "w2", 50, NOON_IN_SHANGHAI)
    with session_scope(engine) as session:
        sent = Counter(
            session.scalars(select(OutboxMessage.user_id).where(OutboxMessage.status == "sent"))
        )
    assert sent and max(sent.values()) == 1


def test_a_campaign_can_turn_the_cap_off(engine: Engine, settings: Settings) -> None:
    silent_users(engine, settings, 20)
    with session_scope(engine) as session:
        plan(session, campaign(name="spring", holdout_percent=0), DAY)
        plan(session, campaign(name="notice", holdout_percent=0, cross_campaign_cap=False), DAY)
        rows = session.execute(select(OutboxMessage.campaign, OutboxMessage.status)).all()
    assert Counter(rows) == {("spring", "queued"): 20, ("notice", "queued"): 20}


def test_a_user_another_campaign_sent_tonight_is_suppressed_with_that_reason(
    engine: Engine, settings: Settings
) -> None:
    """Tonight's message from another campaign also trips the frequency cap once sent; the
    reason names tonight's campaign, as README promises."""
    users = silent_users(engine, settings, 20)
    first = campaign(name="spring", holdout_percent=0, frequency_cap_days=7)
    with session_scope(engine) as session:
        plan(session, first, DAY)
    assert sending.send_all(engine, settings, first, DAY, "w1", 50, NOON_IN_SHANGHAI)["sent"] == 20
    with session_scope(engine) as session:
        plan(session, campaign(name="summer", holdout_percent=0, frequency_cap_days=7), DAY)
        reasons = Counter(
            session.execute(
                select(OutboxMessage.status, OutboxMessage.reason).where(
                    OutboxMessage.campaign == "summer"
                )
            ).all()
        )
    assert reasons == {("suppressed", "another campaign has this user tonight"): len(users)}


def test_held_out_users_are_capped_like_sent_ones_so_the_holdout_share_holds(
    engine: Engine, settings: Settings
) -> None:
    """Three nights of a campaign with a 7-day cap: a held-out user is contacted for the cap
    as a sent one is, so neither comes back the next nights and the holdout stays ~10%."""
    users = silent_users(engine, settings, 300)
    chosen = campaign(holdout_percent=10, frequency_cap_days=7)
    for night in range(3):
        day = DAY + dt.timedelta(days=night)
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle)
            plan(session, chosen, day)
        noon = NOON_IN_SHANGHAI + dt.timedelta(days=night)
        sending.send_all(engine, settings, chosen, day, "w1", 500, noon)
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                OutboxMessage.user_id,
                OutboxMessage.business_date,
                OutboxMessage.status,
                OutboxMessage.reason,
            )
        ).all()
    eligible = Counter(user for user, _, status, _ in rows if status != "suppressed")
    assert set(eligible) == set(users) and max(eligible.values()) == 1  # once each
    later = Counter((status, reason) for _, day, status, reason in rows if day > DAY)
    assert later == {("suppressed", "contacted within 7 days"): 2 * len(users)}
    held = sum(1 for _, _, status, _ in rows if status == "holdout")
    expected = sum(in_holdout(holdout_bucket(u), "winback", 10) for u in users)
    assert held == expected and 0.05 < held / len(users) < 0.15


def _write(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.toml").write_text(f'name = "{name}"\n{body}')


def test_nightly_campaigns_are_the_active_ones_in_priority_order(tmp_path: Path) -> None:
    common = 'segment = ["silent"]\nchannels = ["email"]\ntemplate = "winback"\nnightly = true\n'
    _write(tmp_path, "late", common + "priority = 20\n")
    _write(tmp_path, "early", common + "priority = 10\n")
    _write(tmp_path, "over", common + "priority = 1\nends = 2026-10-31\n")
    _write(tmp_path, "future", common + "priority = 1\nstarts = 2026-11-02\n")
    _write(tmp_path, "manual", common.replace("nightly = true\n", "") + "priority = 0\n")
    assert [c.name for c in nightly_campaigns(tmp_path, DAY)] == ["early", "late"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('audience = { tier = ["gold"] }', "audience"),
        ('audience = "Bad Name"', "audience"),
        ('[[variants]]\nname = "a"\ntemplate = "winback"\nstopped = true', "variants"),
        ("starts = 2026-11-02\nends = 2026-11-01", "ends"),
        ('[objective]\nkind = "event"', "objective"),
        ("message_cost = { fax = 1 }", "message_cost.fax"),
    ],
    ids=["inline-audience", "audience-name", "all-stopped", "dates", "objective", "cost"],
)
def test_bad_campaign_strategy_fields_are_named(tmp_path: Path, body: str, field: str) -> None:
    _write(
        tmp_path,
        "bad",
        'segment = ["silent"]\nchannels = ["email"]\ntemplate = "winback"\n' + body + "\n",
    )
    with pytest.raises(ConfigError, match=re.escape(f"bad.toml: field '{field}")):
        load_campaign(tmp_path / "bad.toml")


def test_the_campaigns_flow_sends_in_priority_order_once_per_user(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.campaigns import campaigns

    users = silent_users(engine, settings, 60)
    folder = tmp_path / "campaigns"
    folder.mkdir()
    common = (
        'segment = ["silent"]\nchannels = ["email"]\ntemplate = "winback"\nnightly = true\n'
        "quiet_hours = false\nfrequency_cap_days = 0\nholdout_percent = 0\n"
    )
    _write(folder, "broad", common + "priority = 20\n")
    _write(folder, "english", common + 'priority = 10\naudience = { locale = ["en"] }\n')
    _write(folder, "ended", common + "priority = 1\nends = 2026-10-01\n")
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(folder))
    results = campaigns(business_date=DAY)
    assert [r["campaign"] for r in results] == ["english", "broad"]
    assert [r["sent"] for r in results] == [30, 30]
    with session_scope(engine) as session:
        sent = Counter(
            session.scalars(select(OutboxMessage.user_id).where(OutboxMessage.status == "sent"))
        )
    assert set(sent) == set(users) and max(sent.values()) == 1
    # The same night from the command line: every message already went, none goes twice.
    from cli.main import main

    assert main(["run", "campaigns", "--date", str(DAY)]) == 0
    with session_scope(engine) as session:
        assert session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")
        ) == len(users)
    # A night with no campaign active says so, not an empty list.
    for name in ("broad", "english"):
        (folder / f"{name}.toml").unlink()
    capsys.readouterr()
    assert main(["run", "campaigns", "--date", str(DAY)]) == 0
    assert f"no campaign in {folder} is active for {DAY}" in capsys.readouterr().out


def test_the_nightly_sends_every_active_campaign_once_per_user_and_date(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two nightly campaigns on overlapping segments (a segment file and an inline one): the
    higher priority claims its users, the other takes the rest, nobody hears twice, and a
    second nightly for the same date adds nothing."""
    from flows.nightly import nightly

    users = silent_users(engine, settings, 60)
    english = {u for i, u in enumerate(users) if i % 2}
    segments = tmp_path / "segments"
    segments.mkdir()
    _write(segments, "everyone-silent", 'where = { state = ["silent"] }\n')
    folder = tmp_path / "campaigns"
    folder.mkdir()
    common = (
        'segment = ["silent"]\nchannels = ["email"]\ntemplate = "winback"\nnightly = true\n'
        "quiet_hours = false\nfrequency_cap_days = 0\n"
    )
    _write(folder, "broad", common + 'priority = 20\naudience = "everyone-silent"\n')
    _write(folder, "english", common + 'priority = 10\naudience = { locale = ["en"] }\n')
    _write(folder, "ended", common + "priority = 1\nends = 2026-10-01\n")
    _write(folder, "by-hand", common.replace("nightly = true\n", "") + "priority = 1\n")
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(folder))
    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(segments))

    summary = nightly(business_date=DAY)
    assert list(summary["campaigns"]) == ["english", "broad"]
    again = nightly(business_date=DAY)
    assert again["messages"] == summary["messages"]
    with session_scope(engine) as session:
        rows = session.execute(
            select(OutboxMessage.campaign, OutboxMessage.user_id, OutboxMessage.status)
        ).all()
    per_campaign_user = Counter((c, u) for c, u, _ in rows)
    assert max(per_campaign_user.values()) == 1  # each campaign once per user and date
    taken = {(c, u) for c, u, s in rows if s != "suppressed"}
    assert {u for c, u in taken if c == "english"} == english
    assert {u for c, u in taken if c == "broad"} == set(users) - english
    sent = Counter(u for _, u, s in rows if s == "sent")
    assert sent and max(sent.values()) == 1  # nobody messaged twice in the night
    assert summary["messages"]["sent"] == sum(sent.values())
    assert {c for c, _, _ in rows} == {"english", "broad"}


def test_the_nightly_campaign_parameter_narrows_the_night_to_one_campaign(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.nightly import nightly

    silent_users(engine, settings, 10)
    folder = tmp_path / "campaigns"
    folder.mkdir()
    common = (
        'segment = ["silent"]\nchannels = ["email"]\ntemplate = "winback"\nnightly = true\n'
        "quiet_hours = false\nfrequency_cap_days = 0\nholdout_percent = 0\n"
    )
    _write(folder, "first", common + "priority = 10\n")
    _write(folder, "second", common + "priority = 20\n")
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(folder))
    summary = nightly(business_date=DAY, campaign="second")
    assert list(summary["campaigns"]) == ["second"]
    assert summary["messages"]["sent"] == 10
    with session_scope(engine) as session:
        assert set(session.scalars(select(OutboxMessage.campaign))) == {"second"}


def test_the_nights_campaigns_share_one_budget_of_send_tasks(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two campaigns of 105 messages at one message a batch: each alone may make up to
    MAX_SEND_TASKS send tasks, together they stay within it (their batches grow)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterName,
        TaskRunFilterStartTime,
    )

    from flows.campaigns import campaigns
    from flows.reactivation import MAX_SEND_TASKS

    silent_users(engine, settings, 2 * 105)
    folder = tmp_path / "campaigns"
    folder.mkdir()
    common = (
        'segment = ["silent"]\nchannels = ["email"]\ntemplate = "winback"\nnightly = true\n'
        "quiet_hours = false\nfrequency_cap_days = 0\nholdout_percent = 0\n"
    )
    _write(folder, "english", common + 'priority = 10\naudience = { locale = ["en"] }\n')
    _write(folder, "broad", common + "priority = 20\n")
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(folder))
    monkeypatch.setenv("YUNYING_BATCH_SIZE", "1")
    state = campaigns(business_date=DAY, return_state=True)
    assert [r["sent"] for r in state.result()] == [105, 105]
    with get_client(sync_client=True) as client:
        started = client.read_flow_run(state.state_details.flow_run_id).start_time
        only = TaskRunFilter(
            name=TaskRunFilterName(like_="send-batch"),
            start_time=TaskRunFilterStartTime(after_=started),
        )
        sends: list[object] = []
        while page := client.read_task_runs(task_run_filter=only, limit=200, offset=len(sends)):
            sends += page
    assert 2 * 105 / 2 <= len(sends) <= MAX_SEND_TASKS
