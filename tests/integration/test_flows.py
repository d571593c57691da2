"""The nightly chain end to end through a real Prefect API (one test server per session)."""

import datetime as dt
import json
import os
import re
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
    FlowRunFilterStartTime,
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
from yunying.errors import ConfigError
from yunying.store.engine import session_scope
from yunying.store.models import LifecycleRun, OutboxMessage

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
        assert {"nightly-summary", "pull-summary", "send-summary-winback-demo"} <= artifacts
        # This run's: the session's Prefect server also holds earlier tests' runs.
        since = run.start_time
        flow_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))
        )
        all_tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=since))
        )
    # Every stage's tasks in the nightly's own run: a subflow each cost about a second.
    assert [r.id for r in flow_runs] == [run_id]
    names = {t.name.split("-")[0] for t in all_tasks if t.flow_run_id == run_id}
    assert {"pull", "lifecycle", "plan", "send", "daily"} <= names
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
    with pytest.raises(ConfigError, match="ghost.toml: field 'template': no template 'no-such"):
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
    from yunying.rewards.campaign import load_reward_campaign
    from yunying.rewards.publish import commit
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
        lottery = load_reward_campaign(rewards, name)
        commit(session, lottery, lottery.start_utc)  # `yunying rewards commit` at the start

    thread, outcome, run_id = _run_until_paused(
        name, lambda: reward_payout(campaign=name, poll_interval_seconds=1)
    )
    commitment = json.loads((settings.home / "rewards" / name / "commitment.json").read_text())
    assert "seed" not in commitment  # the hash is published before the draw, the seed after
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


def _a_gone_source_and_alerts_by_mail(
    monkeypatch: pytest.MonkeyPatch, local_server: LocalServer, smtp_server: SmtpSink
) -> None:
    """The only source answers 404; alerts go to the SMTP sink."""
    from yunying.sources.config import HttpSource

    broken = HttpSource(name="gone", entity="events", url=local_server.url + "/no-such-api")
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps([broken.model_dump()]))
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))


def test_a_failed_nightly_emails_ops(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    smtp_server: SmtpSink,
) -> None:
    from flows.nightly import nightly

    _a_gone_source_and_alerts_by_mail(monkeypatch, local_server, smtp_server)
    state = nightly(business_date=END, return_state=True)
    assert state.is_failed()
    with session_scope(engine) as session:  # stopped after the pull, before the lifecycle
        assert session.scalar(select(func.count()).select_from(LifecycleRun)) == 0
    [alert] = smtp_server.messages
    assert alert["Subject"].startswith(f"Yunying: nightly-{END}")
    assert "404" in alert.get_content()
    run_page = f"/runs/flow-run/{state.state_details.flow_run_id}"
    assert re.search(rf"UI: https?://[^\s/]+{run_page}\s", alert.get_content())  # absolute


def test_an_alert_the_mail_server_cannot_take_is_kept_in_the_outbox(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    smtp_server: SmtpSink,
) -> None:
    from flows.nightly import nightly
    from tests.rig import free_port

    _a_gone_source_and_alerts_by_mail(monkeypatch, local_server, smtp_server)
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(free_port()))  # the mail server is down too
    assert nightly(business_date=END, return_state=True).is_failed()
    [kept] = (settings.outbox_path / "reports").glob("alert-*.eml")
    assert f"Subject: Yunying: nightly-{END} failed" in kept.read_text()


@pytest.mark.parametrize("flow_name", ["pull", "reactivation"])
def test_a_flow_failing_on_its_own_emails_ops_once(
    flow_name: str,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    smtp_server: SmtpSink,
) -> None:
    """The stages' flows alert when run alone (`yunying run pull`, a deployment's schedule)."""
    from flows.pull import pull_sources
    from flows.reactivation import reactivation

    _a_gone_source_and_alerts_by_mail(monkeypatch, local_server, smtp_server)
    if flow_name == "pull":
        state = pull_sources(return_state=True)
    else:
        state = reactivation(campaign="no-such-campaign", business_date=END, return_state=True)
    assert state.is_failed()
    [alert] = smtp_server.messages
    assert alert["Subject"].startswith(f"Yunying: {flow_name}-")
    assert alert["Subject"].endswith(" failed")


