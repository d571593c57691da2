"""`yunying web` served by uvicorn on loopback, over a real store, reached over HTTP the way a
mail client, a recipient's browser and each provider reach it."""

from __future__ import annotations

import base64
import datetime as dt
import email
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.policy import default
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, update

from tests.builders import DAY, silent_users
from tests.integration.test_outbox import campaign, send_all
from tests.rig import WebServer, free_port
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.messaging.outbox import plan
from yunying.store.engine import session_scope
from yunying.store.models import (
    CallbackEvent,
    Click,
    OutboxMessage,
    Suppression,
    TopicSuppression,
)
from yunying.web.app import create_app
from yunying.web.signatures import twilio_signature

RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-signing-key-for-the-tests").decode()
HOOK_SECRET = "hook-secret"
TWILIO_TOKEN = "twilio-secret"


@dataclass
class Site:
    settings: Settings
    url: str
    client: httpx.Client


def site_settings(settings: Settings, port: int, **web: object) -> Settings:
    return settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{port}",
            "providers": settings.providers.model_copy(
                update={
                    "webhook_secret": SecretStr(HOOK_SECRET),
                    "twilio_auth_token": SecretStr(TWILIO_TOKEN),
                }
            ),
            "web": settings.web.model_copy(
                update={"resend_webhook_secret": SecretStr(RESEND_SECRET), **web}
            ),
        }
    )


@pytest.fixture
def site(settings: Settings) -> Iterator[Site]:
    port = free_port()
    configured = site_settings(settings, port)
    with (
        WebServer(create_app(configured), port) as server,
        httpx.Client(base_url=server.url, follow_redirects=False) as client,
    ):
        yield Site(configured, server.url, client)


def sent_emails(settings: Settings) -> list[email.message.EmailMessage]:
    folder = settings.outbox_path / "email"
    return [
        email.message_from_bytes(path.read_bytes(), policy=default)  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"))
    ]


def send_winback(engine: Engine, settings: Settings, users: int, **changes: object) -> None:
    chosen = campaign(channels=["email"], holdout_percent=0, topic="winback", **changes)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    send_all(engine, settings, chosen)


def unsubscribe_link(message: email.message.EmailMessage) -> str:
    return str(message["List-Unsubscribe"]).strip("<>")


def readable(url: str) -> bytes:
    """What anyone who sees the URL can read: its token, base64-decoded."""
    token = re.split(r"token=|/c/", url)[-1]
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def suppressions(engine: Engine) -> set[tuple[str, str, str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Suppression.user_id, Suppression.channel, Suppression.reason)
        ).all()
    return {(u, c, r) for u, c, r in rows}


