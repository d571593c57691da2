"""The nightly chain end to end through a real Prefect API (one test server per session)."""

import datetime as dt
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    TaskRunFilter,
    TaskRunFilterStartTime,
)
from sqlalchemy import Engine, func, select

from tests.builders import END, load_records
from tests.rig import SmtpSink
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources
from yunying.errors import ConfigError, TemplateError
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage

pytestmark = pytest.mark.usefixtures("prefect")


@pytest.fixture
def company_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings):  # type: ignore[no-untyped-def]
    source_db = tmp_path / "source.db"
    write_source_db(source_db, 250, 5, END)
    with LocalServer(source_db=source_db) as server:
        sources = demo_sources(source_db, server.url)
        monkeypatch.setenv("YUNYING_SOURCES", json.dumps([s.model_dump() for s in sources]))
        yield server


def test_nightly_runs_every_stage_and_a_rerun_sends_nothing_twice(
    company_api: LocalServer, engine: Engine, settings: Settings
) -> None:
    from flows.nightly import nightly

    state = nightly(business_date=END, campaign="winback-demo", return_state=True)
    summary = state.result()
    assert all(rows > 0 for rows in summary["pulled"].values())
    assert summary["rejected"] > 0
    assert summary["lifecycle"]["silent"] > 0
    assert summary["messages"]["sent"] > 0 and summary["messages"]["holdout"] > 0
    assert Path(summary["report"]).exists()

    with get_client(sync_client=True) as client:
        run_id = state.state_details.flow_run_id
        run = client.read_flow_run(run_id)
        assert run.name == f"nightly-winback-demo-{END}"
        artifacts = {
            a.key
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        }
        assert "nightly-summary" in artifacts
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter())
        # This run's tasks: the one Prefect server serves the whole session, other tests too.
        all_tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=run.start_time))
        )
    assert any(r.name.startswith("reactivation-winback-demo") for r in children)
    assert len(all_tasks) < 100  # batches, not a task per user

    sent_before = sorted(os.listdir(settings.outbox_path / "email"))
    again = nightly(business_date=END, campaign="winback-demo")
    assert again["messages"]["sent"] == summary["messages"]["sent"]
    assert sorted(os.listdir(settings.outbox_path / "email")) == sent_before
    push_keys = [
        json.loads(x)["key"] for x in (settings.outbox_path / "push.jsonl").read_text().splitlines()
    ]
    assert len(push_keys) == len(set(push_keys))


def test_a_bad_campaign_stops_before_anything_is_sent(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.reactivation import reactivation

    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "ghost.toml").write_text(
        'name = "ghost"\nsegment = ["silent"]\nchannels = ["email"]\n'
        'template = "no-such-template"\n'
    )
    (campaigns / "typo.toml").write_text(
        'name = "typo"\nsegment = ["silent"]\nchannels = ["emial"]\ntemplate = "winback"\n'
    )
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(campaigns))
    with pytest.raises(TemplateError, match="no-such-template"):
        reactivation(campaign="ghost", business_date=dt.date(2026, 11, 1))
    with pytest.raises(ConfigError, match="'channels.0'"):
        reactivation(campaign="typo", business_date=dt.date(2026, 11, 1))
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


REWARD_FILE = """
name = "{name}"
start = 2026-11-02T00:00:00Z
end = 2026-11-09T00:00:00Z
budget = 500
per_user_cap = 100
[rule]
kind = "lottery"
event = "checkin"
count = 2
winners = 3
[reward]
kind = "points"
amounts = [100, 50]
"""


