"""Mainland SMS through Aliyun dysmsapi and Tencent Cloud SMS against the local server, which
checks each request's signature as the provider documents it; the documented example
signatures are reproduced here; faults, refusals and a crash after sending are survived with
every message delivered once."""

import datetime as dt
import json

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, update

from tests.builders import DAY, silent_users
from tests.integration.test_outbox import NOON_IN_SHANGHAI, campaign, send_all
from tests.integration.test_providers import DiesAfterSending, Killed
from yunying.config import Settings, load_settings
from yunying.demo.local_server import LocalServer
from yunying.errors import ConfigError, TemplateError
from yunying.messaging.channels import channels_for
from yunying.messaging.cn_sms import aliyun_signature, tc3_signature
from yunying.messaging.cn_sms_config import CnSmsSettings, SmsTemplateMapping
from yunying.messaging.outbox import LEASE, counts, plan
from yunying.messaging.preflight import preflight
from yunying.messaging.send import send_batch
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage, Suppression, User

KEY_ID, KEY_SECRET, SIGN = "LTAI5tTestKeyId", "test-secret/+=", "运营示例"
APP_ID = "1400000001"
CODES = {"aliyun": "SMS_100200300", "tencent": "1234567"}


def test_aliyun_signature_reproduces_the_documented_examples() -> None:
    """help.aliyun.com/document_detail/56189.html (SendSms) and the RPC signature page."""
    send_sms = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert aliyun_signature("GET", send_sms, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    describe_regions = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }
    assert aliyun_signature("GET", describe_regions, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_tc3_signature_reproduces_the_documented_example() -> None:
    """cloud.tencent.com/document/api/382/52071: DescribeInstances at 1551113065."""
    payload = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    signature = tc3_signature(
        "Gu5t9xGARNpq86cd98joQYCN3*******",
        "cvm",
        "cvm.tencentcloudapi.com",
        1551113065,
        payload,
        "application/json; charset=utf-8",
    )
    assert signature == "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


def cn_settings(
    settings: Settings, server: LocalServer, provider: str, **changes: object
) -> Settings:
    code = CODES[provider]
    if provider == "aliyun":
        server.cn.aliyun.accounts[KEY_ID] = KEY_SECRET
        server.cn.aliyun.sign_names.add(SIGN)
        server.cn.aliyun.templates[code] = {"days"}
    else:
        server.cn.tencent.accounts[KEY_ID] = KEY_SECRET
        server.cn.tencent.app_ids.add(APP_ID)
        server.cn.tencent.sign_names.add(SIGN)
        server.cn.tencent.templates[code] = 1
    cn_sms = CnSmsSettings.model_validate(
        {
            "provider": provider,
            "url": server.url,
            "access_key_id": KEY_ID,
            "access_key_secret": SecretStr(KEY_SECRET),
            "sign_name": SIGN,
            "sdk_app_id": APP_ID if provider == "tencent" else None,
            "templates": {
                "winback": SmsTemplateMapping(code=code, params={"days": "{{ days_inactive }}"})
            },
            **changes,
        }
    )
    providers = settings.providers.model_copy(update={"timeout_seconds": 2.0})
    return settings.model_copy(update={"cn_sms": cn_sms, "providers": providers})


def book(server: LocalServer, provider: str):  # type: ignore[no-untyped-def]
    return server.cn.aliyun.book if provider == "aliyun" else server.cn.tencent.book


def provider_phone(provider: str, i: int) -> str:
    phone = f"+8613900{i:06d}"
    return phone[3:] if provider == "aliyun" else phone


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_batched_sends_survive_5xx_429_flow_control_and_drops(
    engine: Engine, settings: Settings, local_server: LocalServer, provider: str
) -> None:
    cn = cn_settings(settings, local_server, provider)
    users = silent_users(engine, cn, 120)
    sent_book = book(local_server, provider)
    sent_book.reject.add(provider_phone(provider, 5))
    sent_book.busy = 2  # Throttling.User / RequestLimitExceeded
    local_server.faults.error_rate = 0.2
    local_server.faults.rate_limit_rate = 0.1
    local_server.faults.drop_rate = 0.05
    local_server.faults.retry_after_seconds = 0
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    later = NOON_IN_SHANGHAI
    for _ in range(8):
        send_all(engine, cn, chosen, now=later)
        later += dt.timedelta(minutes=5)

    assert sent_book.double_sends == 0
    assert {r.phone for r in sent_book.sent} == {
        provider_phone(provider, i) for i in range(120) if i != 5
    }
    assert all(r.sign == SIGN and r.code == CODES[provider] for r in sent_book.sent)
    assert all(r.params in ({"days": "10"}, ["10"]) for r in sent_book.sent)
    batch_action = "SendBatchSms" if provider == "aliyun" else "SendSms"
    assert sent_book.calls[batch_action] < 60  # batches of up to 50 (the send limit), retried
    with session_scope(engine) as session:
        final = counts(session, "winback", DAY)
        rejected = session.scalars(
            select(OutboxMessage).where(OutboxMessage.user_id == users[5])
        ).one()
    assert final["sent"] == 119 and final["failed"] == 1
    expected = {
        "aliyun": "isv.MOBILE_NUMBER_ILLEGAL 非法手机号",
        "tencent": "InvalidParameterValue.IncorrectPhoneNumber 手机号格式错误",
    }
    assert rejected.reason == expected[provider]


def test_tencent_numbers_stored_without_plus_86_are_sent_once(
    engine: Engine, settings: Settings, local_server: LocalServer
) -> None:
    """Tencent answers every number in E.164 whatever form it was sent in: a mainland number
    kept as 11 digits, or with 86 / 0086 in front, is still matched to its answer (and to
    its receipt after a crash), not retried and sent again."""
    cn = cn_settings(settings, local_server, "tencent")
    forms = ["139{:08d}", "86139{:08d}", "0086139{:08d}", "+86139{:08d}"]
    users = silent_users(engine, cn, 4)
    with session_scope(engine) as session:
        for i, (user, form) in enumerate(zip(users, forms, strict=True)):
            session.execute(update(User).where(User.user_id == user).values(phone=form.format(i)))
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, cn, chosen) == {"sent": 4}
    sent_book = local_server.cn.tencent.book
    assert sorted(r.phone for r in sent_book.sent) == [f"+86139{i:08d}" for i in range(4)]
    assert sent_book.calls["SendSms"] == 1


