"""Provider callbacks: delivery receipts, bounces, complaints and STOP/退订 replies.

Each endpoint verifies the provider's signature first (signatures.py) and refuses what is
unsigned, altered or stale with 401. A verified event is recorded by its id in the same
transaction as its effect, so a replay or a provider's retry changes nothing and answers
200 ("duplicate"), which stops the provider retrying. Every effect only suppresses or marks
delivered: no callback can send a message or pay a reward.

    POST /callbacks/resend            Resend (Svix-signed JSON): email.delivered / .bounced /
                                      .complained (https://resend.com/docs/webhooks/event-types)
    POST /callbacks/twilio/status     Twilio status callback (form, X-Twilio-Signature)
    POST /callbacks/twilio/inbound    Twilio inbound SMS (form): STOP / T / TD / 退订
    POST /callbacks/webhook           the generic webhook's receipts (our HMAC):
                                      {"id", "key", "status": delivered|bounced|complained}
    POST /callbacks/sms               the generic SMS gateway's inbound replies (our HMAC):
                                      {"id", "from", "text"}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from yunying.web.context import Web, log
from yunying.web.receipts import (
    first_time,
    is_stop,
    mark_delivered,
    suppress_message_user,
    suppress_phone,
)
from yunying.web.signatures import BadSignature, verify_hmac, verify_svix, verify_twilio

MAX_BODY_BYTES = 256 * 1024
# Twilio error codes that mean the number will never take our messages: the recipient
# replied STOP (21610), the number does not exist (30005) or is a landline (30006).
TWILIO_PERMANENT = {"21610", "30005", "30006"}


def _refused(reason: str, status: int = 401) -> Response:
    return JSONResponse({"error": reason}, status_code=status)


async def _body(request: Request) -> bytes | None:
    body = await request.body()
    return None if len(body) > MAX_BODY_BYTES else body


async def _once(web: Web, source: str, event_id: str, effect: Callable[[Session], str]) -> Response:
    def run(session: Session) -> str:
        if not first_time(session, source, event_id):
            return "duplicate"
        return effect(session)

    outcome = await web.in_store(run)
    log.info("callback %s: %s", source, outcome)
    return JSONResponse({"status": outcome})


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


async def resend(web: Web, request: Request) -> Response:
    secret = web.settings.web.resend_webhook_secret
    if secret is None:
        return _refused("set web.resend_webhook_secret to receive Resend callbacks", 404)
    body = await _body(request)
    if body is None:
        return _refused("body too large", 413)
    try:
        event_id = verify_svix(
            secret.get_secret_value(),
            request.headers,
            body,
            web.settings.web.callback_tolerance_seconds,
        )
    except BadSignature as exc:
        return _refused(str(exc))
    event = _json(body)
    data = event.get("data") if event else None
    if not isinstance(data, dict) or not isinstance(data.get("email_id"), str):
        return _refused("not a Resend email event", 400)
    kind, email_id = str(event.get("type")) if event else "", data["email_id"]

    def effect(session: Session) -> str:
        if kind == "email.delivered":
            return f"delivered {mark_delivered(session, 'provider_ref', email_id)}"
        if kind in ("email.bounced", "email.complained"):
            reason = "hard bounce" if kind == "email.bounced" else "complaint"
            added = suppress_message_user(session, "provider_ref", email_id, reason)
            return f"suppressed {added}"
        return "ignored"

    return await _once(web, "resend", event_id, effect)


async def _twilio_form(web: Web, request: Request) -> list[tuple[str, str]] | Response:
    token = web.settings.providers.twilio_auth_token
    if token is None:
        return _refused("set providers.twilio_auth_token to receive Twilio callbacks", 404)
    body = await _body(request)
    if body is None:
        return _refused("body too large", 413)
    params = parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
    # The URL Twilio signed is the public one it was given, not what the proxy forwards.
    url = web.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    try:
        verify_twilio(
            token.get_secret_value(), url, params, request.headers.get("x-twilio-signature")
        )
    except BadSignature as exc:
        return _refused(str(exc))
    return params


async def twilio_status(web: Web, request: Request) -> Response:
    params = await _twilio_form(web, request)
    if isinstance(params, Response):
        return params
    form = dict(params)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not sid or not status:
        return _refused("MessageSid and MessageStatus are required", 400)

    def effect(session: Session) -> str:
        if status == "delivered":
            return f"delivered {mark_delivered(session, 'provider_ref', sid)}"
        if status in ("undelivered", "failed") and form.get("ErrorCode") in TWILIO_PERMANENT:
            reason = f"undeliverable (Twilio {form['ErrorCode']})"
            return f"suppressed {suppress_message_user(session, 'provider_ref', sid, reason)}"
        return "ignored"

    # Twilio signs no timestamp: a status callback is replayable only as itself, and its
    # (sid, status) pair is processed once.
    return await _once(web, "twilio-status", f"{sid}:{status}", effect)


async def twilio_inbound(web: Web, request: Request) -> Response:
    params = await _twilio_form(web, request)
    if isinstance(params, Response):
        return params
    form = dict(params)
    sid, sender, text = form.get("MessageSid", ""), form.get("From", ""), form.get("Body", "")
    if not sid or not sender:
        return _refused("MessageSid and From are required", 400)

    def effect(session: Session) -> str:
        return _stop(session, sender, text)

    await _once(web, "twilio-inbound", sid, effect)
    return Response("<Response/>", media_type="text/xml")  # TwiML: no reply from us


async def _signed_json(web: Web, request: Request) -> dict[str, Any] | Response:
    secret = web.settings.providers.webhook_secret
    if secret is None:
        return _refused("set providers.webhook_secret to receive signed callbacks", 404)
    body = await _body(request)
    if body is None:
        return _refused("body too large", 413)
    try:
        verify_hmac(
            secret.get_secret_value().encode(),
            request.headers,
            body,
            web.settings.web.callback_tolerance_seconds,
        )
    except BadSignature as exc:
        return _refused(str(exc))
    data = _json(body)
    if data is None or not isinstance(data.get("id"), str) or not data["id"]:
        return _refused("a JSON object with a string id is required", 400)
    return data


async def webhook_receipt(web: Web, request: Request) -> Response:
    data = await _signed_json(web, request)
    if isinstance(data, Response):
        return data
    key, status = data.get("key"), data.get("status")
    if not isinstance(key, str) or status not in ("delivered", "bounced", "complained"):
        return _refused("key and status (delivered, bounced, complained) are required", 400)

    def effect(session: Session) -> str:
        if status == "delivered":
            return f"delivered {mark_delivered(session, 'key', key)}"
        reason = "hard bounce" if status == "bounced" else "complaint"
        return f"suppressed {suppress_message_user(session, 'key', key, reason)}"

    return await _once(web, "webhook", data["id"], effect)


async def sms_reply(web: Web, request: Request) -> Response:
    data = await _signed_json(web, request)
    if isinstance(data, Response):
        return data
    sender, text = data.get("from"), data.get("text")
    if not isinstance(sender, str) or not isinstance(text, str):
        return _refused("from and text are required", 400)

    def effect(session: Session) -> str:
        return _stop(session, sender, text)

    return await _once(web, "sms", data["id"], effect)


def _stop(session: Session, sender: str, text: str) -> str:
    """A reply's effect: a STOP suppresses SMS to the sender's number; one that finds no
    user is said (the gateway is answered 200 all the same: a retry would find none)."""
    if not is_stop(text):
        return "ignored"
    suppressed = suppress_phone(session, sender, "replied STOP")
    if not suppressed:
        log.warning("a STOP from a number no user has (ending %s)", sender[-4:])
    return f"suppressed {suppressed}"
