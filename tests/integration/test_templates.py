"""Ops-authored templates against real users: a template that breaks for one user's data fails
that message only; preflight renders the campaign's own users; a template cannot allocate
without bound."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.builders import DAY, load_records
from yunying.config import Settings, load_settings
from yunying.errors import TemplateDataError, TemplateError
from yunying.lifecycle.states import compute_lifecycle
from yunying.messaging.campaign import find_campaign
from yunying.messaging.outbox import plan
from yunying.messaging.preflight import preflight
from yunying.messaging.render import render
from yunying.messaging.send import send_all
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage

DIVIDING = "Hi {{ user_id }}: {{ (100 / (days_inactive - 10))|round(1) }} points back"


def users_inactive(engine: Engine, settings: Settings, days: list[int]) -> list[str]:
    """One silent user per entry of `days`, inactive that many days on DAY."""
    users = [
        {
            "user_id": f"d{i:03d}",
            "signup_at": "2026-06-01T00:00:00Z",
            "email": f"d{i}@example.com",
            "phone": f"+86139{i:08d}",
            "push_token": f"tok{i}",
            "locale": "en" if i % 2 else "zh-CN",
            "timezone": "Asia/Shanghai",
        }
        for i in range(len(days))
    ]
    events = [
        {
            "event_id": f"d{i}-e",
            "user_id": f"d{i:03d}",
            "name": "app_open",
            "occurred_at": dt.datetime.combine(DAY - dt.timedelta(days=n), dt.time(4)).isoformat(),
        }
        for i, n in enumerate(days)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        compute_lifecycle(session, DAY, settings.lifecycle)
    return [u["user_id"] for u in users]


def ops_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, channel: str = "webhook"
) -> Settings:
    """A campaign `ops` whose `channel` template is `text`, in folders of the test's own."""
    folder = tmp_path / "templates" / "messages" / "ops"
    folder.mkdir(parents=True)
    (folder / f"{channel}.en.txt").write_text(text)
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "ops.toml").write_text(
        f'name = "ops"\nsegment = ["silent"]\nchannels = ["{channel}"]\ntemplate = "ops"\n'
        "holdout_percent = 0\nquiet_hours = false\n"
    )
    monkeypatch.setenv("YUNYING_TEMPLATE_DIR", str(tmp_path / "templates"))
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(campaigns))
    return load_settings()