def test_a_flow_inside_a_companys_own_flow_leaves_the_alert_to_it(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    smtp_server: SmtpSink,
) -> None:
    from prefect import flow

    from flows.alerts import ALERTS
    from flows.pull import pull_sources

    _a_gone_source_and_alerts_by_mail(monkeypatch, local_server, smtp_server)

    @flow(name="company-night", flow_run_name="company-night", on_failure=ALERTS)
    def company_night() -> None:
        pull_sources()

    assert company_night(return_state=True).is_failed()
    [alert] = smtp_server.messages  # one, the outer run's: not one per run
    assert alert["Subject"] == "Yunying: company-night failed"


def test_runs_command_lists_recent_runs(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main
    from flows.report import report

    report(business_date=END)
    assert main(["runs", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert f"daily-report-{END}" in out and "Completed" in out


def test_a_campaign_whose_every_message_fails_fails_its_run_and_alerts(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
    smtp_server: SmtpSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A provider that refuses everything is broken, not a few bad addresses: the run says
    so, with the command that sends them again once fixed, and ops hear of it."""
    from flows.reactivation import reactivation
    from tests.builders import DAY, silent_users

    silent_users(engine, settings, 12)
    _hook_campaign(tmp_path, monkeypatch)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    local_server.bearer_token = "a-token-the-settings-lack"  # every send: 401
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    state = reactivation(campaign="hook", business_date=DAY, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("every message of hook failed. 12 message(s) of hook failed")
    assert "failed for good (12 x HTTP 401" in state.message  # why, with no log to read
    assert f"yunying run reactivation --campaign hook --date {DAY} --resend-failed" in (
        state.message
    )
    [alert] = smtp_server.messages
    assert alert["Subject"] == f"Yunying: reactivation-hook-{DAY} failed"
    assert f"Once the cause is fixed, run: yunying run reactivation --campaign hook --date {DAY}" \
        " --resend-failed" in alert.get_content()  # fmt: skip
    # From the command line: the reason in one line, not a traceback.
    from cli.main import main

    assert main(["run", "reactivation", "--campaign", "hook", "--date", str(DAY)]) != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: every message of hook failed. 12 message(s) of hook failed")


def test_a_channel_whose_every_message_fails_fails_the_run_though_others_sent(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: SmtpSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Email to users with an address, push to the others: a mail server that refuses to
    relay fails every email while every push goes out. The mail setting is broken: the run
    fails and names the channel, though the campaign sent."""
    from sqlalchemy import update

    from cli.main import main
    from tests.builders import DAY, silent_users
    from yunying.store.models import User

    users = silent_users(engine, settings, 6)
    with session_scope(engine) as session:
        session.execute(update(User).where(User.user_id.in_(users[3:])).values(email=None))
    _hook_campaign(tmp_path, monkeypatch, HOOK_CAMPAIGN.replace('["webhook"]', '["email", "push"]'))
    smtp_server.refuse_every_recipient = "554 5.7.1 Relay access denied"
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    assert main(["run", "reactivation", "--campaign", "hook", "--date", str(DAY)]) != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: every email message of hook failed. 3 message(s) of hook")
    assert "(3 x SMTP 554 5.7.1 Relay access denied)" in last
    with session_scope(engine) as session:
        sent = session.scalars(select(OutboxMessage.channel).where(OutboxMessage.status == "sent"))
        assert sorted(sent) == ["push"] * 3


def test_failed_messages_are_resent_after_the_next_night_computed_its_states(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
) -> None:
    """The alert's `--resend-failed` command still works once the states have moved on:
    it sends what failed on that date and plans no one new for it."""
    from cli.main import main
    from tests.builders import DAY, silent_users
    from yunying.lifecycle.states import compute_lifecycle
    from yunying.messaging.outbox import NO_LONGER_REACHABLE
    from yunying.messaging.unsubscribe import suppress
    from yunying.store.models import OutboxMessage

    silent_users(engine, settings, 12)
    _hook_campaign(tmp_path, monkeypatch)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    local_server.bearer_token = "a-token-the-settings-lack"  # every send: 401
    assert main(["run", "reactivation", "--campaign", "hook", "--date", str(DAY)]) != 0
    with session_scope(engine) as session:  # the next night; one user unsubscribes meanwhile
        compute_lifecycle(session, DAY + dt.timedelta(days=1), settings.lifecycle)
        suppress(session, "s00003", "any", "unsubscribed")
    local_server.bearer_token = None  # fixed
    resend = ["run", "reactivation", "--campaign", "hook", "--date", str(DAY), "--resend-failed"]
    assert main(resend) == 0
    assert len(local_server.recorder.deliveries) == 11
    assert f"hook:{DAY}:s00003" not in local_server.recorder.deliveries
    with session_scope(engine) as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.user_id == "s00003")).one()
    assert (row.status, row.reason) == ("suppressed", NO_LONGER_REACHABLE)


def test_with_sending_off_the_summaries_say_sent_means_written_to_files(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.campaigns import campaigns
    from tests.builders import DAY, silent_users

    silent_users(engine, settings, 5)
    _hook_campaign(tmp_path, monkeypatch)
    monkeypatch.delenv("YUNYING_SENDING")  # a new store's default: off
    state = campaigns(business_date=DAY, names=["hook"], return_state=True)
    assert state.result()[0]["sent"] == 5
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    described = {a.key: a.description or "" for a in artifacts}
    for key in ("send-summary-hook", "campaigns-tonight"):
        assert described[key].startswith("SENDING IS OFF: campaign messages are written to")


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
    _hook_campaign(tmp_path, monkeypatch)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    monkeypatch.setenv("YUNYING_PROVIDERS__RATE_LIMITS", '{"webhook": 20}')
    assert main(["setup"]) == 0
    assert "provider-webhook: 20/s" in capsys.readouterr().out
    result = reactivation(campaign="hook", business_date=DAY)
    assert result["sent"] == len(local_server.recorder.deliveries) == 60
    arrivals = local_server.recorder.arrivals
    # 60 messages at 20/s: the provider sees them spread over two seconds or more.
    assert max(arrivals) - min(arrivals) >= 1.5


HOOK_CAMPAIGN = (
    'name = "hook"\nsegment = ["silent"]\nchannels = ["webhook"]\ntemplate = "winback"\n'
    "holdout_percent = 0\nquiet_hours = false\n"
)


def _hook_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str = HOOK_CAMPAIGN
) -> None:
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir(exist_ok=True)
    (campaigns / "hook.toml").write_text(text)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(campaigns))


def _latest_run(name_prefix: str) -> Any:
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.name.startswith(name_prefix)]
    return max(runs, key=lambda r: r.created)