def _run_until_paused(name: str, target: Any) -> tuple[threading.Thread, dict[str, Any], Any]:
    from prefect.client.schemas.filters import FlowRunFilterName

    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=target()))
    thread.start()
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[f"reward-payout-{name}"])
                )
            )
            if runs and runs[0].state and runs[0].state.is_paused():
                return thread, outcome, runs[0].id
            time.sleep(0.5)
    raise AssertionError("the payout never paused for approval")


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "rejected"])
def test_reward_payout_waits_for_approval_given_through_the_api(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    approve: bool,
) -> None:
    from prefect.flow_runs import resume_flow_run

    from flows.reward_payout import reward_payout
    from yunying.store.models import PointsEntry, RewardApproval

    name = f"lottery-{'yes' if approve else 'no'}-{uuid.uuid4().hex[:6]}"
    rewards = tmp_path / "rewards"
    rewards.mkdir()
    (rewards / f"{name}.toml").write_text(REWARD_FILE.format(name=name))
    monkeypatch.setenv("YUNYING_REWARD_DIR", str(rewards))
    users = [
        {
            "user_id": f"w{i}",
            "signup_at": "2026-10-01T00:00:00Z",
            "email": f"w{i}@example.com",
            "device_hash": f"d{i}",
        }
        for i in range(8)
    ]
    events = [
        {
            "event_id": f"w{i}-{d}",
            "user_id": f"w{i}",
            "name": "checkin",
            "occurred_at": f"2026-11-0{3 + d}T03:00:00Z",
        }
        for i in range(8)
        for d in range(2)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)

    thread, outcome, run_id = _run_until_paused(
        name, lambda: reward_payout(campaign=name, poll_interval_seconds=1)
    )
    commitment = json.loads((settings.home / "rewards" / name / "commitment.json").read_text())
    assert len(commitment["participants"]) == 8  # published before anything is paid
    resume_flow_run(
        run_id, run_input={"approve": approve, "approver": "lead@ops", "note": "checked"}
    )
    thread.join(timeout=120)
    result = outcome["result"]
    with session_scope(engine) as session:
        paid = session.scalar(select(func.count()).select_from(PointsEntry))
        audit = session.scalars(select(RewardApproval).where(RewardApproval.campaign == name)).one()
    assert (audit.approved, audit.approver) == (approve, "lead@ops")
    if not approve:
        assert result["paid"] == 0 and paid == 0
        return
    assert result["paid"] == paid == 3
    page = (settings.home / "rewards" / name / "winners.html").read_text()
    assert "w***" in page and not any(f">w{i}<" in page for i in range(8))  # masked ids only
    assert result["notified"]["sent"] == 3


def test_a_failed_nightly_emails_ops(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    smtp_server: SmtpSink,
) -> None:
    from flows.nightly import nightly
    from yunying.sources.config import HttpSource

    broken = HttpSource(name="gone", entity="events", url=local_server.url + "/no-such-api")
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps([broken.model_dump()]))
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    state = nightly(business_date=END, return_state=True)
    assert state.is_failed()
    [alert] = smtp_server.messages
    assert alert["Subject"].startswith(f"Yunying: nightly-winback-{END}")
    assert "404" in alert.get_content()


def test_runs_command_lists_recent_runs(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main
    from flows.report import report

    report(business_date=END)
    assert main(["runs", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert f"daily-report-{END}" in out and "Completed" in out


def test_provider_rate_limit_paces_sends_through_prefect(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main
    from flows.reactivation import reactivation
    from tests.builders import DAY, silent_users

    silent_users(engine, settings, 60)
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "hook.toml").write_text(
        'name = "hook"\nsegment = ["silent"]\nchannels = ["webhook"]\ntemplate = "winback"\n'
        "holdout_percent = 0\nquiet_hours = false\n"
    )
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(campaigns))
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    monkeypatch.setenv("YUNYING_PROVIDERS__RATE_LIMITS", '{"webhook": 20}')
    assert main(["setup"]) == 0
    assert "provider-webhook: 20/s" in capsys.readouterr().out
    result = reactivation(campaign="hook", business_date=DAY)
    assert result["sent"] == len(local_server.recorder.deliveries) == 60
    arrivals = local_server.recorder.arrivals
    # 60 messages at 20/s: the provider sees them spread over two seconds or more.
    assert max(arrivals) - min(arrivals) >= 1.5
