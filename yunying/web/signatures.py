"""How each provider signs its callbacks, verified as the provider documents it.

Every check raises `BadSignature` (unsigned, altered, or stale); none trusts a parsed body:
each works on the raw bytes (or form pairs) as received.

- Resend signs with Svix (https://resend.com/docs/webhooks/verify-webhooks-requests and
  https://docs.svix.com/receiving/verifying-payloads/how-manual): headers `svix-id`,
  `svix-timestamp` (seconds) and `svix-signature` ("v1,<base64>" entries, space separated);
  the signature is HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed by the base64 part of the
  `whsec_` secret.
- Twilio (https://www.twilio.com/docs/usage/security#validating-requests): header
  `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, full URL + each POST parameter's name and
  value, sorted by name, no separators)). Twilio sends no timestamp: replays are caught by the
  event id alone (see callbacks.py).
- Our own HMAC scheme (the generic webhook and SMS gateway, as `JsonWebhook` signs its sends):
  `X-Yunying-Timestamp` and `X-Yunying-Signature: sha256=<hex of HMAC-SHA256 "timestamp.body">`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence


class BadSignature(Exception):
    """The callback is unsigned, signed with another secret, altered, or stale."""


def _fresh(timestamp: str, tolerance: int, now: float | None) -> None:
    try:
        stamp = int(timestamp)
    except ValueError:
        raise BadSignature("the timestamp is not a number") from None
    if abs((now if now is not None else time.time()) - stamp) > tolerance:
        raise BadSignature("the timestamp is outside the tolerance: stale or replayed")


def svix_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_svix(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int,
    now: float | None = None,
) -> str:
    """Returns the `svix-id` (the event's id, for replay protection)."""
    msg_id = headers.get("svix-id", "")
    timestamp = headers.get("svix-timestamp", "")
    given = headers.get("svix-signature", "")
    if not (msg_id and timestamp and given):
        raise BadSignature("missing svix-id, svix-timestamp or svix-signature")
    _fresh(timestamp, tolerance, now)
    try:
        expected = svix_signature(secret, msg_id, timestamp, body)
    except (binascii.Error, ValueError):
        raise BadSignature("the configured Resend secret is not a whsec_ base64 key") from None
    for entry in given.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return msg_id
    raise BadSignature("no svix-signature matches")


def twilio_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(
    auth_token: str, url: str, params: Sequence[tuple[str, str]], given: str | None
) -> None:
    if not given:
        raise BadSignature("missing X-Twilio-Signature")
    if not hmac.compare_digest(given, twilio_signature(auth_token, url, params)):
        raise BadSignature("X-Twilio-Signature does not match")


def hmac_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_hmac(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int,
    now: float | None = None,
) -> None:
    timestamp = headers.get("x-yunying-timestamp", "")
    given = headers.get("x-yunying-signature", "")
    if not (timestamp and given):
        raise BadSignature("missing X-Yunying-Timestamp or X-Yunying-Signature")
    _fresh(timestamp, tolerance, now)
    if not hmac.compare_digest(given, hmac_signature(secret, timestamp, body)):
        raise BadSignature("X-Yunying-Signature does not match")
