"""Channels deliver rendered messages: SMTP or .eml files for email; an HTTP provider or JSON
lines in the outbox folder for SMS, push and webhooks (the embedded default).

Every channel returns one `Outcome` per message and never raises for a single message:
`retry` for transient failures (the row goes back to the queue), `failed` for permanent ones,
`bounced` for a hard SMTP bounce. Messages claimed a second time (a crash left them in
`sending`) are reconciled first: a file channel checks what it already wrote; an HTTP
provider deduplicates on the Idempotency-Key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Protocol

import httpx

from yunying.config import Settings, SmtpSettings
from yunying.errors import PermanentError, TransientError
from yunying.http_client import request, with_retries
from yunying.messaging.outbox import Claimed, Outcome
from yunying.messaging.render import Rendered
from yunying.messaging.smtp_connection import open_smtp


@dataclass(frozen=True)
class OutgoingMessage:
    claimed: Claimed
    address: str
    rendered: Rendered
    unsubscribe_url: str


class Channel(Protocol):
    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]: ...


# Long headers (the unsubscribe URL) must stay plain ASCII: fold at 998, never encode them.
EMAIL_POLICY = SMTP.clone(max_line_length=998)


def build_email(mail_from: str, message: OutgoingMessage) -> EmailMessage:
    email = EmailMessage(policy=EMAIL_POLICY)
    email["From"] = mail_from
    email["To"] = message.address
    email["Subject"] = message.rendered.subject
    email["Message-ID"] = (
        f"<{hashlib.sha256(message.claimed.key.encode()).hexdigest()[:32]}@yunying>"
    )
    email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
    email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email["X-Yunying-Key"] = message.claimed.key
    email.set_content(message.rendered.text)
    email.add_alternative(message.rendered.html, subtype="html")
    return email


def _safe_name(key: str) -> str:
    return key.replace(":", "_").replace("/", "_")


class EmlFileChannel:
    """Django's file backend convention: one .eml per message; the key names the file."""

    def __init__(self, folder: Path, mail_from: str) -> None:
        self.folder = folder / "email"
        self.mail_from = mail_from

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        self.folder.mkdir(parents=True, exist_ok=True)
        outcomes = []
        for message in messages:
            path = self.folder / f"{_safe_name(message.claimed.key)}.eml"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(build_email(self.mail_from, message).as_bytes())
                os.replace(tmp, path)
            outcomes.append(Outcome(message.claimed.id, "sent", provider_ref=path.name))
        return outcomes


class JsonLinesChannel:
    """Appends one JSON line per message to `<channel>.jsonl` in the outbox folder."""

    def __init__(self, folder: Path, channel: str) -> None:
        self.path = folder / f"{channel}.jsonl"

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        reclaimed = {m.claimed.key for m in messages if m.claimed.attempts > 1}
        written = self._written(reclaimed) if reclaimed else set()
        with self.path.open("a", encoding="utf-8") as out:
            for message in messages:
                if message.claimed.key not in written:
                    out.write(json.dumps(_payload(message), ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return [Outcome(m.claimed.id, "sent", provider_ref=self.path.name) for m in messages]

    def _written(self, keys: set[str]) -> set[str]:
        if not self.path.exists():
            return set()
        found = set()
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    key = json.loads(line)["key"]
                except (json.JSONDecodeError, KeyError):
                    continue  # a line torn by a crash; its message is sent again
                if key in keys:
                    found.add(key)
        return found


def _payload(message: OutgoingMessage) -> dict[str, str]:
    return {
        "key": message.claimed.key,
        "channel": message.claimed.channel,
        "to": message.address,
        "title": message.rendered.subject,
        "body": message.rendered.text,
    }


class HttpChannel:
    """A generic JSON provider: Idempotency-Key header, optional HMAC-SHA256 signature."""

    def __init__(
        self,
        url: str,
        secret: str | None,
        timeout: float,
        concurrency: int,
    ) -> None:
        self.url = url
        self.secret = secret.encode() if secret else None
        self.timeout = timeout
        self.concurrency = concurrency

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        limits = httpx.Limits(max_connections=self.concurrency)
        with (
            httpx.Client(timeout=self.timeout, limits=limits) as client,
            ThreadPoolExecutor(self.concurrency) as pool,
        ):
            return list(pool.map(lambda m: self._send_one(client, m), messages))

    def _send_one(self, client: httpx.Client, message: OutgoingMessage) -> Outcome:
        body = json.dumps(_payload(message), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.claimed.key}
        if self.secret:
            stamp = str(int(time.time()))
            digest = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256)
            headers["X-Yunying-Timestamp"] = stamp
            headers["X-Yunying-Signature"] = f"sha256={digest.hexdigest()}"
        try:
            response = with_retries(
                lambda: request(client, "POST", self.url, content=body, headers=headers)
            )
        except TransientError as exc:
            return Outcome(message.claimed.id, "retry", reason=str(exc))
        except PermanentError as exc:
            return Outcome(message.claimed.id, "failed", reason=str(exc))
        ref = str(response.json().get("id", "")) if response.content else ""
        return Outcome(message.claimed.id, "sent", provider_ref=ref[:200] or None)


class SmtpChannel:
    """One SMTP connection per batch; a 5xx for a recipient is a hard bounce."""

    def __init__(self, smtp: SmtpSettings, mail_from: str) -> None:
        self.smtp = smtp
        self.mail_from = mail_from

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            with open_smtp(self.smtp) as connection:
                for message in messages:
                    outcomes.append(self._send_one(connection, message))
        except (smtplib.SMTPException, OSError) as exc:
            done = {outcome.id for outcome in outcomes}
            reason = f"SMTP connection: {type(exc).__name__}"
            outcomes += [
                Outcome(m.claimed.id, "retry", reason=reason)
                for m in messages
                if m.claimed.id not in done
            ]
        return outcomes

    def _send_one(self, connection: smtplib.SMTP, message: OutgoingMessage) -> Outcome:
        try:
            connection.send_message(build_email(self.mail_from, message))
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            status = "bounced" if code >= 500 else "retry"
            return Outcome(
                message.claimed.id,
                status,
                reason=f"SMTP {code} {reply.decode(errors='replace')[:120]}",
            )
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                return Outcome(message.claimed.id, "failed", reason=f"SMTP {exc.smtp_code}")
            return Outcome(message.claimed.id, "retry", reason=f"SMTP {exc.smtp_code}")
        return Outcome(message.claimed.id, "sent")


def channels_for(settings: Settings) -> dict[str, Channel]:
    outbox = settings.outbox_path
    providers = settings.providers
    secret = providers.webhook_secret.get_secret_value() if providers.webhook_secret else None
    channels: dict[str, Channel] = {
        "email": SmtpChannel(settings.smtp, settings.mail_from)
        if settings.smtp.host
        else EmlFileChannel(outbox, settings.mail_from)
    }
    for name, url in (
        ("sms", providers.sms_url),
        ("push", providers.push_url),
        ("webhook", providers.webhook_url),
    ):
        channels[name] = (
            HttpChannel(url, secret, providers.timeout_seconds, providers.concurrency)
            if url
            else JsonLinesChannel(outbox, name)
        )
    return channels


def display_address(address: str) -> str:
    """A masked address for logs: never log raw emails or phone numbers."""
    name, addr = parseaddr(address)
    target = addr or address
    if "@" in target:
        local, _, domain = target.partition("@")
        return (
            formataddr((name, f"{local[:1]}***@{domain}")) if name else f"{local[:1]}***@{domain}"
        )
    return f"{target[:3]}***{target[-2:]}" if len(target) > 5 else "***"
