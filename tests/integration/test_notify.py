"""Ops group-chat robots (WeCom, DingTalk, Feishu, and Apprise for the rest) against the local
server, which checks each robot's key and signature; the signatures are also computed here,
independently, from each vendor's documented recipe."""

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from tests.builders import END, load_records
from yunying.config import Settings, load_settings
from yunying.demo.local_server import LocalServer
from yunying.errors import ConfigError
from yunying.notify.messages import campaign_review, payout_waiting, report_headline, run_failed
from yunying.notify.post import post_to_targets
from yunying.notify.robots import ChatMessage
from yunying.notify.targets import NotifyTarget
from yunying.reports.words import Words
from yunying.store.engine import session_scope

DING_TOKEN, DING_SECRET = "d1ng", "SECabc+/=123"
FEISHU_HOOK, FEISHU_SECRET = "5e3d587e-d78e", "nIMtb7r3N9pkXyXdtAbx6e"
WECOM_KEY = "693a91f6-7xxx"
MESSAGE = ChatMessage("Nightly failed", ["pull: HTTP 404"], "http://ui/runs/flow-run/1")


def robots(server: LocalServer, **secrets: str | None) -> list[NotifyTarget]:
    server.cn.robots.wecom_keys.add(WECOM_KEY)
    server.cn.robots.dingtalk[DING_TOKEN] = secrets.get("dingtalk", DING_SECRET)
    server.cn.robots.feishu[FEISHU_HOOK] = secrets.get("feishu", FEISHU_SECRET)
    return [
        NotifyTarget(
            kind="wecom", url=SecretStr(f"{server.url}/cgi-bin/webhook/send?key={WECOM_KEY}")
        ),
        NotifyTarget(
            kind="dingtalk",
            url=SecretStr(f"{server.url}/robot/send?access_token={DING_TOKEN}"),
            secret=SecretStr(DING_SECRET),
        ),
        NotifyTarget(
            kind="feishu",
            url=SecretStr(f"{server.url}/open-apis/bot/v2/hook/{FEISHU_HOOK}"),
            secret=SecretStr(FEISHU_SECRET),
        ),
    ]


def received(server: LocalServer, kind: str) -> list[dict[str, Any]]:
    return [r for r in server.cn.robots.received if r["kind"] == kind]


def test_each_robot_gets_its_documented_body_and_signature(local_server: LocalServer) -> None:
    before = time.time()
    results = post_to_targets(robots(local_server), "failure", MESSAGE)
    assert [(r.target, r.delivered, r.attempts) for r in results] == [
        ("wecom#1", True, 1),
        ("dingtalk#2", True, 1),
        ("feishu#3", True, 1),
    ]
    [wecom] = received(local_server, "wecom")
    assert wecom["body"] == {
        "msgtype": "markdown",
        "markdown": {
            "content": "**Nightly failed**\n- pull: HTTP 404\n"
            "[Open in the Prefect UI](http://ui/runs/flow-run/1)"
        },
    }
    # DingTalk: sign = urlencode(base64(HmacSHA256(secret, "<ms timestamp>\n<secret>"))).
    [ding] = received(local_server, "dingtalk")
    stamp = ding["query"]["timestamp"]
    assert before * 1000 <= int(stamp) <= time.time() * 1000
    digest = hmac.new(DING_SECRET.encode(), f"{stamp}\n{DING_SECRET}".encode(), hashlib.sha256)
    assert quote_plus(ding["query"]["sign"]) == quote_plus(base64.b64encode(digest.digest()))
    assert ding["body"]["msgtype"] == "markdown"
    assert ding["body"]["markdown"]["title"] == "Nightly failed"
    assert "(http://ui/runs/flow-run/1)" in ding["body"]["markdown"]["text"]
    # Feishu: sign = base64(HmacSHA256(key="<s timestamp>\n<secret>", empty message)), in the body.
    [feishu] = received(local_server, "feishu")
    body = feishu["body"]
    key = f"{body['timestamp']}\n{FEISHU_SECRET}".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert before - 1 <= int(body["timestamp"]) <= time.time()
    post = body["content"]["post"]["zh_cn"]
    assert post["title"] == "Nightly failed"
    assert post["content"][-1] == [
        {"tag": "a", "text": "Open in the Prefect UI", "href": "http://ui/runs/flow-run/1"}
    ]