def test_one_click_post_from_a_sent_email_unsubscribes_with_200_and_no_redirect(
    engine: Engine, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    users = silent_users(engine, site.settings, 2)
    send_winback(engine, site.settings, 2)
    message = sent_emails(site.settings)[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = unsubscribe_link(message)
    assert link.startswith(site.url + "/unsubscribe?token=")
    recipient = users[0] if message["To"] == "s0@example.com" else users[1]
    assert recipient.encode() not in readable(link)
    assert str(message["To"]).encode() not in readable(link)

    with caplog.at_level(logging.INFO, logger="yunying.web"):
        # Exactly what RFC 8058 says a mail client sends.
        answer = site.client.post(
            link,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    assert answer.status_code == 200
    assert suppressions(engine) == {(recipient, "email", "unsubscribed")}
    logged = caplog.text
    assert "unsubscribed on email" in logged
    assert str(message["To"]) not in logged and link.split("token=")[1] not in logged
    again = site.client.post(link, content=b"List-Unsubscribe=One-Click")
    assert again.status_code == 200  # idempotent
    assert len(suppressions(engine)) == 1


def test_one_click_post_as_multipart_form_data_unsubscribes(engine: Engine, site: Site) -> None:
    """RFC 8058 section 3.1: the POST content SHOULD be multipart/form-data (as `curl -F`)."""
    silent_users(engine, site.settings, 1)
    send_winback(engine, site.settings, 1)
    [message] = sent_emails(site.settings)
    answer = site.client.post(
        unsubscribe_link(message), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert answer.request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert (answer.status_code, answer.text) == (200, "unsubscribed\n")
    assert suppressions(engine) == {("s00000", "email", "unsubscribed")}


def test_get_shows_a_page_in_the_users_locale_and_changes_nothing_until_confirmed(
    engine: Engine, site: Site
) -> None:
    silent_users(engine, site.settings, 2)  # s00000 reads zh-CN, s00001 en
    send_winback(engine, site.settings, 2)
    by_user = {str(m["To"]): unsubscribe_link(m) for m in sent_emails(site.settings)}

    chinese = site.client.get(by_user["s0@example.com"])
    english = site.client.get(by_user["s1@example.com"])

    assert chinese.status_code == english.status_code == 200
    assert "确认退订" in chinese.text and 'lang="zh-CN"' in chinese.text
    assert "Stop receiving our marketing messages" in english.text
    assert suppressions(engine) == set()  # a prefetching scanner changed nothing
    assert english.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in english.headers["content-security-policy"]
    assert english.headers["x-frame-options"] == "DENY"
    assert english.headers["cache-control"] == "no-store"
    assert "samesite=strict" in english.headers["set-cookie"].lower()

    csrf = re.search(r'name="csrf" value="([^"]+)"', english.text)
    assert csrf is not None
    confirmed = site.client.post(
        by_user["s1@example.com"], data={"csrf": csrf.group(1), "confirm": "yes"}
    )

    assert confirmed.status_code == 200
    assert "You are unsubscribed" in confirmed.text
    assert suppressions(engine) == {("s00001", "email", "unsubscribed")}


def test_a_form_post_without_the_pages_csrf_token_changes_nothing(
    engine: Engine, site: Site
) -> None:
    silent_users(engine, site.settings, 1)
    send_winback(engine, site.settings, 1)
    link = unsubscribe_link(sent_emails(site.settings)[0])
    site.client.get(link)  # the cookie is set, but another site cannot read its value

    forged = site.client.post(link, data={"csrf": "guessed", "confirm": "yes"})

    assert forged.status_code == 403
    assert suppressions(engine) == set()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: token[:20] + ("B" if token[20] != "B" else "C") + token[21:],
        lambda token: "czAwMDAwOmVtYWls.AAAAAAAAAAAAAAAAAAAAAA",  # the older format, unsigned
    ],
    ids=["tag", "content", "older-format"],
)
def test_an_altered_token_is_refused(engine: Engine, site: Site, tamper: object) -> None:
    silent_users(engine, site.settings, 1)
    send_winback(engine, site.settings, 1)
    link = unsubscribe_link(sent_emails(site.settings)[0])
    base, token = link.split("token=")
    forged = base + "token=" + tamper(token)  # type: ignore[operator]

    assert site.client.post(forged, content=b"List-Unsubscribe=One-Click").status_code == 400
    assert site.client.get(forged).status_code == 400
    assert (
        site.client.get(base.replace("unsubscribe", "preferences") + "token=x").status_code == 400
    )
    assert suppressions(engine) == set()


def test_the_preference_page_turns_a_topic_off_and_the_campaign_skips_that_user(
    engine: Engine, site: Site
) -> None:
    silent_users(engine, site.settings, 2)
    send_winback(engine, site.settings, 2)
    message = next(m for m in sent_emails(site.settings) if m["To"] == "s1@example.com")
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = re.search(r'href="([^"]+/preferences\?token=[^"]+)"', html)
    assert link is not None
    page = site.client.get(link.group(1).replace("&amp;", "&"))
    assert page.status_code == 200
    assert 'name="topic" value="winback" checked' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None

    saved = site.client.post(
        link.group(1), data={"csrf": csrf.group(1), "channel": ["email", "sms", "push"]}
    )

    assert saved.status_code == 200
    assert 'name="topic" value="winback">' in saved.text  # now unchecked
    with session_scope(engine) as session:
        topics = session.execute(select(TopicSuppression.user_id, TopicSuppression.topic)).all()
    assert set(topics) >= {("s00001", "winback")}
    assert suppressions(engine) == set()  # channels stay on
    next_day = campaign(
        channels=["email"],
        holdout_percent=0,
        topic="winback",
        name="again",
        frequency_cap_days=0,
        cross_campaign_cap=False,  # the same night as the first campaign
    )
    with session_scope(engine) as session:
        plan(session, next_day, DAY)
        statuses = dict(
            session.execute(
                select(
                    OutboxMessage.user_id, OutboxMessage.status + " " + OutboxMessage.reason
                ).where(OutboxMessage.campaign == "again")
            ).all()
        )
    assert statuses == {
        "s00000": None,
        "s00001": "suppressed turned this campaign's topic off",
    }


def test_tracked_links_redirect_and_record_one_click_per_message_and_link(
    engine: Engine, site: Site
) -> None:
    silent_users(engine, site.settings, 1)
    send_winback(engine, site.settings, 1, track_clicks=True)
    message = sent_emails(site.settings)[0]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    tracked = re.findall(r'href="(http://127\.0\.0\.1:\d+/c/[^"]+)"', html)
    assert len(tracked) == 1  # the app link; unsubscribe and preferences stay direct
    assert b"s00000" not in readable(tracked[0]) and b"s0@example" not in readable(tracked[0])

    first = site.client.get(tracked[0])
    second = site.client.get(tracked[0])

    assert first.status_code == second.status_code == 302
    assert first.headers["location"] == site.settings.public_url
    with session_scope(engine) as session:
        assert len(session.scalars(select(Click)).all()) == 1
    assert site.client.get(tracked[0][:-3] + "xyz").status_code == 400


# --- provider callbacks, signed exactly as each provider documents -------------------------


def svix_headers(body: bytes, msg_id: str, stamp: int | None = None) -> dict[str, str]:
    """As https://docs.svix.com/receiving/verifying-payloads/how-manual constructs it."""
    timestamp = str(stamp if stamp is not None else int(time.time()))
    key = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "svix-id": msg_id,
        "svix-timestamp": timestamp,
        "svix-signature": f"v1,{signature}",
        "content-type": "application/json",
    }


def resend_event(kind: str, email_id: str) -> bytes:
    data = {"email_id": email_id, "to": ["someone@example.com"], "subject": "x"}
    return json.dumps({"type": kind, "created_at": "2026-11-02T04:00:00Z", "data": data}).encode()


def sent_through_resend(engine: Engine, site: Site, local_server: LocalServer) -> Settings:
    local_server.bearer_token = "re_test_key"
    providers = site.settings.providers.model_copy(
        update={
            "email_url": local_server.url + "/emails",
            "email_api_key": SecretStr("re_test_key"),
        }
    )
    configured = site.settings.model_copy(update={"providers": providers})
    silent_users(engine, configured, 2)
    send_winback(engine, configured, 2)
    return configured


def provider_refs(engine: Engine) -> dict[str, tuple[str, dt.datetime | None, str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                OutboxMessage.user_id,
                OutboxMessage.provider_ref,
                OutboxMessage.delivered_at,
                OutboxMessage.status,
            )
        ).all()
    return {user: (ref, delivered, status) for user, ref, delivered, status in rows}


def test_resend_callbacks_mark_delivered_and_suppress_bounces_once(
    engine: Engine, site: Site, local_server: LocalServer
) -> None:
    sent_through_resend(engine, site, local_server)
    refs = provider_refs(engine)
    delivered = resend_event("email.delivered", refs["s00000"][0])
    bounced = resend_event("email.bounced", refs["s00001"][0])

    ok = site.client.post(
        "/callbacks/resend", content=delivered, headers=svix_headers(delivered, "msg_1")
    )
    hard = site.client.post(
        "/callbacks/resend", content=bounced, headers=svix_headers(bounced, "msg_2")
    )
    replay = site.client.post(
        "/callbacks/resend", content=bounced, headers=svix_headers(bounced, "msg_2")
    )

    assert (ok.status_code, hard.status_code) == (200, 200)
    assert replay.json() == {"status": "duplicate"}
    complained = resend_event("email.complained", refs["s00000"][0])
    headers = svix_headers(complained, "msg_3")
    assert site.client.post("/callbacks/resend", content=complained, headers=headers).is_success
    after = provider_refs(engine)
    assert ok.json() == {"status": "delivered 1"}
    assert after["s00000"][1] is not None and after["s00001"][1] is None
    assert after["s00001"][2] == "bounced"
    assert suppressions(engine) == {
        ("s00000", "email", "complaint"),
        ("s00001", "email", "hard bounce"),
    }


@pytest.mark.parametrize(
    "alter",
    [
        lambda body, headers: (body.replace(b"delivered", b"complained"), headers),
        lambda body, headers: (body, {**headers, "svix-id": "msg_other"}),
        lambda body, headers: (body, svix_headers(body, "msg_1", int(time.time()) - 3600)),
        lambda body, headers: (body, {"content-type": "application/json"}),
    ],
    ids=["body", "id", "stale", "unsigned"],
)
def test_resend_callbacks_altered_stale_or_unsigned_are_refused(
    engine: Engine, site: Site, local_server: LocalServer, alter: object
) -> None:
    sent_through_resend(engine, site, local_server)
    body = resend_event("email.delivered", provider_refs(engine)["s00000"][0])
    body, headers = alter(body, svix_headers(body, "msg_1"))  # type: ignore[operator]

    answer = site.client.post("/callbacks/resend", content=body, headers=headers)

    assert answer.status_code == 401
    assert all(delivered is None for _, delivered, _ in provider_refs(engine).values())
    assert suppressions(engine) == set()
    with session_scope(engine) as session:
        assert session.scalars(select(CallbackEvent)).all() == []


def test_twilio_signature_matches_twilios_documented_example() -> None:
    """The example of https://www.twilio.com/docs/usage/security#validating-requests."""
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def twilio_post(
    site: Site, path: str, params: dict[str, str], token: str = TWILIO_TOKEN
) -> httpx.Response:
    signature = twilio_signature(token, site.settings.public_url + path, list(params.items()))
    return site.client.post(
        path,
        content=urlencode(params).encode(),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def test_twilio_status_callbacks_and_stop_replies(engine: Engine, site: Site) -> None:
    silent_users(engine, site.settings, 3)
    send_winback(engine, site.settings, 3)
    with session_scope(engine) as session:  # as if Twilio had answered the sends
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.user_id == "s00000")
            .values(provider_ref="SM0000")
        )
    status = {"MessageSid": "SM0000", "MessageStatus": "delivered", "AccountSid": "AC1"}

    assert twilio_post(site, "/callbacks/twilio/status", status).status_code == 200
    assert provider_refs(engine)["s00000"][1] is not None
    forged = twilio_post(site, "/callbacks/twilio/status", status, token="other")
    assert forged.status_code == 401

    with session_scope(engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.user_id == "s00002")
            .values(provider_ref="SM0002")
        )
    unknown_number = {"MessageSid": "SM0002", "MessageStatus": "undelivered", "ErrorCode": "30005"}
    assert twilio_post(site, "/callbacks/twilio/status", unknown_number).status_code == 200
    stop = {"MessageSid": "SMin1", "From": "+8613900000001", "Body": " 退订 "}
    other = {"MessageSid": "SMin2", "From": "+8613900000002", "Body": "hello"}
    answer = twilio_post(site, "/callbacks/twilio/inbound", stop)
    assert answer.status_code == 200 and answer.text == "<Response/>"
    assert twilio_post(site, "/callbacks/twilio/inbound", other).status_code == 200
    assert suppressions(engine) == {
        ("s00001", "sms", "replied STOP"),
        ("s00002", "email", "undeliverable (Twilio 30005)"),
    }


