"""The reward-payout flow through a real Prefect API, approved the way the UI does it: the run
pauses, and `resume_flow_run` answers with the Resume form's own fields."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.sorting import ArtifactSort
from sqlalchemy import Engine, func, select

from tests.builders import load_records
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.rewards.campaign import load_reward_campaign
from yunying.rewards.plan import compute_plan
from yunying.rewards.publish import commit, latest_publication, publications
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage, PointsEntry, RewardApproval, RewardLedgerEntry

pytestmark = pytest.mark.usefixtures("prefect")
ROOT = Path(__file__).resolve().parents[2]

CAMPAIGN = """
name = "{name}"
start = 2026-11-02T00:00:00Z
end = {end}
budget = 500
per_user_cap = 100
{extra}
[rule]
kind = "{kind}"
event = "checkin"
count = 2
winners = 3
[reward]
kind = "points"
amounts = [100, 50]
"""


def _campaign(
    folder: Path,
    kind: str = "min_actions",
    extra: str = "",
    end: str = "2026-11-09T00:00:00Z",
) -> str:
    name = f"{kind.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(
        CAMPAIGN.format(name=name, kind=kind, extra=extra, end=end), encoding="utf-8"
    )
    return name


def _participants(
    engine: Engine, settings: Settings, ids: range, prefix: str = "w", device: str = ""
) -> None:
    users = [
        {
            "user_id": f"{prefix}{i}",
            "signup_at": "2026-10-01T00:00:00Z",
            "email": f"{prefix}{i}@example.com",
            "device_hash": device or f"{prefix}d{i}",
        }
        for i in ids
    ]
    events = [
        {
            "event_id": f"{prefix}{i}-{d}",
            "user_id": f"{prefix}{i}",
            "name": "checkin",
            "occurred_at": f"2026-11-0{3 + d}T03:00:00Z",
        }
        for i in ids
        for d in range(2)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)


@pytest.fixture
def rewards_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    folder = tmp_path / "reward-files"
    folder.mkdir()
    monkeypatch.setenv("YUNYING_REWARD_DIR", str(folder))
    return folder


def _run_paused(name: str, **parameters: Any) -> tuple[threading.Thread, dict[str, Any], Any]:
    """Start the payout in a thread and wait until it pauses for approval."""
    from flows.reward_payout import reward_payout

    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["state"] = reward_payout(
            campaign=name, poll_interval_seconds=1, return_state=True, **parameters
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[f"reward-payout-{name}"])
                )
            )
            paused = [r for r in runs if r.state and r.state.is_paused()]
            if paused:
                return thread, outcome, paused[0].id
            if not thread.is_alive():
                raise AssertionError(f"the payout ended without pausing: {outcome}")
            time.sleep(0.3)
    raise AssertionError("the payout never paused for approval")


def _approve(name: str, answer: dict[str, Any], **parameters: Any) -> Any:
    """Run the payout, answer the Resume form through the API, return the final state."""
    from prefect.flow_runs import resume_flow_run

    thread, outcome, run_id = _run_paused(name, **parameters)
    resume_flow_run(run_id, run_input=answer)
    thread.join(timeout=120)
    return outcome["state"]


def _plan_artifact(name: str) -> Any:
    """The latest payout-plan artifact of the campaign: what the approver sees."""
    with get_client(sync_client=True) as client:
        [plan] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"payout-plan-{name}"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return plan


def _paid(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(PointsEntry)) or 0)


def _audit(engine: Engine, name: str) -> list[RewardApproval]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(RewardApproval)
                .where(RewardApproval.campaign == name)
                .order_by(RewardApproval.id)
            )
        )


def test_a_blank_approver_approves_nothing(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    from prefect.flow_runs import resume_flow_run

    name = _campaign(rewards_dir)
    _participants(engine, settings, range(4))
    thread, outcome, run_id = _run_paused(name)
    with pytest.raises(RuntimeError, match="Cannot resume"):  # the form requires a name
        resume_flow_run(run_id, run_input={"approve": True, "approver": ""})
    time.sleep(2)
    assert _paid(engine) == 0
    resume_flow_run(run_id, run_input={"approve": True, "approver": "   ", "note": ""})
    thread.join(timeout=120)
    state = outcome["state"]
    assert (state.name, _paid(engine)) == ("Refused", 0)  # the flow checks it too
    assert "no approver was named" in state.message
    [audit] = _audit(engine, name)
    assert (audit.approved, audit.refusal) == (
        False,
        "no approver was named; the approver field is required",
    )


def test_only_the_campaigns_approvers_may_approve(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    name = _campaign(rewards_dir, extra='approvers = ["lead@ops", "cfo@ops"]')
    _participants(engine, settings, range(4))
    state = _approve(name, {"approve": True, "approver": "intern@ops", "note": "lgtm"})
    assert (state.name, _paid(engine)) == ("Refused", 0)
    assert "'intern@ops' may not approve" in state.message
    state = _approve(name, {"approve": True, "approver": " Lead@ops "})
    assert (state.name, _paid(engine), state.result()["paid"]) == ("Paid", 4, 4)
    assert [(a.approved, a.approver) for a in _audit(engine, name)] == [
        (False, "intern@ops"),
        (True, "Lead@ops"),
    ]


def test_the_person_who_started_a_run_may_not_approve_it(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    name = _campaign(rewards_dir, extra="require_second_person = true")
    _participants(engine, settings, range(4))
    same = _approve(name, {"approve": True, "approver": "Alice"}, requested_by="alice")
    assert (same.name, _paid(engine)) == ("Refused", 0)
    assert "started this run" in same.message
    unknown = _approve(name, {"approve": True, "approver": "bob"})
    assert (unknown.name, _paid(engine)) == ("Refused", 0)
    assert "who started this run is unknown" in unknown.message
    second = _approve(name, {"approve": True, "approver": "bob"}, requested_by="alice")
    assert (second.name, _paid(engine)) == ("Paid", 4)
    assert _audit(engine, name)[-1].requested_by == "alice"


def test_rejected_and_timed_out_runs_are_told_apart_and_pay_nothing(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    from flows.reward_payout import reward_payout

    name = _campaign(rewards_dir)
    _participants(engine, settings, range(2))
    rejected = _approve(name, {"approve": False, "approver": "lead"})
    assert (rejected.name, rejected.message) == ("Rejected", "rejected by lead: nothing paid")
    timed_out = reward_payout(
        campaign=name, approval_timeout_seconds=2, poll_interval_seconds=1, return_state=True
    )
    # Prefect fails a run whose pause expired, whatever it returns; the message and the
    # outcome artifact say it timed out.
    assert timed_out.is_failed() and "timed out" in (timed_out.message or "")
    assert _paid(engine) == 0
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"payout-outcome-{name}"]), is_latest=None
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert artifact.description and artifact.description.startswith("Timed out: ")


def test_a_lottery_rerun_after_late_participants_pays_nobody_new(
    engine: Engine,
    settings: Settings,
    rewards_dir: Path,
    local_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = _campaign(rewards_dir, kind="lottery")
    _participants(engine, settings, range(8))
    chosen = load_reward_campaign(rewards_dir, name)
    with session_scope(engine) as session:  # `yunying rewards commit` at the campaign's start
        commit(session, chosen, chosen.start_utc)
    with session_scope(engine) as session:
        drawn = [e.user_id for e in compute_plan(session, chosen).entries]
    flagged, refused, fine = drawn
    path = rewards_dir / f"{name}.toml"  # a fraud screen excludes the first one drawn
    path.write_text(f'blocklist = ["{flagged}"]\n' + path.read_text(), encoding="utf-8")
    monkeypatch.setenv("YUNYING_PROVIDERS__REWARDS_URL", local_server.url + "/v1/rewards")
    local_server.faults.reject_keys.add(f"{name}:{refused}:points")

    first = _approve(name, {"approve": True, "approver": "lead"})
    assert (first.name, first.result()["paid"], first.result()["failed"]) == ("Partly paid", 1, 1)
    folder = settings.home / "rewards" / name
    winners_v1 = (folder / "winners.v1.html").read_text()
    reveal = (folder / "commitment.v2.json").read_text()

    _participants(engine, settings, range(100, 105), prefix="late")  # late data
    local_server.faults.reject_keys.clear()
    from flows.reward_payout import reward_payout

    quick = {"approval_timeout_seconds": 5, "poll_interval_seconds": 1, "return_state": True}
    rerun = reward_payout(campaign=name, **quick)  # no new approval, no new draw
    assert (rerun.name, rerun.result()["paid"]) == ("Paid", 1)  # the failed one, retried
    with session_scope(engine) as session:
        ledger = dict(
            session.execute(
                select(RewardLedgerEntry.user_id, RewardLedgerEntry.status).where(
                    RewardLedgerEntry.campaign == name
                )
            ).all()
        )
        kinds = [(p.kind, p.version) for p in publications(session, name)]
        latest = latest_publication(session, name, "winners")
    assert ledger == {refused: "paid", fine: "paid"}  # nobody new, the flagged one excluded
    again = reward_payout(campaign=name, **quick)
    assert again.name == "Already paid" and again.message.startswith("ALREADY PAID")
    assert set(local_server.recorder.deliveries) == {f"{name}:{u}:points" for u in (refused, fine)}
    # Publication is append-only: the first page and the reveal are kept, a dated addition.
    assert kinds == [("commitment", 1), ("commitment", 2), ("winners", 1), ("winners", 2)]
    assert (folder / "winners.v1.html").read_text() == winners_v1
    assert latest is not None and latest.version == 2
    assert (folder / "winners.html").read_text() == latest.content
    assert (folder / "commitment.json").read_text() == reveal
    assert "payment failed" in winners_v1
    page = (folder / "winners.html").read_text()
    assert "version 1</a>" in page and "not awarded (fraud screens)" in page
    assert page.count("<td>paid</td>") == 2

    verified = subprocess.run(
        [sys.executable, "-m", "yunying.rewards.verify", str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "drawing 3 of 8 participants gives the published winners" in verified.stdout


def test_a_lottery_in_its_window_commits_and_draws_nothing(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    from flows.reward_payout import reward_payout

    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = _campaign(rewards_dir, kind="lottery", end=end)
    _participants(engine, settings, range(4))
    state = reward_payout(campaign=name, return_state=True)
    assert state.name == "Committed" and _paid(engine) == 0
    folder = settings.home / "rewards" / name
    committed = (folder / "commitment.v1.json").read_text()
    assert '"sha256_of_seed"' in committed and '"seed"' not in committed


def test_a_lottery_without_a_commitment_is_not_drawn(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    from flows.reward_payout import reward_payout

    name = _campaign(rewards_dir, kind="lottery")
    _participants(engine, settings, range(4))
    state = reward_payout(campaign=name, return_state=True)
    assert state.is_failed() and "no seed commitment was made" in (state.message or "")
    assert _paid(engine) == 0


def test_rewards_commit_command(
    engine: Engine,
    settings: Settings,
    rewards_dir: Path,
    capsys: pytest.CaptureFixture[str],
    local_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cli.main import main

    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/site")
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    open_one = _campaign(rewards_dir, kind="lottery", end=end)
    closed = _campaign(rewards_dir, kind="lottery")
    assert main(["rewards", "commit", open_one]) == 0
    assert "seed committed" in capsys.readouterr().out
    committed = (settings.home / "rewards" / open_one / "commitment.v1.json").read_text()
    posted = local_server.recorder.deliveries[f"commitment:{open_one}:v1"]
    assert posted["content"] == committed and '"seed"' not in committed
    assert main(["rewards", "commit", closed]) == 2
    assert "its window closed" in capsys.readouterr().err


def test_a_paid_top_n_says_already_paid_and_late_leaders_win_nothing(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    from flows.reward_payout import reward_payout

    name = _campaign(rewards_dir, kind="top_n")
    _participants(engine, settings, range(5))
    first = _approve(name, {"approve": True, "approver": "lead"})
    assert (first.name, _paid(engine)) == ("Paid", 3)
    with session_scope(engine) as session:
        load_records(  # a late batch makes someone else the leader
            session,
            settings.zone,
            "events",
            [
                {
                    "event_id": f"late-{d}",
                    "user_id": "w4",
                    "name": "checkin",
                    "occurred_at": f"2026-11-0{5 + d}T03:00:00Z",
                }
                for d in range(3)
            ],
        )
    again = reward_payout(
        campaign=name, approval_timeout_seconds=5, poll_interval_seconds=1, return_state=True
    )
    assert (again.name, _paid(engine)) == ("Already paid", 3)
    plan = _plan_artifact(name)
    assert plan.description and plan.description.startswith(f"{name}: ALREADY PAID")
    assert "3 paid" in plan.description


def test_who_started_the_run_comes_from_prefects_record_where_it_keeps_one(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    """A run created by an automation carries Prefect's `created_by`; the flow records it
    and counts it as the starter (no requested_by needed for a second person)."""
    import base64

    import httpx
    from prefect.flow_engine import run_flow
    from prefect.flow_runs import resume_flow_run

    from flows.reward_payout import reward_payout

    name = _campaign(rewards_dir, extra="require_second_person = true")
    _participants(engine, settings, range(3))
    parameters = {"campaign": name, "poll_interval_seconds": 1}
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(reward_payout)
        api = str(client.api_url).rstrip("/")
    created = httpx.post(
        f"{api}/flow_runs/",
        json={
            "flow_id": str(flow_id),
            "name": f"reward-payout-{name}",
            "parameters": parameters,
            "state": {"type": "PENDING"},
        },
        headers={  # what Prefect's automations send when they start a run
            "Prefect-Automation-Id": str(uuid.uuid4()),
            "Prefect-Automation-Name": base64.b64encode(b"weekly-rewards").decode(),
        },
    )
    assert created.status_code == 201, created.text
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(created.json()["id"]))
    assert flow_run.created_by is not None
    outcome: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(
            state=run_flow(reward_payout, flow_run, parameters, return_type="state")
        )
    )
    thread.start()
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while not (state := client.read_flow_run(flow_run.id).state) or not state.is_paused():
            assert time.monotonic() < deadline and thread.is_alive(), outcome
            time.sleep(0.3)
    resume_flow_run(flow_run.id, run_input={"approve": True, "approver": "bob"})
    thread.join(timeout=120)
    assert (outcome["state"].name, _paid(engine)) == ("Paid", 3)
    assert _audit(engine, name)[-1].requested_by == "weekly-rewards (automation)"


def test_a_plan_counts_what_an_earlier_ledger_paid(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    """A campaign paid before approved plans were stored: the plan says so, not "N to pay"."""
    from yunying.rewards.ledger import pay_batch

    name = _campaign(rewards_dir)
    _participants(engine, settings, range(3))
    chosen = load_reward_campaign(rewards_dir, name)
    with session_scope(engine) as session:
        earlier = compute_plan(session, chosen).payable()
    pay_batch(engine, chosen, earlier[:2])
    state = _approve(name, {"approve": False, "approver": "lead"})
    assert state.name == "Rejected"
    plan = _plan_artifact(name)
    assert plan.description == (
        f"{name}: TO APPROVE: 3 winners of 3 eligible; 100 points to pay to 1"
        " (flagged excluded, 2 paid already) against 300.00 remaining"
    )


def test_the_approver_includes_a_flagged_winner_by_the_id_the_plan_shows(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    from prefect.flow_runs import resume_flow_run

    name = _campaign(rewards_dir)
    _participants(engine, settings, range(4), device="one-phone")  # all four flagged
    thread, outcome, run_id = _run_paused(name)
    artifact = _plan_artifact(name)
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert {row["user"] for row in rows} == {"w***"}  # the masks cannot tell them apart
    assert len({row["public id"] for row in rows}) == 4  # the public ids can
    assert {row["paid if approved"] for row in rows} == {"only if included"}

    chosen = rows[2]["public id"]
    resume_flow_run(
        run_id,
        run_input={"approve": True, "approver": "lead", "include_flagged": [chosen]},
    )
    thread.join(timeout=120)
    assert (outcome["state"].name, _paid(engine)) == ("Paid", 1)
    with session_scope(engine) as session:
        paid = session.scalars(select(RewardLedgerEntry.user_id)).one()
    assert paid == f"w{rows[2]['rank'] - 1}"  # min_actions ranks users in id order


def test_a_run_whose_payouts_all_failed_says_so(
    engine: Engine,
    settings: Settings,
    rewards_dir: Path,
    local_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = _campaign(rewards_dir)
    _participants(engine, settings, range(1))
    monkeypatch.setenv("YUNYING_PROVIDERS__REWARDS_URL", local_server.url + "/v1/rewards")
    local_server.faults.reject_keys.add(f"{name}:w0:points")
    state = _approve(name, {"approve": True, "approver": "lead"})
    assert (state.name, state.result()["failed"]) == ("Payment failed", 1)
    assert "budget released, retried by the next run" in state.message


def test_a_top_n_run_before_its_window_ends_plans_and_pays_nothing(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    """Leaders can still change while the window is open: no plan to approve (an approved
    plan is final), nothing paid; the run after the window plans."""
    from flows.reward_payout import reward_payout

    end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = _campaign(rewards_dir, kind="top_n", end=end)
    _participants(engine, settings, range(4))
    state = reward_payout(campaign=name, approval_timeout_seconds=5, return_state=True)
    assert state.name == "Window open" and _paid(engine) == 0
    assert state.message.startswith(f"the window is open until {end[:10]}")
    assert "nothing planned or paid" in state.message
    assert _audit(engine, name) == []


def _winner_notices(engine: Engine, name: str) -> set[str]:
    with session_scope(engine) as session:
        rows = session.scalars(
            select(OutboxMessage.user_id).where(OutboxMessage.campaign == f"reward-won-{name}")
        )
        return set(rows)


def test_a_plan_over_budget_is_said_and_only_the_paid_are_told_they_won(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    """Budget 120 for 100 + 50 + 20: the plan says it exceeds the budget before approval; the
    50 does not fit, the 20 does. Only the two paid winners are told their reward is in
    their account, and the run is Partly paid, not Paid."""
    name = _campaign(rewards_dir, kind="top_n")
    path = rewards_dir / f"{name}.toml"
    path.write_text(
        path.read_text()
        .replace("budget = 500", "budget = 120")
        .replace("amounts = [100, 50]", "amounts = [100, 50, 20]")
    )
    _participants(engine, settings, range(4))
    thread, outcome, run_id = _run_paused(name)
    plan = _plan_artifact(name)
    assert plan.description is not None
    assert "OVER BUDGET: 170 to pay, 120.00 remaining" in plan.description
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(run_id, run_input={"approve": True, "approver": "lead"})
    thread.join(timeout=120)
    state = outcome["state"]
    assert state.name == "Partly paid"
    assert state.message.startswith("paid 2 of 3 left to pay; 1 over budget")
    assert "2 of the plan's 3 winners paid in all" in state.message
    assert _winner_notices(engine, name) == {"w0", "w2"}
    with session_scope(engine) as session:
        [reason] = session.scalars(
            select(RewardLedgerEntry.reason).where(RewardLedgerEntry.user_id == "w1")
        )
    assert reason == "50.00 did not fit the 20.00 left of the budget"


def test_payouts_failed_for_good_are_not_said_to_be_retried_nor_told_they_won(
    engine: Engine,
    settings: Settings,
    rewards_dir: Path,
    local_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = _campaign(rewards_dir, extra="max_payout_attempts = 1")
    _participants(engine, settings, range(2))
    monkeypatch.setenv("YUNYING_PROVIDERS__REWARDS_URL", local_server.url + "/v1/rewards")
    local_server.faults.reject_keys.add(f"{name}:w0:points")
    state = _approve(name, {"approve": True, "approver": "lead"})
    assert state.name == "Partly paid"
    assert "1 failed for good (1 attempts; budget released)" in state.message
    assert "retried by the next run" not in state.message
    assert _winner_notices(engine, name) == {"w1"}


def test_cash_without_a_rewards_provider_stops_before_any_plan(
    engine: Engine, settings: Settings, rewards_dir: Path
) -> None:
    from flows.reward_payout import reward_payout

    name = _campaign(rewards_dir)
    path = rewards_dir / f"{name}.toml"
    path.write_text(path.read_text().replace('kind = "points"', 'kind = "cash"'))
    _participants(engine, settings, range(2))
    state = reward_payout(campaign=name, return_state=True)
    assert state.is_failed()
    assert "cash rewards need a rewards provider; set providers.rewards_url" in state.message
    assert _audit(engine, name) == [] and _paid(engine) == 0