def test_a_wrong_secret_is_reported_with_the_robot_errcode_and_blocks_no_other(
    local_server: LocalServer,
) -> None:
    targets = robots(local_server, dingtalk="SECrotated", feishu="rotated")
    results = {r.target: r for r in post_to_targets(targets, "failure", MESSAGE)}
    assert results["wecom#1"].delivered
    assert not results["dingtalk#2"].delivered
    assert results["dingtalk#2"].reason == "310000 sign not match"
    assert results["dingtalk#2"].attempts == 1  # a refusal is not retried
    assert results["feishu#3"].reason.startswith("19021 sign match fail")
    assert [r["kind"] for r in local_server.cn.robots.received] == ["wecom"]


def test_flow_control_5xx_and_dropped_connections_are_retried(local_server: LocalServer) -> None:
    targets = robots(local_server)
    # One flow-control answer each: 45009, 130101, 11232.
    local_server.cn.robots.busy = {"wecom": 1, "dingtalk": 1, "feishu": 1}
    results = post_to_targets(targets, "failure", MESSAGE, attempts=3, max_delay=0.01)
    assert [(r.delivered, r.attempts) for r in results] == [(True, 2)] * 3
    assert len(local_server.cn.robots.received) == 3

    local_server.faults.error_rate = 1.0
    [wecom] = post_to_targets(targets[:1], "failure", MESSAGE, attempts=2, max_delay=0.01)
    assert wecom.reason == "gave up after 2 attempts: HTTP 503"
    local_server.faults.error_rate = 0.0
    local_server.faults.drop_rate = 1.0
    [ding] = post_to_targets(targets[1:2], "failure", MESSAGE, attempts=2, max_delay=0.01)
    assert not ding.delivered and ding.reason.startswith("gave up after 2 attempts:")
    assert len(local_server.cn.robots.received) == 3


def test_targets_hear_only_their_events(local_server: LocalServer) -> None:
    wecom, ding, _ = robots(local_server)
    only_payouts = ding.model_copy(update={"events": ["payout"]})
    assert [r.target for r in post_to_targets([wecom, only_payouts], "report", MESSAGE)] == [
        "wecom#1"
    ]


def test_an_apprise_url_reaches_any_other_chat_service(local_server: LocalServer) -> None:
    """Apprise where it fits: its json:// service against the local server's generic API."""
    port = local_server.url.rsplit(":", 1)[1]
    target = NotifyTarget(
        kind="apprise",
        url=SecretStr(f"json://127.0.0.1:{port}/v1/ops-chat?+Idempotency-Key=chat-1"),
        name="slack-ish",
    )
    [result] = post_to_targets([target], "review", MESSAGE)
    assert (result.target, result.delivered) == ("slack-ish", True)
    body = local_server.recorder.deliveries["chat-1"]
    assert body["title"] == "Nightly failed"
    assert "pull: HTTP 404" in body["message"] and "http://ui/runs/flow-run/1" in body["message"]


@pytest.mark.parametrize(
    ("target", "complaint"),
    [
        ({"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send"}, "access_token"),
        ({"kind": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}, "key="),
        ({"kind": "feishu", "url": "ftp://open.feishu.cn/x"}, "http(s)"),
        ({"kind": "apprise", "url": "nosuchservice://x"}, "Apprise does not recognise"),
        ({"kind": "slack", "url": "https://hooks.slack.com/x"}, "notify.0.kind"),
        (
            {"kind": "wecom", "url": "https://q.example/send?key=k3y-s3cret", "secret": "x"},
            "WeCom group robots are not signed",
        ),
    ],
    ids=[
        "dingtalk-token",
        "wecom-key",
        "feishu-scheme",
        "apprise-unknown",
        "unknown-kind",
        "wecom-secret",
    ],
)
def test_a_bad_notify_setting_is_named_at_start_up(
    monkeypatch: pytest.MonkeyPatch, target: dict[str, str], complaint: str
) -> None:
    monkeypatch.setenv("YUNYING_NOTIFY", json.dumps([target]))
    with pytest.raises(ConfigError, match="notify.0") as error:
        load_settings()
    assert complaint in str(error.value)
    assert "s3cret" not in str(error.value)  # never echo a webhook's key