def hmac_headers(
    body: bytes, stamp: int | None = None, secret: str = HOOK_SECRET
) -> dict[str, str]:
    """Our scheme, as JsonWebhook signs its sends: sha256=hex(HMAC(secret, "ts.body"))."""
    timestamp = str(stamp if stamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return {
        "X-Yunying-Timestamp": timestamp,
        "X-Yunying-Signature": f"sha256={digest.hexdigest()}",
        "Content-Type": "application/json",
    }


def test_generic_webhook_receipts_and_sms_gateway_replies(engine: Engine, site: Site) -> None:
    silent_users(engine, site.settings, 3)
    send_winback(engine, site.settings, 3)
    with session_scope(engine) as session:
        keys = dict(session.execute(select(OutboxMessage.user_id, OutboxMessage.key)).all())
    receipt = json.dumps({"id": "r1", "key": keys["s00000"], "status": "delivered"}).encode()
    complaint = json.dumps({"id": "r2", "key": keys["s00002"], "status": "complained"}).encode()
    reply = json.dumps({"id": "in1", "from": "+8613900000001", "text": "TD"}).encode()

    assert (
        site.client.post(
            "/callbacks/webhook", content=receipt, headers=hmac_headers(receipt)
        ).status_code
        == 200
    )
    assert (
        site.client.post(
            "/callbacks/webhook", content=complaint, headers=hmac_headers(complaint)
        ).status_code
        == 200
    )
    assert (
        site.client.post("/callbacks/sms", content=reply, headers=hmac_headers(reply)).status_code
        == 200
    )
    stale = hmac_headers(reply, int(time.time()) - 3600)
    assert site.client.post("/callbacks/sms", content=reply, headers=stale).status_code == 401
    wrong = hmac_headers(receipt, secret="not-ours")
    assert site.client.post("/callbacks/webhook", content=receipt, headers=wrong).status_code == 401

    assert provider_refs(engine)["s00000"][1] is not None
    assert suppressions(engine) == {
        ("s00002", "email", "complaint"),
        ("s00001", "sms", "replied STOP"),
    }


@pytest.mark.parametrize(
    "sender", ["8613900000002", "13900000002", "+86 139 0000 0002", "+86-139-0000-0002"]
)
def test_a_stop_reply_from_the_number_written_another_way_suppresses_its_user(
    engine: Engine, site: Site, sender: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Stored as +8613900000002; gateways write the sender with or without the country
    code, '+' or spaces. A STOP that finds no user is a warning, not a silent 200."""
    silent_users(engine, site.settings, 3)
    reply = json.dumps({"id": "in1", "from": sender, "text": "退订"}).encode()
    answer = site.client.post("/callbacks/sms", content=reply, headers=hmac_headers(reply))
    assert answer.json() == {"status": "suppressed 1"}
    assert suppressions(engine) == {("s00002", "sms", "replied STOP")}

    unknown = json.dumps({"id": "in2", "from": "+8613700000009", "text": "T"}).encode()
    with caplog.at_level(logging.INFO, logger="yunying.web"):
        answer = site.client.post("/callbacks/sms", content=unknown, headers=hmac_headers(unknown))
    assert answer.json() == {"status": "suppressed 0"}
    assert "a STOP from a number no user has (ending 0009)" in caplog.text
    assert "13700000009" not in caplog.text


def test_health_rate_limit_and_headers(settings: Settings) -> None:
    port = free_port()
    configured = site_settings(settings, port, rate_limit_per_minute=3)
    with (
        WebServer(create_app(configured), port) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.get("/healthz").text == "ok\n"
        answers = [client.get("/unsubscribe?token=x").status_code for _ in range(5)]
        assert answers == [400, 400, 400, 429, 429]
        assert client.get("/healthz").status_code == 200  # health is never limited
        headers = client.get("/unsubscribe?token=x").headers
    assert headers["retry-after"]
    assert headers["x-content-type-options"] == "nosniff"


def test_the_service_answers_503_when_the_store_is_unreachable(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    missing = tmp_path / "no-such-dir" / "store.db"
    configured = site_settings(settings, port).model_copy(
        update={"database_url": f"sqlite:///{missing}"}
    )
    with (
        WebServer(create_app(configured), port) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.get("/healthz").status_code == 503
        answer = client.post("/unsubscribe?token=x", content=b"List-Unsubscribe=One-Click")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"


def test_the_demo_summary_prints_the_web_url_and_a_sample_link_that_works(
    engine: Engine, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.demo import print_summary

    silent_users(engine, site.settings, 1)
    send_winback(engine, site.settings, 1)
    summary = {
        "business_date": DAY,
        "pulled": {},
        "rejected": 0,
        "lifecycle": {},
        "messages": {},
        "report": "-",
        "report_email": "-",
    }

    print_summary(summary, site.settings)

    printed = capsys.readouterr().out
    assert f"make web  (serves {site.url})" in printed
    link = re.search(r"a sample unsubscribe link .*: (\S+)", printed)
    assert link is not None
    assert site.client.get(link.group(1)).status_code == 200
    assert site.client.post(link.group(1), content=b"List-Unsubscribe=One-Click").status_code == 200
    assert suppressions(engine) == {("s00000", "email", "unsubscribed")}


def test_a_validly_signed_token_for_an_unknown_user_changes_nothing(
    engine: Engine, site: Site
) -> None:
    from yunying.messaging.unsubscribe import make_token, unsubscribe_key

    silent_users(engine, site.settings, 1)
    token = make_token(unsubscribe_key(site.settings), "no-such-user", "email")

    one_click = site.client.post(
        f"/unsubscribe?token={token}", content=b"List-Unsubscribe=One-Click"
    )

    assert one_click.status_code == 400
    assert site.client.get(f"/preferences?token={token}").status_code == 400
    assert suppressions(engine) == set()


def test_an_https_public_url_adds_strict_transport_security(settings: Settings) -> None:
    port = free_port()
    configured = settings.model_copy(update={"public_url": "https://u.example.com"})
    with WebServer(create_app(configured), port) as server:
        answer = httpx.get(server.url + "/healthz")
    assert answer.headers["strict-transport-security"] == "max-age=31536000"


@pytest.mark.parametrize(
    ("reply", "stops"),
    [
        *[("T", True), ("td", True), ("退订", True), ("STOP", True), ("Stop.", True)],
        *[("hello", False), ("TDX", False), ("不要退订吗", False)],
    ],
    ids=lambda value: str(value),
)
def test_stop_replies(reply: str, stops: bool) -> None:
    from yunying.web.receipts import is_stop

    assert is_stop(reply) is stops


def test_the_preference_page_cannot_lift_a_bounce(engine: Engine, site: Site) -> None:
    from yunying.messaging.unsubscribe import suppress

    silent_users(engine, site.settings, 1)
    send_winback(engine, site.settings, 1)
    with session_scope(engine) as session:
        suppress(session, "s00000", "email", "hard bounce")
    link = unsubscribe_link(sent_emails(site.settings)[0]).replace("/unsubscribe", "/preferences")
    page = site.client.get(link)
    assert re.search(r'value="email"[^>]* disabled', page.text)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None

    site.client.post(link, data={"csrf": csrf.group(1), "channel": ["email", "sms", "push"]})

    assert suppressions(engine) == {("s00000", "email", "hard bounce")}
