"""Real providers' send APIs (Twilio SMS, Resend email) against the local server, checked the
way each provider documents its requests, under faults and after a crash."""

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select

from tests.builders import DAY, silent_users
from tests.integration.test_outbox import NOON_IN_SHANGHAI, campaign, send_all
from yunying.config import Settings, load_settings
from yunying.demo.local_server import LocalServer
from yunying.errors import ConfigError
from yunying.messaging.channels import Channel, channels_for
from yunying.messaging.outbox import LEASE, Outcome, counts, plan
from yunying.messaging.providers import OutgoingMessage
from yunying.messaging.send import send_batch
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage

SID, TOKEN, SENDER = "AC0123456789abcdef", "twilio-secret", "+15005550006"


def with_providers(settings: Settings, **changes: object) -> Settings:
    providers = settings.providers.model_copy(update=changes)
    return settings.model_copy(update={"providers": providers})


@pytest.fixture
def twilio(settings: Settings, local_server: LocalServer) -> Settings:
    local_server.twilio_account = (SID, TOKEN)
    return with_providers(
        settings,
        sms_url=local_server.url,
        sms_api="twilio",
        twilio_account_sid=SID,
        twilio_auth_token=SecretStr(TOKEN),
        sms_from=SENDER,
    )


@pytest.fixture
def resend(settings: Settings, local_server: LocalServer) -> Settings:
    local_server.bearer_token = "re_test_key"
    return with_providers(
        settings, email_url=local_server.url + "/emails", email_api_key=SecretStr("re_test_key")
    )


def test_twilio_form_and_basic_auth_under_5xx_and_429(
    engine: Engine, twilio: Settings, local_server: LocalServer
) -> None:
    users = silent_users(engine, twilio, 80)
    local_server.faults.error_rate = 0.3
    local_server.faults.rate_limit_rate = 0.1
    local_server.faults.retry_after_seconds = 0
    local_server.faults.reject_keys.add("+8613900000005")
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    later = NOON_IN_SHANGHAI
    for _ in range(10):
        send_all(engine, twilio, chosen, now=later)
        later += dt.timedelta(minutes=5)

    recorder = local_server.recorder
    assert recorder.double_sends == 0
    delivered = {body["to"] for body in recorder.deliveries.values()}
    assert delivered == {f"+8613900{i:06d}" for i in range(80) if i != 5}
    expected_auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    posts = [h for h in recorder.headers if h["Content-Type"].startswith("application/x-www")]
    assert posts and all(h["Authorization"] == expected_auth for h in posts)
    one = next(iter(recorder.deliveries.values()))
    assert one["from"] == SENDER and one["account_sid"] == SID and one["body"]
    with session_scope(engine) as session:
        final = counts(session, "winback", DAY)
        rows = {r.user_id: r for r in session.scalars(select(OutboxMessage))}
    assert final["sent"] == 79 and final["failed"] == 1
    rejected = rows[users[5]]
    assert rejected.reason == "HTTP 400: 21211 Invalid 'To' Phone Number: +861***"
    assert recorder.refusals["+8613900000005"] == 1  # a permanent 4xx is not retried
    assert all(r.provider_ref.startswith("SM") for r in rows.values() if r.status == "sent")


def test_twilio_wrong_credentials_fail_with_its_reason(
    engine: Engine, twilio: Settings, local_server: LocalServer
) -> None:
    silent_users(engine, twilio, 3)
    local_server.twilio_account = (SID, "rotated")
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, twilio, chosen) == {"failed": 3}
    with session_scope(engine) as session:
        reasons = set(session.scalars(select(OutboxMessage.reason)))
    assert reasons == {"HTTP 401: 20003 Authenticate"}
    assert not local_server.recorder.deliveries


class Killed(BaseException):
    """The worker dies: after the provider accepted the batch, before it was recorded."""


class DiesAfterSending:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        self.channel.send(messages)
        raise Killed


def test_twilio_crash_after_send_is_reconciled_not_sent_again(
    engine: Engine, twilio: Settings, local_server: LocalServer
) -> None:
    """Twilio takes no idempotency key: a message claimed again after a crash is looked up in
    Twilio's message list and only sent when it is not there."""
    silent_users(engine, twilio, 30)
    chosen = campaign(channels=["sms"], holdout_percent=0)
    channels = channels_for(twilio)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    send_batch(engine, twilio, chosen, DAY, "w1", channels, 12, now=NOON_IN_SHANGHAI)
    dying = {**channels, "sms": DiesAfterSending(channels["sms"])}
    with pytest.raises(Killed):
        send_batch(engine, twilio, chosen, DAY, "w2", dying, 10, now=NOON_IN_SHANGHAI)
    assert len(local_server.recorder.deliveries) == 22

    after_lease = NOON_IN_SHANGHAI + LEASE + dt.timedelta(seconds=1)
    send_all(engine, twilio, chosen, now=after_lease)
    assert len(local_server.recorder.deliveries) == 30
    assert local_server.recorder.double_sends == 0
    with session_scope(engine) as session:
        assert counts(session, "winback", DAY)["sent"] == 30
        reclaimed = session.scalars(select(OutboxMessage).where(OutboxMessage.attempts == 2)).all()
    assert len(reclaimed) == 10 and all(r.provider_ref.startswith("SM") for r in reclaimed)