@pytest.mark.parametrize("dedupe", [False, True], ids=["provider-ignores-keys", "provider-dedupes"])
def test_sigkill_mid_send_then_reclaim_and_rerun_reaches_everyone_once(
    engine: Engine,
    settings: Settings,
    local_server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dedupe: bool,
) -> None:
    """The documented recovery: a send process is SIGKILLed mid-batch; an immediate rerun says
    what is left in flight; `yunying outbox reclaim` then the rerun reach every user. Outcomes
    are recorded as they come, so without the provider's key de-duplication at most the
    messages truly in flight (the send concurrency, not the batch) go out twice."""
    import signal
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    from cli.main import main
    from tests.builders import DAY, silent_users
    from tests.conftest import REPO

    concurrency = 8
    users = silent_users(engine, settings, 300)
    _hook_campaign(tmp_path, monkeypatch)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    monkeypatch.setenv("YUNYING_PROVIDERS__CONCURRENCY", str(concurrency))
    local_server.dedupe_keys = dedupe
    local_server.faults.latency_seconds = 0.05
    command = ["run", "reactivation", "--campaign", "hook", "--date", str(DAY)]
    sender = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *command],
        cwd=REPO,
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches all of it
    )
    deadline = time.monotonic() + 120
    while local_server.recorder.requests < 100 and time.monotonic() < deadline:
        assert sender.poll() is None, "the send process ended before it could be killed"
        time.sleep(0.01)
    os.killpg(sender.pid, signal.SIGKILL)
    sender.wait()
    reached_before = len(local_server.recorder.deliveries)
    assert 100 <= reached_before < 300

    assert main(command) == 0  # an immediate rerun: the killed run's rows are still leased
    rerun = _latest_run("reactivation-hook")
    assert rerun.state.is_completed()
    assert "still in flight" in rerun.state.message
    assert f"yunying outbox reclaim hook --date {DAY}" in rerun.state.message
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[rerun.id]))
        )
    [summary] = [a for a in artifacts if a.key == "send-summary-hook"]
    assert "still in flight" in (summary.description or "")

    capsys.readouterr()
    assert main(["outbox", "reclaim", "hook", "--date", str(DAY)]) == 0
    assert "in-flight message(s) requeued" in capsys.readouterr().out
    assert main(command) == 0
    recorder = local_server.recorder
    assert set(recorder.deliveries) == {f"hook:{DAY}:{u}" for u in users}  # everyone reached
    assert recorder.double_sends <= concurrency  # resends: only what was truly in flight
    if dedupe:
        assert recorder.double_sends == 0
    with session_scope(engine) as session:
        statuses = set(session.scalars(select(OutboxMessage.status)))
    assert statuses == {"sent"}
    assert _latest_run("reactivation-hook").state.message in (None, "")


