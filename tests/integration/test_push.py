"""App push through JPush and FCM HTTP v1 against the local server: the documented bodies,
Basic auth (JPush) and a service account's OAuth2 token (FCM, a JWT the server verifies with
the account's public key), dead tokens suppressed, faults survived with one delivery each."""

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy import Engine, select

from tests.builders import DAY, silent_users
from tests.integration.test_outbox import NOON_IN_SHANGHAI, campaign, send_all
from yunying.config import Settings, load_settings
from yunying.demo.local_server import LocalServer
from yunying.errors import ConfigError
from yunying.messaging.channels import channels_for
from yunying.messaging.outbox import counts, plan
from yunying.messaging.push import collapse_id
from yunying.messaging.push_config import PushSettings
from yunying.messaging.send import send_batch
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage, Suppression

APP_KEY, MASTER_SECRET = "25b4bd4a3a0e3cdd7fa5c7d1", "master-secret"
PROJECT, CLIENT = "yunying-test", "push@yunying-test.iam.gserviceaccount.com"


def with_push(settings: Settings, **values: object) -> Settings:
    push = PushSettings.model_validate(values)
    providers = settings.providers.model_copy(update={"timeout_seconds": 2.0})
    return settings.model_copy(update={"push": push, "providers": providers})


@pytest.fixture
def fcm(settings: Settings, local_server: LocalServer, tmp_path: Path) -> Settings:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": CLIENT,
        "token_uri": f"{local_server.url}/token",
    }
    path = tmp_path / "fcm.json"
    path.write_text(json.dumps(account))
    local_server.cn.fcm.project = PROJECT
    local_server.cn.fcm.public_keys[CLIENT] = key.public_key()
    return with_push(settings, provider="fcm", url=local_server.url, fcm_service_account_file=path)


@pytest.fixture
def jpush(settings: Settings, local_server: LocalServer) -> Settings:
    local_server.cn.jpush.app_key, local_server.cn.jpush.master_secret = APP_KEY, MASTER_SECRET
    return with_push(
        settings,
        provider="jpush",
        url=local_server.url,
        jpush_app_key=APP_KEY,
        jpush_master_secret=SecretStr(MASTER_SECRET),
    )


def _send_until_done(engine: Engine, settings: Settings) -> None:
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    later = NOON_IN_SHANGHAI
    for _ in range(8):
        send_all(engine, settings, chosen, now=later)
        later += dt.timedelta(minutes=5)


def test_fcm_sends_the_documented_body_with_a_shared_token_under_faults(
    engine: Engine, fcm: Settings, local_server: LocalServer
) -> None:
    users = silent_users(engine, fcm, 40)
    local_server.cn.fcm.book.dead.add("tok3")
    local_server.faults.error_rate = 0.2
    local_server.faults.rate_limit_rate = 0.1
    local_server.faults.drop_rate = 0.05
    local_server.faults.retry_after_seconds = 0
    _send_until_done(engine, fcm)

    delivered = local_server.cn.fcm.book.delivered
    assert sorted(m["token"] for m in delivered) == sorted(f"tok{i}" for i in range(40) if i != 3)
    one = next(m for m in delivered if m["token"] == "tok1")
    key = f"winback:{DAY}:s00001"
    assert one["notification"]["title"] and one["notification"]["body"]
    assert one["android"] == {"notification": {"tag": collapse_id(key)}}
    assert one["apns"] == {"headers": {"apns-collapse-id": collapse_id(key)}}
    assert local_server.cn.fcm.grants == 1  # one token for every request of the run
    with session_scope(engine) as session:
        final = counts(session, "winback", DAY)
        dead = session.scalars(select(OutboxMessage).where(OutboxMessage.user_id == users[3])).one()
        suppressed = session.scalars(select(Suppression.user_id)).all()
    assert final["sent"] == 39 and final["bounced"] == 1
    assert dead.reason == "UNREGISTERED Requested entity was not found."
    assert suppressed == [users[3]]


def test_fcm_refreshes_a_rejected_access_token(
    engine: Engine, fcm: Settings, local_server: LocalServer
) -> None:
    silent_users(engine, fcm, 6)
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    result = send_batch(engine, fcm, chosen, DAY, "w1", channels_for(fcm), 3, NOON_IN_SHANGHAI)
    assert result.by_status == {"sent": 3}
    local_server.cn.fcm.tokens.clear()  # revoked: the next request is answered 401
    send_all(engine, fcm, chosen)
    with session_scope(engine) as session:
        assert counts(session, "winback", DAY)["sent"] == 6
    assert local_server.cn.fcm.grants == 2
    assert len(local_server.cn.fcm.book.delivered) == 6


def test_jpush_basic_auth_documented_body_and_dead_registration_id(
    engine: Engine, jpush: Settings, local_server: LocalServer
) -> None:
    users = silent_users(engine, jpush, 20)
    local_server.cn.jpush.book.dead.add("tok7")
    local_server.faults.error_rate = 0.2
    local_server.faults.retry_after_seconds = 0
    _send_until_done(engine, jpush)

    delivered = local_server.cn.jpush.book.delivered
    ids = sorted(b["audience"]["registration_id"][0] for b in delivered)
    assert ids == sorted(f"tok{i}" for i in range(20) if i != 7)
    one = delivered[0]
    assert one["platform"] == "all" and one["notification"]["alert"]
    assert one["notification"]["ios"]["alert"]["title"] == one["notification"]["android"]["title"]
    assert one["options"]["apns_collapse_id"]
    with session_scope(engine) as session:
        dead = session.scalars(select(OutboxMessage).where(OutboxMessage.user_id == users[7])).one()
        assert counts(session, "winback", DAY)["sent"] == 19
    assert (dead.status, dead.reason) == ("bounced", "1011 cannot find user by this audience")


def test_jpush_wrong_master_secret_fails_with_its_reason(
    engine: Engine, jpush: Settings, local_server: LocalServer
) -> None:
    silent_users(engine, jpush, 3)
    local_server.cn.jpush.master_secret = "rotated"
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, jpush, chosen) == {"failed": 3}
    with session_scope(engine) as session:
        assert set(session.scalars(select(OutboxMessage.reason))) == {"1004 Authen failed"}
    assert not local_server.cn.jpush.book.delivered


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"provider": "jpush", "jpush_app_key": "k"}, "missing jpush_master_secret"),
        ({"provider": "fcm"}, "missing fcm_service_account_file"),
        ({"provider": "fcm", "fcm_service_account_file": "/no/such.json"}, "cannot read"),
        ({"provider": "getui"}, "push.provider"),
    ],
    ids=["jpush-secret", "fcm-file", "fcm-unreadable", "unknown"],
)
def test_push_settings_name_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, object], complaint: str
) -> None:
    monkeypatch.setenv("YUNYING_PUSH", json.dumps(values))
    with pytest.raises(ConfigError, match="push") as error:
        load_settings()
    assert complaint in str(error.value)


def test_a_key_file_that_is_not_a_service_account_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
    with pytest.raises(ValueError, match="is not a service account key"):
        PushSettings(provider="fcm", fcm_service_account_file=path)
