"""WeChat template and subscribe messages to openids against the local server: one access
token shared by all workers through the store, refreshed when WeChat calls it stale; users who
unfollowed or refused are suppressed; consent and openid come from the source."""

import copy
import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, update

from tests.builders import DAY, silent_users
from tests.integration.test_outbox import NOON_IN_SHANGHAI, campaign, send_all
from yunying.config import Settings, load_settings
from yunying.demo.local_server import LocalServer
from yunying.errors import ConfigError, TemplateError
from yunying.messaging.channels import channels_for
from yunying.messaging.outbox import counts, plan, reclaim
from yunying.messaging.preflight import preflight
from yunying.messaging.send import blind_channels, send_batch
from yunying.messaging.wechat import WeChatChannel, shared_token
from yunying.messaging.wechat_config import WeChatSettings, WeChatTemplate
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage, ProviderToken, Suppression, User

APP_ID, APP_SECRET, TEMPLATE = "wx0123456789abcdef", "wechat-secret", "TPL-winback-1"


@pytest.fixture(params=["official_account", "mini_program"])
def wechat(
    request: pytest.FixtureRequest, settings: Settings, local_server: LocalServer
) -> Settings:
    local_server.cn.wechat.app_id, local_server.cn.wechat.app_secret = APP_ID, APP_SECRET
    template = WeChatTemplate(
        template_id=TEMPLATE,
        data={"thing1": "{{ campaign }}", "number2": "{{ days_inactive }}"},
        link="pages/home/index",
    )
    chosen = WeChatSettings(
        kind=request.param,
        url=local_server.url,
        app_id=APP_ID,
        app_secret=SecretStr(APP_SECRET),
        templates={"winback": template},
    )
    providers = settings.providers.model_copy(update={"timeout_seconds": 2.0})
    return settings.model_copy(update={"wechat": chosen, "providers": providers})


def wechat_users(engine: Engine, settings: Settings, count: int) -> list[str]:
    users = silent_users(engine, settings, count, wechat_opt_in="yes")
    with session_scope(engine) as session:
        session.execute(update(User).values(openid="o_" + User.user_id))
    return users