def test_messages_carry_numbers_and_the_link_never_a_recipient() -> None:
    kpis = {
        "dau": 1234,
        "wau": 5000,
        "mau": 9000,
        "new_users": 12,
        "d1_retention": 0.25,
        "revenue": "88.50",
        "orders": 7,
        "flags": [{"kpi": "dau", "value": 1234.0, "status": "new"}],
    }
    headline = report_headline("2026-11-22", kpis, "http://ui/r", Words("en", "USD"))
    assert headline.title == "Daily report 2026-11-22"
    assert headline.lines == [
        "Daily active users 1,234 · Weekly active users 5,000 · Monthly active users 9,000",
        "New users 12 · D1 retention 25.0%",
        "Revenue $88.50 · Orders 7",
        "Beyond normal (异常波动): Daily active users 1,234",
    ]
    # In the company's locale and money, as its daily report email is.
    chinese = report_headline("2026-11-22", kpis, "http://ui/r", Words("zh-CN", "CNY"))
    assert chinese.title == "运营日报 2026-11-22"
    assert chinese.lines[2] == "收入 ¥88.50 · 订单数 7"
    assert chinese.lines[3] == "异常波动：日活跃用户 1,234"
    waiting = payout_waiting("checkin", 3, 1, "150", "850", "http://ui/p")
    assert waiting.link == "http://ui/p" and "3 winners, 1 flagged" in waiting.lines[0]
    review = campaign_review("winback", "D7 return +2pt", {"uplift": "+1.4pt"}, None)
    assert review.lines == ["Objective: D7 return +2pt", "uplift: +1.4pt"]


def test_a_failed_run_of_the_command_line_names_the_command_not_the_ui() -> None:
    rerun = "yunying run nightly --date 2026-11-04"
    local = run_failed("nightly-2026-11-04", "nightly", "Failed", "boom", None, rerun)
    assert local.link is None
    assert local.lines[-1] == (
        f"Running it again is safe: every task is idempotent. Once the cause is fixed, run: {rerun}"
    )
    served = run_failed("nightly-2026-11-04", "nightly", "Failed", "boom", "http://ui/r")
    assert served.lines[-1].startswith("Retrying it from the UI is safe")
    # A rerun sends nothing that failed: the command that does is named, from the UI too.
    resend = "yunying run reactivation --campaign hook --date 2026-11-04 --resend-failed"
    why = f"every message of hook failed. 12 message(s) of hook failed; `{resend}` sends them"
    for link, again in (("http://ui/r", None), (None, rerun)):
        failed = run_failed("nightly-2026-11-04", "nightly", "Failed", why, link, again)
        assert failed.lines[-1] == f"Once the cause is fixed, run: {resend}"


# Through Prefect: the hooks and tasks the flows call.


def _notify_env(monkeypatch: pytest.MonkeyPatch, targets: list[NotifyTarget]) -> None:
    plain = [
        {**t.model_dump(exclude={"url", "secret"}), "url": t.url.get_secret_value()}
        | ({"secret": t.secret.get_secret_value()} if t.secret else {})
        for t in targets
    ]
    monkeypatch.setenv("YUNYING_NOTIFY", json.dumps(plain))


@pytest.mark.usefixtures("prefect")
def test_a_failed_nightly_tells_the_chat_with_the_run_link(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, local_server: LocalServer
) -> None:
    from flows.nightly import nightly
    from yunying.sources.config import HttpSource

    broken = HttpSource(name="gone", entity="events", url=local_server.url + "/no-such-api")
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps([broken.model_dump()]))
    _notify_env(monkeypatch, robots(local_server)[2:])  # the signed Feishu bot
    state = nightly(business_date=END, return_state=True)
    assert state.is_failed()
    [feishu] = received(local_server, "feishu")
    post = feishu["body"]["content"]["post"]["zh_cn"]
    assert post["title"] == f"Yunying: nightly-{END} failed"
    assert "404" in post["content"][0][0]["text"]
    assert post["content"][-1][0]["href"].endswith(
        f"runs/flow-run/{state.state_details.flow_run_id}"
    )


def test_an_interrupt_prefect_turned_into_another_error_is_told_as_an_interrupt(
    settings: Settings, prefect: None, monkeypatch: pytest.MonkeyPatch, local_server: LocalServer
) -> None:
    """A Ctrl-C landing inside Prefect's task engine can end the run Failed with "ValueError:
    Task run is not set": people are told it was interrupted, in the email and the chat."""
    from email import message_from_bytes
    from email.policy import default

    from prefect import flow

    from flows.alerts import ALERTS
    from yunying.notify import command_line

    monkeypatch.setattr(command_line, "_interrupted", [])
    _notify_env(monkeypatch, robots(local_server)[2:])

    @flow(name="lifecycle", on_failure=ALERTS, on_crashed=ALERTS)
    def interrupted_inside_prefect() -> None:
        command_line.interrupted()
        raise ValueError("Task run is not set")

    assert interrupted_inside_prefect(return_state=True).is_failed()
    [path] = (settings.outbox_path / "reports").glob("alert-*.eml")
    alert = message_from_bytes(path.read_bytes(), policy=default)
    assert str(alert["Subject"]).endswith(" crashed")
    text = alert.get_content()  # type: ignore[attr-defined]
    assert "ended Crashed: interrupted (Ctrl-C or a stop signal) before it finished" in text
    assert "ValueError" not in text
    [feishu] = received(local_server, "feishu")
    assert feishu["body"]["content"]["post"]["zh_cn"]["title"].endswith(" crashed")