def test_resend_json_bearer_and_idempotency_key(
    engine: Engine, resend: Settings, local_server: LocalServer
) -> None:
    silent_users(engine, resend, 20)
    local_server.faults.error_rate = 0.3
    local_server.faults.reject_keys.add("s4@example.com")
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    later = NOON_IN_SHANGHAI
    for _ in range(8):
        send_all(engine, resend, chosen, now=later)
        later += dt.timedelta(minutes=5)

    deliveries = local_server.recorder.deliveries
    assert set(deliveries) == {f"winback:{DAY}:s{i:05d}" for i in range(20) if i != 4}
    body = deliveries[f"winback:{DAY}:s00001"]
    assert body["to"] == ["s1@example.com"] and body["subject"] and body["text"]
    assert 'style="' in body["html"] and "<style" not in body["html"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["headers"]["List-Unsubscribe"].startswith("<http")
    assert body["tags"] == [{"name": "campaign", "value": "winback"}]
    assert all(h["Authorization"] == "Bearer re_test_key" for h in local_server.recorder.headers)
    with session_scope(engine) as session:
        final = counts(session, "winback", DAY)
        rejected = session.scalar(select(OutboxMessage).where(OutboxMessage.user_id == "s00004"))
    assert final["sent"] == 19 and final["failed"] == 1
    assert rejected is not None and rejected.reason == "HTTP 422: Invalid `to` field."
    assert local_server.recorder.refusals["s4@example.com"] == 1


def test_resend_returns_the_first_id_for_a_repeated_key(local_server: LocalServer) -> None:
    import httpx

    headers = {"Idempotency-Key": "k1", "Content-Type": "application/json"}
    payload = {"from": "a@b.c", "to": ["x@y.z"], "subject": "s", "text": "t"}
    first = httpx.post(local_server.url + "/emails", json=payload, headers=headers).json()
    again = httpx.post(local_server.url + "/emails", json=payload, headers=headers).json()
    changed = httpx.post(
        local_server.url + "/emails", json={**payload, "text": "other"}, headers=headers
    )
    assert first == again and len(local_server.recorder.deliveries) == 1
    assert changed.status_code == 409 and changed.json()["name"] == "invalid_idempotent_request"


def test_twilio_request_is_a_documented_form(twilio: Settings, local_server: LocalServer) -> None:
    from yunying.messaging.outbox import Claimed
    from yunying.messaging.providers import Twilio
    from yunying.messaging.render import Rendered

    api = Twilio(local_server.url, SID, TOKEN, SENDER)
    message = OutgoingMessage(
        Claimed(1, f"winback:{DAY}:u1", "u1", "sms", 1, "winback", DAY),
        "+861390000",
        Rendered("sms", text="Hi&"),
        "",
    )
    request = api.request(message)
    assert request.url == f"{local_server.url}/2010-04-01/Accounts/{SID}/Messages.json"
    assert parse_qs(request.body.decode()) == {
        "To": ["+861390000"],
        "From": [SENDER],
        "Body": ["Hi&"],
    }
    lookup = api.lookup(message)
    assert lookup is not None and parse_qs(lookup.url.split("?")[1])["DateSent>"] == [str(DAY)]
    listing = json.dumps({"messages": [{"sid": "SM1", "body": "Hi&", "from": SENDER}]}).encode()
    assert api.found(message, listing) == "SM1"


def test_provider_settings_name_the_missing_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNYING_PROVIDERS__SMS_URL", "https://api.twilio.com")
    monkeypatch.setenv("YUNYING_PROVIDERS__SMS_API", "twilio")
    monkeypatch.setenv("YUNYING_PROVIDERS__TWILIO_ACCOUNT_SID", SID)
    with pytest.raises(ConfigError, match="twilio_auth_token, sms_from"):
        load_settings()
    monkeypatch.setenv("YUNYING_PROVIDERS__SMS_API", "nexmo")
    with pytest.raises(ConfigError, match="providers.sms_api"):
        load_settings()


class SignedWebhookReceiver:
    """A company's endpoint for our webhook, verifying each request the way the README tells
    a receiver to: HMAC-SHA256 with the shared secret over "<X-Yunying-Timestamp>.<raw body>",
    compared in constant time, the timestamp within five minutes; 401 otherwise."""

    def __init__(self, secret: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.secret = secret
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                headers = dict(self.headers.items())
                ok = receiver.verify(headers, raw)
                if ok:
                    receiver.accepted.append((headers, raw))
                else:
                    receiver.refused += 1
                body = json.dumps({"id": "wh-1"} if ok else {"error": "bad signature"}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/yunying"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verify(self, headers: dict[str, str], raw: bytes) -> bool:
        stamp = headers.get("X-Yunying-Timestamp", "")
        scheme, _, signature = headers.get("X-Yunying-Signature", "").partition("=")
        if scheme != "sha256" or not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        expected = hmac.new(self.secret, stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def post(self, headers: dict[str, str], raw: bytes) -> int:
        request = urllib.request.Request(self.url, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[SignedWebhookReceiver]:
    receiver = SignedWebhookReceiver(b"shared-webhook-secret")
    yield receiver
    receiver.stop()


def test_webhook_signature_verifies_at_the_receiver_and_an_altered_body_does_not(
    engine: Engine, settings: Settings, receiver: SignedWebhookReceiver
) -> None:
    users = silent_users(engine, settings, 6)
    signed = with_providers(
        settings,
        webhook_url=receiver.url,
        webhook_secret=SecretStr(receiver.secret.decode()),
    )
    chosen = campaign(channels=["webhook"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, signed, chosen) == {"sent": 6}
    assert receiver.refused == 0
    assert sorted(json.loads(raw)["to"] for _, raw in receiver.accepted) == users

    headers, raw = receiver.accepted[0]
    forwarded = {
        name: headers[name]
        for name in ("Content-Type", "X-Yunying-Timestamp", "X-Yunying-Signature")
    }
    assert receiver.post(forwarded, raw) == 200  # the same request verifies again
    altered = raw.replace(b'"webhook"', b'"webhooK"')
    assert altered != raw and receiver.post(forwarded, altered) == 401
    older = {**forwarded, "X-Yunying-Timestamp": str(int(forwarded["X-Yunying-Timestamp"]) - 1)}
    assert receiver.post(older, raw) == 401  # the timestamp is signed too


def test_a_webhook_signed_with_another_secret_is_refused_and_fails(
    engine: Engine, settings: Settings, receiver: SignedWebhookReceiver
) -> None:
    silent_users(engine, settings, 2)
    wrong = with_providers(
        settings, webhook_url=receiver.url, webhook_secret=SecretStr("an-old-secret")
    )
    chosen = campaign(channels=["webhook"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, wrong, chosen) == {"failed": 2}
    assert receiver.refused == 2 and not receiver.accepted
    with session_scope(engine) as session:
        assert set(session.scalars(select(OutboxMessage.reason))) == {"HTTP 401: bad signature"}


def colon_users(engine: Engine, settings: Settings, count: int) -> list[str]:
    """Silent users whose ids contain ':' (WeChat openids as `wx:<openid>`)."""
    from tests.builders import load_records
    from yunying.lifecycle.states import compute_lifecycle

    users = [
        {
            "user_id": f"wx:o6_{i}",
            "signup_at": "2026-06-01T00:00:00Z",
            "email": f"wx{i}@example.com",
            "phone": f"+8613800{i:06d}",
            "timezone": "Asia/Shanghai",
        }
        for i in range(count)
    ]
    events = [
        {
            "event_id": f"wx{i}",
            "user_id": u["user_id"],
            "name": "app_open",
            "occurred_at": "2026-10-22T04:00:00",
        }
        for i, u in enumerate(users)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        compute_lifecycle(session, DAY, settings.lifecycle)
    return [str(u["user_id"]) for u in users]


def test_twilio_reconciles_user_ids_with_colons_by_the_rows_date(
    engine: Engine, twilio: Settings, local_server: LocalServer
) -> None:
    """The lookup before a resend asks Twilio for messages sent since the row's business
    date, read from the row, not split out of a key whose user id holds ':'."""
    users = colon_users(engine, twilio, 6)
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        assert plan(session, chosen, DAY)["queued"] == 6
    dying = {**channels_for(twilio), "sms": DiesAfterSending(channels_for(twilio)["sms"])}
    with pytest.raises(Killed):
        send_batch(engine, twilio, chosen, DAY, "w1", dying, 10, now=NOON_IN_SHANGHAI)
    assert len(local_server.recorder.deliveries) == 6

    send_all(engine, twilio, chosen, now=NOON_IN_SHANGHAI + LEASE + dt.timedelta(seconds=1))
    assert local_server.recorder.double_sends == 0
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxMessage)).all()
    assert {(r.user_id, r.status, r.attempts) for r in rows} == {(u, "sent", 2) for u in users}


def test_resend_tags_user_ids_with_colons_with_their_campaign(
    engine: Engine, resend: Settings, local_server: LocalServer
) -> None:
    colon_users(engine, resend, 3)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, resend, chosen) == {"sent": 3}
    tags = [body["tags"] for body in local_server.recorder.deliveries.values()]
    assert tags == [[{"name": "campaign", "value": "winback"}]] * 3