def test_workers_share_one_access_token_through_the_store(
    engine: Engine, wechat: Settings, local_server: LocalServer
) -> None:
    wechat_users(engine, wechat, 30)
    chosen = campaign(channels=["wechat"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    worker_1, worker_2 = channels_for(wechat), channels_for(wechat)  # two processes' channels
    send_batch(engine, wechat, chosen, DAY, "w1", worker_1, 15, now=NOON_IN_SHANGHAI)
    send_batch(engine, wechat, chosen, DAY, "w2", worker_2, 15, now=NOON_IN_SHANGHAI)

    assert local_server.cn.wechat.token_fetches == 1
    with session_scope(engine) as session:
        stored = session.get(ProviderToken, f"wechat:{APP_ID}")
        assert counts(session, "winback", DAY)["sent"] == 30
    assert stored is not None and stored.fetches == 1 and stored.token
    delivered = local_server.cn.wechat.book.delivered
    assert sorted(m["touser"] for m in delivered) == sorted(f"o_s{i:05d}" for i in range(30))
    one = delivered[0]
    assert one["template_id"] == TEMPLATE
    assert one["data"] == {"thing1": {"value": "winback"}, "number2": {"value": "10"}}
    link = "url" if wechat.wechat.kind == "official_account" else "page"
    assert one[link] == "pages/home/index"
    assert one["kind"] == ("template" if link == "url" else "subscribe")


def test_a_stale_token_is_fetched_again_once(
    engine: Engine, wechat: Settings, local_server: LocalServer
) -> None:
    wechat_users(engine, wechat, 6)
    chosen = campaign(channels=["wechat"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    channels = channels_for(wechat)
    send_batch(engine, wechat, chosen, DAY, "w1", channels, 3, now=NOON_IN_SHANGHAI)
    local_server.cn.wechat.expire()  # WeChat answers 40001 to the old token from now on
    send_batch(engine, wechat, chosen, DAY, "w1", channels, 3, now=NOON_IN_SHANGHAI)
    with session_scope(engine) as session:
        assert counts(session, "winback", DAY)["sent"] == 6
    assert local_server.cn.wechat.token_fetches == 2
    assert len(local_server.cn.wechat.book.delivered) == 6


def test_unfollowed_and_refused_users_are_suppressed_under_faults(
    engine: Engine, wechat: Settings, local_server: LocalServer
) -> None:
    users = wechat_users(engine, wechat, 40)
    local_server.cn.wechat.unfollowed.add("o_s00003")
    local_server.cn.wechat.refused.add("o_s00004")
    local_server.faults.error_rate = 0.2
    local_server.faults.rate_limit_rate = 0.1
    local_server.faults.drop_rate = 0.05
    local_server.faults.retry_after_seconds = 0
    chosen = campaign(channels=["wechat"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    later = NOON_IN_SHANGHAI
    for _ in range(8):
        send_all(engine, wechat, chosen, now=later)
        later += dt.timedelta(minutes=5)

    delivered = [m["touser"] for m in local_server.cn.wechat.book.delivered]
    assert sorted(delivered) == sorted(f"o_s{i:05d}" for i in range(40) if i not in (3, 4))
    with session_scope(engine) as session:
        rows = {r.user_id: r for r in session.scalars(select(OutboxMessage))}
        suppressed = set(session.scalars(select(Suppression.user_id)))
    assert (rows[users[3]].status, rows[users[3]].reason) == ("bounced", "43004 require subscribe")
    assert rows[users[4]].reason == "43101 user refuse to accept the msg"
    assert suppressed == {users[3], users[4]}


def test_a_keyword_over_its_limit_fails_without_a_request(
    engine: Engine, wechat: Settings, local_server: LocalServer
) -> None:
    long = WeChatTemplate(template_id=TEMPLATE, data={"thing1": "{{ user_id * 5 }}"})
    configured = wechat.model_copy(
        update={"wechat": wechat.wechat.model_copy(update={"templates": {"winback": long}})}
    )
    wechat_users(engine, configured, 2)
    chosen = campaign(channels=["wechat"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, configured, chosen) == {"failed": 2}
    with session_scope(engine) as session:
        reasons = set(session.scalars(select(OutboxMessage.reason)))
    assert reasons == {"WeChat keyword 'thing1': 30 characters, over 20"}
    assert local_server.cn.wechat.token_fetches == 0


@pytest.mark.parametrize(
    ("fields", "planned"),
    [
        ({"openid": "o_1", "wechat_opt_in": "yes"}, "queued"),
        ({"openid": "o_1"}, "suppressed"),  # no recorded consent
        ({"wechat_opt_in": "yes"}, "suppressed"),  # no openid
    ],
    ids=["consented", "no-consent", "no-openid"],
)
def test_openid_and_consent_come_from_the_source(
    engine: Engine, settings: Settings, fields: dict[str, str], planned: str
) -> None:
    silent_users(engine, settings, 1, **fields)
    with session_scope(engine) as session:
        plan(session, campaign(channels=["wechat"], holdout_percent=0), DAY)
        status = session.scalar(select(OutboxMessage.status))
    assert status == planned


def test_wechat_settings_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNYING_WECHAT", json.dumps({"kind": "mini_program", "app_id": APP_ID}))
    with pytest.raises(ConfigError, match="wechat") as error:
        load_settings()
    assert "missing app_secret" in str(error.value)


def test_two_workers_asking_at_once_fetch_one_token(engine: Engine) -> None:
    fetches: list[int] = []
    tokens: list[str] = []
    now = dt.datetime(2026, 11, 2, 4, 0)

    def fetch() -> tuple[str, int]:
        fetches.append(1)
        time.sleep(0.5)  # WeChat is slow: the other worker asks meanwhile
        return f"token-{len(fetches)}", 7200

    def worker() -> None:
        with session_scope(engine) as session:
            tokens.append(shared_token(session, "wechat:x", fetch, dt.timedelta(seconds=300), now))

    with session_scope(engine) as session:  # an expired token: both workers want a new one
        session.add(ProviderToken(name="wechat:x", token="old", expires_at=now, updated_at=now))
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetches == [1] and tokens == ["token-1", "token-1"]


@pytest.mark.parametrize(
    ("left", "fetched"), [(299, True), (301, False)], ids=["within-margin", "still-good"]
)
def test_a_token_is_fetched_again_before_it_expires(
    engine: Engine, left: int, fetched: bool
) -> None:
    now = dt.datetime(2026, 11, 2, 4, 0)
    with session_scope(engine) as session:
        session.add(
            ProviderToken(
                name="wechat:x",
                token="old",
                expires_at=now + dt.timedelta(seconds=left),
                fetches=1,
                updated_at=now,
            )
        )
    with session_scope(engine) as session:
        token = shared_token(
            session, "wechat:x", lambda: ("new", 7200), dt.timedelta(seconds=300), now
        )
    assert token == ("new" if fetched else "old")


@pytest.mark.parametrize(
    ("templates", "complaint"),
    [
        ({}, "no wechat.templates entry for template 'winback'"),
        (
            {"winback": WeChatTemplate(template_id="T", data={"phrase3": "{{ campaign }}"})},
            "wechat.templates.winback: WeChat keyword 'phrase3': 7 characters, over 5",
        ),
        (
            {"winback": WeChatTemplate(template_id="T", data={"thing1": "{{ nickname }}"})},
            "'nickname' is undefined",
        ),
    ],
    ids=["unmapped", "over-limit", "undefined"],
)
def test_preflight_checks_the_wechat_template(
    wechat: Settings, templates: dict[str, WeChatTemplate], complaint: str
) -> None:
    configured = wechat.model_copy(
        update={"wechat": wechat.wechat.model_copy(update={"templates": templates})}
    )
    with pytest.raises(TemplateError) as error:
        preflight(configured, campaign(channels=["wechat"]))
    assert complaint in str(error.value)


def test_preflight_measures_a_keyword_with_the_campaigns_own_name(wechat: Settings) -> None:
    """ "winbackwinback" is 14 characters, within thing's 20: the keyword is measured as sent,
    not with a stand-in name longer than the campaign's."""
    doubled = WeChatTemplate(template_id="T", data={"thing1": "{{ campaign }}{{ campaign }}"})
    configured = wechat.model_copy(
        update={"wechat": wechat.wechat.model_copy(update={"templates": {"winback": doubled}})}
    )
    report = preflight(configured, campaign(channels=["wechat"]))
    assert not report.failures


def test_messages_wechat_took_before_a_crash_are_unknown_never_resent(
    engine: Engine, wechat: Settings, local_server: LocalServer
) -> None:
    """WeChat takes no idempotency key: messages handed to it when the worker died are
    `unknown` after a reclaim, and the next run sends none of them again."""
    wechat_users(engine, wechat, 4)
    chosen = campaign(channels=["wechat"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    channels = channels_for(wechat)

    class DiesOnceSent(WeChatChannel):  # the worker's process ends before it records
        def send(self, messages: Any, on_outcomes: Any = None) -> Any:
            super().send(messages)
            raise SystemExit

    dying = copy.copy(channels["wechat"])
    dying.__class__ = DiesOnceSent
    with pytest.raises(SystemExit):
        send_batch(engine, wechat, chosen, DAY, "w1", {"wechat": dying}, 10, NOON_IN_SHANGHAI)
    with session_scope(engine) as session:
        done = reclaim(session, chosen.name, DAY, blind_channels(channels))
    assert done == {"requeued": 0, "unknown": 4}
    assert send_all(engine, wechat, chosen) == {}
    assert len(local_server.cn.wechat.book.delivered) == 4