QUIET_CANDIDATES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/New_York",
    "Europe/London",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Pacific/Auckland",
)


def _zone_in_quiet_hours_now() -> tuple[str, dt.datetime]:
    """A zone where it is now between 22:00 and 08:00 (not within minutes of either end), and
    the UTC moment of its next 08:00."""
    from zoneinfo import ZoneInfo

    now = dt.datetime.now(dt.UTC)
    for name in QUIET_CANDIDATES:
        local = now.astimezone(ZoneInfo(name))
        minutes = local.hour * 60 + local.minute
        if minutes >= 22 * 60 + 5 or minutes < 8 * 60 - 5:
            day = local.date() if local.hour < 8 else local.date() + dt.timedelta(days=1)
            eight = dt.datetime.combine(day, dt.time(8), tzinfo=ZoneInfo(name))
            return name, eight.astimezone(dt.UTC)
    raise AssertionError("no candidate zone is in quiet hours now")


def test_a_run_leaving_deferred_messages_schedules_the_deployment_at_their_moment(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from flows.reactivation import reactivation
    from tests.builders import DAY, silent_users

    zone, eight_am = _zone_in_quiet_hours_now()
    silent_users(engine, settings, 3, timezone=zone)
    _hook_campaign(tmp_path, monkeypatch, HOOK_CAMPAIGN.replace("quiet_hours = false\n", ""))
    reactivation.to_deployment(name="reactivation").apply()

    for _ in range(2):  # a rerun schedules no second follow-up
        assert reactivation(campaign="hook", business_date=DAY)["deferred"] == 3
    with get_client(sync_client=True) as client:
        scheduled = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["reactivation"])),
        )
    follow_ups = [r for r in scheduled if r.parameters.get("campaign") == "hook"]
    assert len(follow_ups) == 1, zone
    [follow_up] = follow_ups
    assert follow_up.state.is_scheduled()
    assert follow_up.parameters == {"campaign": "hook", "business_date": str(DAY)}
    assert follow_up.expected_start_time == eight_am
    with session_scope(engine) as session:
        not_before = set(session.scalars(select(OutboxMessage.not_before)))
    assert not_before == {eight_am.replace(tzinfo=None)}