def run_log(flow_run_id: Any) -> str:
    """The warnings a flow run sent to the Prefect API, as the UI shows them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


@pytest.mark.usefixtures("prefect")
def test_a_template_breaking_for_one_user_fails_that_message_and_sends_the_rest(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.reactivation import reactivation

    users = users_inactive(engine, settings, [8, 9, 10, 11, 12, 15, 20, 25])
    ops = ops_campaign(tmp_path, monkeypatch, DIVIDING)
    state = reactivation(campaign="ops", business_date=DAY, return_state=True)
    assert state.is_completed()
    assert (  # the campaign check saw it coming, in the run's log
        "template check: webhook/zh-CN: 1 of 5 sampled contexts fail (messages/ops/webhook.en.txt"
        " line 1: ZeroDivisionError: division by zero)" in run_log(state.state_details.flow_run_id)
    )
    result = state.result()
    assert result["sent"] == 7 and result["failed"] == 1
    with session_scope(engine) as session:
        failed = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed"))
        [row] = failed.all()
    assert row.user_id == users[2]  # inactive exactly 10 days
    assert row.reason == ("messages/ops/webhook.en.txt line 1: ZeroDivisionError: division by zero")
    lines = (ops.outbox_path / "webhook.jsonl").read_text().splitlines()
    delivered = sorted(json.loads(line)["to"] for line in lines)  # a webhook goes to the id
    assert delivered == sorted(set(users) - {users[2]})

    again = reactivation(campaign="ops", business_date=DAY)  # a rerun sends nothing more
    assert again["sent"] == 7 and again["failed"] == 1
    assert len((ops.outbox_path / "webhook.jsonl").read_text().splitlines()) == 7


def test_preflight_renders_the_campaigns_own_users(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users_inactive(engine, settings, [8, 9, 10, 10, 12, 20])
    ops = ops_campaign(tmp_path, monkeypatch, DIVIDING)
    campaign = find_campaign(ops.campaign_dir, "ops")
    without_users = preflight(ops, campaign)  # the fixed sample is 14 days inactive
    assert not without_users.warnings
    with session_scope(engine) as session:
        checked = preflight(ops, campaign, session)
        assert preflight(ops, campaign, session, sample_users=2).sampled_users == 2
    assert checked.sampled_users == 6
    assert checked.warnings == [
        "webhook/en: 1 of 4 sampled contexts fail (messages/ops/webhook.en.txt line 1: "
        "ZeroDivisionError: division by zero); those messages will fail at send, the rest go out",
        "webhook/zh-CN: 1 of 4 sampled contexts fail (messages/ops/webhook.en.txt line 1: "
        "ZeroDivisionError: division by zero); those messages will fail at send, the rest go out",
    ]


def test_preflight_stops_a_template_that_fails_every_sampled_user(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users_inactive(engine, settings, [8, 9, 12])
    ops = ops_campaign(tmp_path, monkeypatch, "{{ 100 // (locale == 'nowhere') }}")
    campaign = find_campaign(ops.campaign_dir, "ops")
    with session_scope(engine) as session, pytest.raises(TemplateError, match="every sampled"):
        preflight(ops, campaign, session)


def test_preflight_stops_a_template_that_renders_only_for_the_fixed_sample(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users_inactive(engine, settings, [8, 9, 12])
    ops = ops_campaign(tmp_path, monkeypatch, "{{ 100 // (user_id == 'u0000000') }}")
    campaign = find_campaign(ops.campaign_dir, "ops")
    with session_scope(engine) as session, pytest.raises(TemplateError, match="every sampled"):
        preflight(ops, campaign, session)


@pytest.mark.parametrize(
    "text",
    ["{{ days_inactve }}", "{{ user_id.__class__ }}", "{{ user_id "],
    ids=["missing-variable", "unsafe-attribute", "syntax"],
)
def test_preflight_stops_a_template_defect_whatever_the_users(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    users_inactive(engine, settings, [8, 9, 12])
    ops = ops_campaign(tmp_path, monkeypatch, text)
    campaign = find_campaign(ops.campaign_dir, "ops")
    with session_scope(engine) as session, pytest.raises(TemplateError) as raised:
        preflight(ops, campaign, session)
    assert not isinstance(raised.value, TemplateDataError)
    assert "messages/ops/webhook.en.txt" in str(raised.value)


@pytest.mark.parametrize(
    ("channel", "text", "reason"),
    [
        ("sms", "{{ 'a' * (days_inactive * 15) }}", "SMS of 375 characters needs more than 2"),
        ("sms", "{{ '好' * (days_inactive * 6) }}", "SMS of 150 characters needs more than 2"),
        ("push", "Hi\n{{ 'b' * (days_inactive * 10) }}", "title over 50 or body over 200"),
        ("push", "{{ 'T' * (days_inactive * 3) }}\nbody", "title over 50 or body over 200"),
    ],
    ids=["sms-gsm7", "sms-chinese", "push-body", "push-title"],
)
def test_an_over_long_sms_or_push_fails_that_message_with_the_reason(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    channel: str,
    text: str,
    reason: str,
) -> None:
    """Two SMS segments at most (306 GSM-7 characters, 134 others); a push title of 50
    characters and a body of 200: a longer message is refused, not cut or sent in pieces."""
    users = users_inactive(engine, settings, [8, 12, 16, 25])
    ops = ops_campaign(tmp_path, monkeypatch, text, channel=channel)
    campaign = find_campaign(ops.campaign_dir, "ops")
    with session_scope(engine) as session:
        plan(session, campaign, DAY)
    assert send_all(engine, ops, campaign, DAY, "w1", 50) == {"sent": 3, "failed": 1}
    with session_scope(engine) as session:
        [row] = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed"))
    assert row.user_id == users[3] and reason in (row.reason or "")
    sent = (ops.outbox_path / f"{channel}.jsonl").read_text().splitlines()
    assert len(sent) == 3


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'x' * 20000000 }}",
        "{{ [0] * 20000000 }}",
        "{% for i in range(20000000) %}{% endfor %}",
        "{{ 10 ** 100000000 }}",
        "{{ 'x'|center(20000000) }}",
        "{{ 'x'.ljust(20000000) }}",
        "{{ '{:>20000000}'.format('x') }}",
        "{{ '%020000000d' % 1 }}",
        "{{ ('x' * 1000)|replace('', 'y' * 1000) }}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% for i in range(50000) %}{{ 'x' * 50000 }}{% endfor %}",
    ],
    ids=[
        "str-times",
        "list-times",
        "range",
        "power",
        "center",
        "ljust",
        "format",
        "percent",
        "replace",
        "concat",
        "output",
    ],
)
def test_a_template_cannot_allocate_without_bound(tmp_path: Path, text: str) -> None:
    folder = tmp_path / "messages" / "big"
    folder.mkdir(parents=True)
    (folder / "webhook.en.txt").write_text(text)
    with pytest.raises(TemplateDataError, match="limit|over|five digits"):
        render("big", "webhook", "en", {"user_id": "u1"}, tmp_path)


def test_ordinary_arithmetic_and_formatting_still_render(tmp_path: Path) -> None:
    folder = tmp_path / "messages" / "fine"
    folder.mkdir(parents=True)
    (folder / "webhook.en.txt").write_text(
        "{{ '-' * 20 }} {{ range(3)|list|join(',') }} {{ '{:,}'.format(1234567) }} "
        "{{ '%05.1f' % 2.5 }} {{ 'ab'|center(6) }}| {{ 2 ** 10 }} {{ 'a' ~ user_id }}"
    )
    text = render("fine", "webhook", "en", {"user_id": "u1"}, tmp_path).text
    assert text == "-------------------- 0,1,2 1,234,567 002.5   ab  | 1024 au1"


def test_preview_renders_from_template_dir(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    users_inactive(engine, settings, [8, 10])
    ops_campaign(tmp_path, monkeypatch, DIVIDING)
    # preview renders as of yesterday, as `run` sends: d000 was inactive 8 days on DAY.
    days = (dt.datetime.now(settings.zone).date() - dt.timedelta(days=1) - DAY).days
    assert main(["preview", "ops", "--user", "d000", "--channel", "webhook"]) == 0
    assert f"{100 / (8 + days - 10):.1f} points back" in capsys.readouterr().out


def test_every_shipped_email_links_unsubscribe_and_preferences_in_both_parts() -> None:
    """README: each email's footer links the preference page; a new template forgetting it
    fails here."""
    from yunying.messaging.render import TEMPLATES

    bodies = [
        path
        for path in (TEMPLATES / "messages").glob("*/email.*")
        if not path.name.endswith(".subject.txt") and path.suffix in (".txt", ".html")
    ]
    assert len(bodies) >= 12
    for body in bodies:
        text = body.read_text(encoding="utf-8")
        assert "{{ unsubscribe_url }}" in text and "{{ preferences_url }}" in text, body