def test_tencent_blacklisted_number_is_suppressed(
    engine: Engine, settings: Settings, local_server: LocalServer
) -> None:
    cn = cn_settings(settings, local_server, "tencent")
    users = silent_users(engine, cn, 4)
    local_server.cn.tencent.book.blacklist.add("+8613900000002")
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, cn, chosen) == {"sent": 3, "bounced": 1}
    with session_scope(engine) as session:
        suppressed = session.scalars(select(Suppression.user_id)).all()
    assert suppressed == [users[2]]


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_a_crash_after_sending_is_reconciled_through_the_status_query(
    engine: Engine, settings: Settings, local_server: LocalServer, provider: str
) -> None:
    """Neither provider takes an idempotency key: a message claimed again after a crash is
    looked up (QuerySendDetails / PullSmsSendStatusByPhoneNumber) and only sent when absent."""
    cn = cn_settings(settings, local_server, provider)
    # Ids with ':' among plain ones: what a lookup matches on must not be cut out of the key.
    silent_users(engine, cn, 30, user_id=lambda i: f"cn:u:{i:03d}" if i % 3 else f"s{i:05d}")
    chosen = campaign(channels=["sms"], holdout_percent=0)
    channels = channels_for(cn)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    send_batch(engine, cn, chosen, DAY, "w1", channels, 12, now=NOON_IN_SHANGHAI)
    dying = {**channels, "sms": DiesAfterSending(channels["sms"])}
    with pytest.raises(Killed):
        send_batch(engine, cn, chosen, DAY, "w2", dying, 10, now=NOON_IN_SHANGHAI)
    sent_book = book(local_server, provider)
    assert len(sent_book.sent) == 22

    after_lease = NOON_IN_SHANGHAI + LEASE + dt.timedelta(seconds=1)
    sent_book.lookups_down = True  # the status query cannot be asked: those are not sent
    assert send_all(engine, cn, chosen, now=after_lease, limit=10) == {"retry": 10, "sent": 8}
    assert len(sent_book.sent) == 30
    sent_book.lookups_down = False
    send_all(engine, cn, chosen, now=after_lease + dt.timedelta(minutes=5))
    assert len(sent_book.sent) == 30 and sent_book.double_sends == 0
    lookup = "QuerySendDetails" if provider == "aliyun" else "PullSmsSendStatusByPhoneNumber"
    assert sent_book.calls[lookup] >= 10
    with session_scope(engine) as session:
        assert counts(session, "winback", DAY)["sent"] == 30
        # The crash's 10 were claimed three times: crash, failed lookup, lookup.
        reclaimed = session.scalars(select(OutboxMessage).where(OutboxMessage.attempts == 3)).all()
    assert len(reclaimed) == 10 and all(r.provider_ref for r in reclaimed)


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_a_send_answered_after_the_timeout_is_looked_up_not_sent_again(
    engine: Engine, settings: Settings, local_server: LocalServer, provider: str
) -> None:
    """The provider took the batch and answered after the client's timeout (2 s here): the
    run does not send it again blind; the next claim finds it through the status query."""
    cn = cn_settings(settings, local_server, provider)
    silent_users(engine, cn, 3)
    sent_book = book(local_server, provider)
    sent_book.late_answers, sent_book.late_seconds = 1, 3.0
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, cn, chosen) == {"retry": 3}
    assert len(sent_book.sent) == 3
    with session_scope(engine) as session:
        reasons = set(session.scalars(select(OutboxMessage.reason)))
    assert reasons == {
        "no answer (TimeoutError) after the request went out: looked up at the provider"
        " before it is sent again"
    }
    assert send_all(engine, cn, chosen, now=NOON_IN_SHANGHAI + dt.timedelta(minutes=5)) == {
        "sent": 3
    }
    assert len(sent_book.sent) == 3 and sent_book.double_sends == 0
    lookup = "QuerySendDetails" if provider == "aliyun" else "PullSmsSendStatusByPhoneNumber"
    assert sent_book.calls[lookup] >= 3


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_a_wrong_secret_fails_with_the_provider_reason_and_sends_nothing(
    engine: Engine, settings: Settings, local_server: LocalServer, provider: str
) -> None:
    cn = cn_settings(settings, local_server, provider, access_key_secret=SecretStr("rotated"))
    silent_users(engine, cn, 3)
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, cn, chosen) == {"failed": 3}
    with session_scope(engine) as session:
        reasons = {r.split(" ")[0] for r in session.scalars(select(OutboxMessage.reason))}
    assert reasons == {
        "SignatureDoesNotMatch" if provider == "aliyun" else "AuthFailure.SignatureFailure"
    }
    assert not book(local_server, provider).sent
    # Aliyun's refused batch is tried one by one (it may be one bad number); Tencent, which
    # answers per number, refused the call for all: no point asking three more times.
    calls = {"aliyun": {"SendBatchSms": 1, "SendSms": 3}, "tencent": {"SendSms": 1}}
    assert dict(book(local_server, provider).calls) == calls[provider]