def test_the_follow_up_run_of_a_date_still_runs_once_the_states_moved_on(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run scheduled for deferred messages is for their date; when it comes after the
    nightly computed the next date, it sends what its date left, planning no one new,
    instead of failing and leaving them to expire."""
    from flows.reactivation import reactivation
    from tests.builders import DAY, silent_users
    from yunying.lifecycle.states import compute_lifecycle

    zone, _ = _zone_in_quiet_hours_now()
    silent_users(engine, settings, 3, timezone=zone)
    _hook_campaign(tmp_path, monkeypatch, HOOK_CAMPAIGN.replace("quiet_hours = false\n", ""))
    assert reactivation(campaign="hook", business_date=DAY)["deferred"] == 3
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY + dt.timedelta(days=1), settings.lifecycle)
    state = reactivation(campaign="hook", business_date=DAY, return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["deferred"] == 3  # still waiting for 08:00, not expired, not replanned
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 3


def test_resend_failed_from_the_cli_sends_only_the_failed_again(
    engine: Engine,
    settings: Settings,
    local_server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main
    from tests.builders import DAY, silent_users

    silent_users(engine, settings, 20)
    _hook_campaign(tmp_path, monkeypatch)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    refused = {f"hook:{DAY}:s00003", f"hook:{DAY}:s00007"}
    local_server.faults.reject_keys |= refused  # the provider refuses two, then is fixed
    command = ["run", "reactivation", "--campaign", "hook", "--date", str(DAY)]
    assert main(command) == 0
    assert "'sent': 18, 'failed': 2" in capsys.readouterr().out
    local_server.faults.reject_keys.clear()
    assert main(command) == 0  # a plain rerun leaves failed messages alone
    assert "'sent': 18, 'failed': 2" in capsys.readouterr().out
    assert main([*command, "--resend-failed"]) == 0
    assert "'sent': 20, 'failed': 0" in capsys.readouterr().out
    recorder = local_server.recorder
    assert len(recorder.deliveries) == recorder.requests == 20  # each once, none again
    assert {key: recorder.refusals[key] for key in refused} == dict.fromkeys(refused, 1)


def test_smtp_sends_a_crash_left_in_flight_are_reported_unknown_not_resent(
    engine: Engine,
    settings: Settings,
    smtp_server: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main
    from tests.builders import DAY, silent_users
    from yunying.messaging.campaign import find_campaign
    from yunying.messaging.outbox import claim, hand_over, plan

    silent_users(engine, settings, 5)
    _hook_campaign(tmp_path, monkeypatch, HOOK_CAMPAIGN.replace('["webhook"]', '["email"]'))
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    with session_scope(engine) as session:  # a worker claimed five, handed two, was killed
        plan(session, find_campaign(tmp_path / "campaigns", "hook"), DAY)
        claimed = claim(session, "hook", DAY, "killed", 10)
        hand_over(session, [c.id for c in claimed[:2]], "killed")
    assert main(["outbox", "reclaim", "hook", "--date", str(DAY)]) == 0
    reclaimed = capsys.readouterr().out
    assert "3 in-flight message(s) requeued" in reclaimed and "2 marked unknown" in reclaimed
    assert main(["run", "reactivation", "--campaign", "hook", "--date", str(DAY)]) == 0
    assert "'unknown': 2" in capsys.readouterr().out
    message = _latest_run("reactivation-hook").state.message
    assert "2 message(s) with an unknown outcome" in message and "not resent" in message
    assert len(smtp_server.messages) == 3  # the three never handed to the server

    # The mail server's log shows it never got one of the two: it is sent, the other not.
    handed = sorted(c.user_id for c in claimed[:2])
    assert main(["outbox", "unknown", "hook", "--date", str(DAY)]) == 0
    assert f"2 message(s) with an unknown outcome, to users {' '.join(handed)}" in (
        capsys.readouterr().out
    )
    assert main(["outbox", "resend", "hook", "--date", str(DAY), "--users", handed[0]]) == 0
    assert "1 message(s) queued again" in capsys.readouterr().out
    resend = ["run", "reactivation", "--campaign", "hook", "--date", str(DAY), "--resend-failed"]
    assert main(resend) == 0
    assert len(smtp_server.messages) == 4  # the one queued again, once
    future = str(dt.datetime.now(settings.zone).date() + dt.timedelta(days=2))
    for mistake, said in (
        (["reclaim", "hok", "--date", str(DAY)], "did you mean 'hook'?"),
        (["resend", "hook", "--date", str(DAY)], "needs at least one"),
        (["unknown", "hook", "--date", future], f"--date {future} is after today"),
    ):
        assert main(["outbox", *mistake]) == 2
        assert said in capsys.readouterr().err