@pytest.mark.usefixtures("prefect")
def test_a_payout_waiting_for_approval_tells_the_chat_with_the_paused_run(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    local_server: LocalServer,
) -> None:
    from prefect.flow_runs import resume_flow_run

    from flows.reward_payout import reward_payout
    from tests.integration.test_flows import REWARD_FILE, _run_until_paused
    from yunying.rewards.campaign import load_reward_campaign
    from yunying.rewards.publish import commit

    name = f"notify-{uuid.uuid4().hex[:6]}"
    rewards = tmp_path / "rewards"
    rewards.mkdir()
    (rewards / f"{name}.toml").write_text(REWARD_FILE.format(name=name))
    monkeypatch.setenv("YUNYING_REWARD_DIR", str(rewards))
    _notify_env(monkeypatch, robots(local_server)[1:2])  # the signed DingTalk robot
    users = [{"user_id": f"w{i}", "signup_at": "2026-10-01T00:00:00Z"} for i in range(4)]
    events = [
        {"event_id": f"w{i}-{d}", "user_id": f"w{i}", "name": "checkin",
         "occurred_at": f"2026-11-0{3 + d}T03:00:00Z"}
        for i in range(4) for d in range(2)
    ]  # fmt: skip
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        lottery = load_reward_campaign(rewards, name)
        commit(session, lottery, lottery.start_utc)  # the seed, committed at the start

    thread, outcome, run_id = _run_until_paused(
        name, lambda: reward_payout(campaign=name, poll_interval_seconds=1)
    )
    [ding] = received(local_server, "dingtalk")
    text = ding["body"]["markdown"]["text"]
    assert f"Payout waiting for approval: {name}" in text
    assert "3 winners, 0 flagged" in text and re.search(r"To pay \d+ against 500", text)
    assert f"runs/flow-run/{run_id})" in text
    assert "w1" not in text  # counts and amounts, never who
    resume_flow_run(run_id, run_input={"approve": False, "approver": "lead@ops"})
    thread.join(timeout=120)
    assert outcome["result"]["paid"] == 0


@pytest.mark.usefixtures("prefect")
def test_the_daily_report_tells_the_chat_its_headline_once(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, local_server: LocalServer
) -> None:
    from flows.report import report

    _notify_env(monkeypatch, robots(local_server)[:1])  # the WeCom robot
    with session_scope(engine) as session:
        load_records(
            session, settings.zone, "users", [{"user_id": "r1", "signup_at": f"{END}T03:00:00Z"}]
        )
    state = report(business_date=END, return_state=True)
    report(business_date=END)  # already sent: neither emailed nor announced again
    [wecom] = received(local_server, "wecom")
    content = wecom["body"]["markdown"]["content"]
    assert content.startswith(f"**运营日报 {END}**\n- 日活跃用户 0 · ")  # the company's locale
    assert "新增用户 1 ·" in content
    assert content.endswith(f"runs/flow-run/{state.state_details.flow_run_id})")


@pytest.mark.usefixtures("prefect")
def test_a_review_flow_tells_the_chat_and_a_refusing_robot_fails_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, local_server: LocalServer
) -> None:
    from prefect import flow

    from tasks.notify import tell_review

    wecom, ding, _ = robots(local_server, dingtalk="SECrotated")  # DingTalk refuses the sign
    _notify_env(monkeypatch, [wecom, ding])

    @flow(name="campaign-review-test")
    def review() -> dict[str, Any]:
        return tell_review(
            load_settings(), "winback", "D7 return +2pt", {"uplift": "+1.4pt", "cost": "¥300"}
        )

    state = review(return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["delivered"] == ["wecom#1"]
    assert result["failed"] == {"dingtalk#2": "310000 sign not match"}
    [wecom_message] = received(local_server, "wecom")
    content = wecom_message["body"]["markdown"]["content"]
    assert content.startswith("**Campaign review: winback (复盘)**\n- Objective: D7 return +2pt")
    assert "- uplift: +1.4pt\n- cost: ¥300" in content
    assert content.endswith(f"runs/flow-run/{state.state_details.flow_run_id})")
