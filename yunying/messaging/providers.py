"""The request formats of the HTTP message providers, as each documents its send API.

A provider turns one message into one HTTP request, reads the provider's id and error text
out of a response, and says how a message whose outcome a crash left unknown is settled:

- `JsonWebhook`: our generic JSON body, `Idempotency-Key`, optional HMAC-SHA256 signature
  (`X-Yunying-Signature: sha256=<hex of "timestamp.body">`, as Stripe and GitHub sign).
- `Resend` (email, https://resend.com/docs/api-reference/emails/send-email): JSON body,
  `Authorization: Bearer`, and an `Idempotency-Key` the provider deduplicates on.
- `Twilio` (SMS, https://www.twilio.com/docs/messaging/api/message-resource): a form body
  to `/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic auth. Twilio takes no
  idempotency key, so a reclaimed message is first looked up in Twilio's message list (same
  recipient, same body, sent on or after the business date) and only sent when absent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from yunying.messaging.outbox import Claimed
from yunying.messaging.render import Rendered


@dataclass(frozen=True)
class OutgoingMessage:
    claimed: Claimed
    address: str
    rendered: Rendered
    unsubscribe_url: str
    # What the message was rendered from: template providers (cn_sms.py) fill their named
    # parameters from it.
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


class ProviderApi(Protocol):
    def request(self, message: OutgoingMessage) -> HttpRequest: ...

    def reference(self, body: bytes) -> str | None:
        """The provider's id of an accepted message."""

    def error(self, body: bytes) -> str:
        """The provider's reason for a rejected message."""

    def lookup(self, message: OutgoingMessage) -> HttpRequest | None:
        """A request that finds an earlier send of this message; None when the provider
        deduplicates on the idempotency key by itself."""

    def found(self, message: OutgoingMessage, body: bytes) -> str | None:
        """The provider's id of the earlier send in a lookup response, if there was one."""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _field(body: bytes, *names: str) -> str | None:
    data = _json(body)
    for name in names:
        if isinstance(data, dict) and data.get(name) is not None:
            return str(data[name])
    return None


def message_payload(message: OutgoingMessage) -> dict[str, str]:
    return {
        "key": message.claimed.key,
        "channel": message.claimed.channel,
        "to": message.address,
        "title": message.rendered.subject,
        "body": message.rendered.text,
    }


class _KeyDeduplicated:
    """Providers that honour the idempotency key need no lookup after a crash."""

    def lookup(self, message: OutgoingMessage) -> HttpRequest | None:
        return None

    def found(self, message: OutgoingMessage, body: bytes) -> str | None:
        return None


@dataclass(frozen=True)
class JsonWebhook(_KeyDeduplicated):
    url: str
    secret: bytes | None = None

    def request(self, message: OutgoingMessage) -> HttpRequest:
        body = json.dumps(message_payload(message), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.claimed.key}
        if self.secret:
            stamp = str(int(time.time()))
            digest = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256)
            headers["X-Yunying-Timestamp"] = stamp
            headers["X-Yunying-Signature"] = f"sha256={digest.hexdigest()}"
        return HttpRequest("POST", self.url, headers, body)

    def reference(self, body: bytes) -> str | None:
        return _field(body, "id")

    def error(self, body: bytes) -> str:
        return _field(body, "error", "message") or body[:200].decode(errors="replace")


@dataclass(frozen=True)
class Resend(_KeyDeduplicated):
    url: str  # https://api.resend.com/emails
    api_key: str
    mail_from: str

    def request(self, message: OutgoingMessage) -> HttpRequest:
        payload = {
            "from": self.mail_from,
            "to": [message.address],
            "subject": message.rendered.subject,
            "html": message.rendered.html,
            "text": message.rendered.text,
            "headers": {
                "List-Unsubscribe": f"<{message.unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "tags": [{"name": "campaign", "value": _tag(message.claimed.campaign)}],
        }
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": message.claimed.key,
        }
        return HttpRequest("POST", self.url, headers, json.dumps(payload).encode())

    def reference(self, body: bytes) -> str | None:
        return _field(body, "id")

    def error(self, body: bytes) -> str:
        return _field(body, "message", "name") or body[:200].decode(errors="replace")


def _tag(value: str) -> str:
    """Resend tags allow ASCII letters, digits, underscores and dashes only."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in value)


@dataclass(frozen=True)
class Twilio:
    base_url: str  # https://api.twilio.com
    account_sid: str
    auth_token: str
    sender: str  # a Twilio number or messaging service's number, the `From`

    def _url(self) -> str:
        return f"{self.base_url.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def _auth(self) -> dict[str, str]:
        pair = f"{self.account_sid}:{self.auth_token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def request(self, message: OutgoingMessage) -> HttpRequest:
        form = urlencode(
            {"To": message.address, "From": self.sender, "Body": message.rendered.text}
        )
        headers = {**self._auth(), "Content-Type": "application/x-www-form-urlencoded"}
        return HttpRequest("POST", self._url(), headers, form.encode())

    def reference(self, body: bytes) -> str | None:
        return _field(body, "sid")

    def error(self, body: bytes) -> str:
        code, text = _field(body, "code"), _field(body, "message")
        return f"{code} {text}" if code and text else body[:200].decode(errors="replace")

    def lookup(self, message: OutgoingMessage) -> HttpRequest | None:
        filters: dict[str, object] = {"To": message.address, "PageSize": 50}
        if message.claimed.business_date is not None:
            filters["DateSent>"] = message.claimed.business_date.isoformat()
        query = urlencode(filters)
        return HttpRequest("GET", f"{self._url()}?{query}", self._auth())

    def found(self, message: OutgoingMessage, body: bytes) -> str | None:
        data = _json(body)
        for sent in data.get("messages", []) if isinstance(data, dict) else []:
            if sent.get("body") == message.rendered.text and sent.get("from") == self.sender:
                return str(sent.get("sid"))
        return None