@pytest.mark.parametrize(
    ("provider", "params", "complaint"),
    [
        ("aliyun", {"days": "{{ no_such_value }}"}, "'no_such_value' is undefined"),
        ("aliyun", {"days": "{{ user_id * 9 }}"}, "over the 35 allowed"),
        ("tencent", {"url": "{{ app_url }}"}, "Tencent takes no links"),
        ("aliyun", {"days": "{{ '' }}"}, "'days' is empty"),
        ("tencent", {"days": "{{ user_id * 80 }}"}, "over Tencent's 500 characters"),
    ],
    ids=["missing", "too-long", "tencent-link", "empty", "tencent-total"],
)
def test_preflight_checks_every_template_parameter(
    settings: Settings,
    local_server: LocalServer,
    provider: str,
    params: dict[str, str],
    complaint: str,
) -> None:
    mapping = SmsTemplateMapping(code=CODES[provider], params=params)
    cn = (
        cn_settings(
            settings, local_server, provider, templates={"winback": mapping}, param_max_length=1000
        )
        if "500" in complaint
        else cn_settings(settings, local_server, provider, templates={"winback": mapping})
    )
    with pytest.raises(TemplateError, match="cn_sms.templates.winback") as error:
        preflight(cn, campaign(channels=["sms"]))
    assert complaint in str(error.value)


def test_preflight_names_an_unmapped_template(
    settings: Settings, local_server: LocalServer
) -> None:
    other = SmsTemplateMapping(code="SMS_1", params={})
    cn = cn_settings(settings, local_server, "aliyun", templates={"other": other})
    with pytest.raises(TemplateError, match="no cn_sms.templates entry for template 'winback'"):
        preflight(cn, campaign(channels=["sms"]))


def test_a_message_whose_parameter_fails_is_not_sent(
    engine: Engine, settings: Settings, local_server: LocalServer
) -> None:
    mapping = SmsTemplateMapping(code=CODES["aliyun"], params={"days": "{{ user_id * 9 }}"})
    cn = cn_settings(settings, local_server, "aliyun", templates={"winback": mapping})
    silent_users(engine, cn, 2)
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, cn, chosen) == {"failed": 2}
    assert not local_server.cn.aliyun.book.calls


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            {"provider": "tencent", "access_key_id": "x", "access_key_secret": "y"},
            "sign_name, sdk_app_id",
        ),
        (
            {
                "provider": "aliyun",
                "access_key_id": "x",
                "access_key_secret": "y",
                "sign_name": "s",
            },
            "templates: map each campaign template",
        ),
        (
            {
                "provider": "aliyun",
                "access_key_id": "x",
                "access_key_secret": "y",
                "sign_name": "s",
                "templates": {"winback": {"code": "SMS_1"}},
                "batch_size": 150,
            },
            "aliyun takes at most 100",
        ),
        ({"provider": "yunpian"}, "cn_sms.provider"),
    ],
    ids=["tencent-missing", "no-templates", "batch-too-big", "unknown-provider"],
)
def test_cn_sms_settings_name_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, object], complaint: str
) -> None:
    monkeypatch.setenv("YUNYING_CN_SMS", json.dumps(values))
    with pytest.raises(ConfigError, match="cn_sms") as error:
        load_settings()
    assert complaint in str(error.value)
    assert "'y'" not in str(error.value)
