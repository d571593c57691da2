"""Channels deliver rendered messages: SMTP or .eml files for email; an HTTP provider or JSON
lines in the outbox folder for SMS, push and webhooks (the embedded default); an HTTP email
API (Resend's) instead of SMTP when `providers.email_url` is set.

Every channel returns one `Outcome` per message and never raises for a single message:
`retry` for transient failures (the row goes back to the queue), `failed` for permanent ones,
`bounced` for a hard SMTP bounce. Messages claimed a second time (a crash left them in
`sending`) are reconciled first: a file channel checks what it already wrote; an HTTP
provider deduplicates on the Idempotency-Key or is asked whether it sent the message
(see providers.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import smtplib
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from yunying.config import Settings, SmtpSettings
from yunying.errors import ConfigError
from yunying.http_client import backoff, retry_after_seconds
from yunying.messaging.cn_sms import CnSmsChannel
from yunying.messaging.outbox import Outcome
from yunying.messaging.providers import (
    HttpRequest,
    JsonWebhook,
    OutgoingMessage,
    ProviderApi,
    Resend,
    Twilio,
    message_payload,
)
from yunying.messaging.push import PushChannel
from yunying.messaging.smtp_connection import open_smtp
from yunying.messaging.status import SENDING_OFF_REF, Verdict
from yunying.messaging.wechat import WeChatChannel, store_engine

T = TypeVar("T")


class Channel(Protocol):
    def send(self, messages: list[OutgoingMessage]) -> Sequence[Outcome]: ...


class _HeaderClasses(HeaderRegistry):
    """The standard registry makes a new class for every header it parses, which cost a
    tenth of building an email; the class depends on the header's name only: one each."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# Long headers (the unsubscribe URL) must stay plain ASCII: fold at 998, never encode them.
EMAIL_POLICY = SMTP.clone(max_line_length=998, header_factory=_HeaderClasses())


def mail_domain(mail_from: str) -> str:
    """The domain of the sender's address, for Message-IDs (RFC 5322 3.6.4)."""
    return parseaddr(mail_from)[1].rpartition("@")[2] or "yunying.invalid"


def stamp(email: EmailMessage, mail_from: str, key: str | None = None) -> EmailMessage:
    """Date and Message-ID, which every message must carry (RFC 5322 3.6): spam filters
    score mail without them. A `key` gives a stable id: a message sent again (after a crash)
    keeps the id of the first try, so receiving servers can tell the two are one."""
    email["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    domain = mail_domain(mail_from)
    email["Message-ID"] = (
        f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
        if key
        else make_msgid(domain=domain)
    )
    return email


def build_email(mail_from: str, message: OutgoingMessage) -> EmailMessage:
    email = EmailMessage(policy=EMAIL_POLICY)
    email["From"] = mail_from
    email["To"] = message.address
    email["Subject"] = message.rendered.subject
    stamp(email, mail_from, message.claimed.key)
    email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
    email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email["X-Yunying-Key"] = message.claimed.key
    email.set_content(message.rendered.text)
    email.add_alternative(message.rendered.html, subtype="html")
    # Chosen here, the generator need not compile a regex per message to pick a random one.
    boundary = mime_boundary(message.claimed.key)
    if f"--{boundary}" not in message.rendered.text + message.rendered.html:
        email.set_boundary(boundary)
    return email


def mime_boundary(key: str) -> str:
    """The multipart boundary of a message's email, stable like its Message-ID."""
    return f"==============={hashlib.sha256(key.encode()).hexdigest()[:19]}=="


def _safe_name(key: str) -> str:
    """A file name per message key, never one for two keys: ':' (which some file systems
    refuse) is written '_', so the key's own '_', '%' and '/' are percent-escaped."""
    escaped = key.replace("%", "%25").replace("_", "%5F").replace("/", "%2F")
    return escaped.replace(":", "_")


class EmlFileChannel:
    """Django's file backend convention: one .eml per message; the key names the file."""

    def __init__(self, folder: Path, mail_from: str, sending_off: bool = False) -> None:
        self.folder = folder / "email"
        self.mail_from = mail_from
        self.ref_prefix = SENDING_OFF_REF if sending_off else ""

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        self.folder.mkdir(parents=True, exist_ok=True)
        outcomes = []
        for message in messages:
            path = self.folder / f"{_safe_name(message.claimed.key)}.eml"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(build_email(self.mail_from, message).as_bytes())
                os.replace(tmp, path)
            ref = self.ref_prefix + path.name
            outcomes.append(Outcome(message.claimed.id, "sent", provider_ref=ref))
        return outcomes


class JsonLinesChannel:
    """Appends one JSON line per message to `<channel>.jsonl` in the outbox folder."""

    def __init__(self, folder: Path, channel: str, sending_off: bool = False) -> None:
        self.path = folder / f"{channel}.jsonl"
        self.ref_prefix = SENDING_OFF_REF if sending_off else ""

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        reclaimed = {m.claimed.key for m in messages if m.claimed.attempts > 1}
        written = self._written(reclaimed) if reclaimed else set()
        with self.path.open("a", encoding="utf-8") as out:
            for message in messages:
                if message.claimed.key not in written:
                    out.write(json.dumps(message_payload(message), ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        ref = self.ref_prefix + self.path.name
        return [Outcome(m.claimed.id, "sent", provider_ref=ref) for m in messages]

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


class HttpChannel:
    """Posts each message to an HTTP provider, `concurrency` at a time over one aiohttp
    session per batch (httpx reached about a tenth of aiohttp's rate here).

    A 5xx, a 429 or a lost connection is retried with backoff, honouring Retry-After, up to
    `attempts` times; after that the message goes back to the queue. Any other 4xx fails the
    message with the provider's reason. A message claimed again after a crash is looked up at
    the provider first when the provider does not deduplicate on the key.
    """

    def __init__(
        self, api: ProviderApi, timeout: float, concurrency: int, attempts: int = 4
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.concurrency = concurrency
        self.attempts = attempts

    def send(
        self,
        messages: list[OutgoingMessage],
        on_outcomes: Callable[[list[Outcome]], None] | None = None,
    ) -> list[Outcome]:
        """`on_outcomes` is called with each group of outcomes as they come (in a thread,
        one call at a time); a message keeps its slot of `concurrency` until its outcome is
        stored, so a crash leaves at most `concurrency` sent messages unrecorded."""
        return run_coroutine(self._send_all(messages, on_outcomes))

    async def _send_all(
        self,
        messages: list[OutgoingMessage],
        on_outcomes: Callable[[list[Outcome]], None] | None,
    ) -> list[Outcome]:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        gate = asyncio.Semaphore(self.concurrency)
        grouped = _Grouped(on_outcomes) if on_outcomes else None
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            return await asyncio.gather(
                *(self._send_one(session, gate, m, grouped) for m in messages)
            )

    async def _send_one(
        self,
        session: aiohttp.ClientSession,
        gate: asyncio.Semaphore,
        message: OutgoingMessage,
        grouped: _Grouped | None,
    ) -> Outcome:
        async with gate:
            outcome = await self._deliver(session, message)
            if grouped is not None:
                await grouped.store(outcome)
            return outcome

    async def _deliver(self, session: aiohttp.ClientSession, message: OutgoingMessage) -> Outcome:
        id = message.claimed.id
        lookup = self.api.lookup(message) if message.claimed.attempts > 1 else None
        if lookup is not None:
            status, body, _ = await self._call(session, lookup)
            if status is None or status >= 300:
                return Outcome(id, "retry", reason=f"lookup before resending: {body.decode()}")
            earlier = self.api.found(message, body)
            if earlier is not None:
                return Outcome(id, "sent", provider_ref=earlier[:200])
        request = self.api.request(message)
        reason = ""
        for attempt in range(1, self.attempts + 1):
            status, body, retry_after = await self._call(session, request)
            if status is not None and status < 300:
                return Outcome(id, "sent", provider_ref=(self.api.reference(body) or "")[:200])
            if status is None:
                reason = body.decode()
            else:
                reason = f"HTTP {status}: {self.api.error(body)[:160]}"
                if status != 429 and status < 500:
                    return Outcome(id, "failed", reason=reason)
            if attempt < self.attempts:
                await asyncio.sleep(backoff(attempt, retry_after, max_delay=self.timeout))
        return Outcome(id, "retry", reason=reason)

    async def _call(
        self, session: aiohttp.ClientSession, request: HttpRequest
    ) -> tuple[int | None, bytes, float | None]:
        """(status, body, Retry-After) of one call; no status when it never got an answer."""
        try:
            async with session.request(
                request.method, request.url, data=request.body, headers=request.headers
            ) as response:
                body = await response.read()
                return (
                    response.status,
                    body,
                    retry_after_seconds(response.headers.get("Retry-After")),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__.encode(), None


class _Grouped:
    """Hands outcomes to a blocking `store` in groups: while one group is being stored (in
    a thread), the outcomes that arrive meanwhile queue up and form the next group."""

    def __init__(self, store: Callable[[list[Outcome]], None]) -> None:
        self._store = store
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._turn = asyncio.Lock()

    async def store(self, outcome: Outcome) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, done))
        async with self._turn:
            if not done.done():
                group, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._store, [o for o, _ in group])
                except Exception as exc:
                    for _, waiting in group:
                        if not waiting.done():
                            waiting.set_exception(exc)
                else:
                    for _, waiting in group:
                        waiting.set_result(None)
        await done


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, also when the caller's thread
    already runs an event loop (then in a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class SmtpChannel:
    """One SMTP connection per batch; a recipient refused for its address is a hard bounce
    (`bad_address`)."""

    # SMTP takes no idempotency key: what a crash leaves unrecorded is `unknown`, never
    # resent, so outcomes are handed on every few messages, not once a batch.
    RECORD_EVERY = 20

    def __init__(self, smtp: SmtpSettings, mail_from: str) -> None:
        self.smtp = smtp
        self.mail_from = mail_from

    def send(
        self,
        messages: list[OutgoingMessage],
        on_outcomes: Callable[[list[Outcome]], None] | None = None,
        on_handing: Callable[[list[int]], None] | None = None,
    ) -> list[Outcome]:
        """The outcomes not yet handed to `on_outcomes` (all of them without it);
        `on_handing` hears the ids of each group of RECORD_EVERY messages before the server
        is given the first of them. A server that answers 421 closes the connection: the
        next message opens another. A connection lost between messages after it took one
        (servers cap the messages a connection may carry) is opened again for the rest; one
        lost before it took any, or during a message, sends the rest back to the queue."""
        outcomes: list[Outcome] = []
        done: set[int] = set()
        current: OutgoingMessage | None = None
        connection: _Connection | None = None
        handed_to = 0
        at = 0
        try:
            while at < len(messages):
                message = messages[at]
                if on_handing is not None and at >= handed_to:
                    handed_to = at + self.RECORD_EVERY
                    on_handing([m.claimed.id for m in messages[at:handed_to]])
                connection = connection or _Connection(open_smtp(self.smtp))
                current = message
                try:
                    outcome = self._send_one(connection, message)
                except (smtplib.SMTPServerDisconnected, ConnectionError):
                    if connection.data_sent or not connection.took:
                        raise
                    connection.smtp.close()
                    connection = None
                    continue  # the same message, on a new connection
                outcomes.append(outcome)
                done.add(message.claimed.id)
                current = None
                at += 1
                connection.took = True
                if (outcome.reason or "").startswith("SMTP 421"):
                    connection = None  # smtplib closed it
                if on_outcomes is not None and len(outcomes) >= self.RECORD_EVERY:
                    on_outcomes(outcomes)
                    outcomes = []
            if connection is not None:
                connection.smtp.quit()
        except (smtplib.SMTPException, OSError, ConfigError) as exc:
            # Back to the queue, never dropped: a server down, a refused login, or a
            # certificate that does not verify (its reason names smtp.ca_file).
            reason = str(exc) if isinstance(exc, ConfigError) else _smtp_failure(exc)
            if current is not None and connection is not None and connection.data_sent:
                # Lost after the message's data went out: the server may have taken it.
                why = f"outcome unknown: {reason} after the data was sent; check the mail log"
                outcomes.append(Outcome(current.claimed.id, "unknown", reason=f"{why}, not resent"))
                done.add(current.claimed.id)
            outcomes += [
                Outcome(m.claimed.id, "retry", reason=reason)
                for m in messages
                if m.claimed.id not in done
            ]
            if connection is not None:
                connection.smtp.close()
        return outcomes

    def _send_one(self, connection: _Connection, message: OutgoingMessage) -> Outcome:
        connection.data_sent = False
        try:
            connection.smtp.send_message(build_email(self.mail_from, message))
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            said = reply.decode(errors="replace")
            status: Verdict = (
                "retry" if code < 500 else "bounced" if bad_address(code, said) else "failed"
            )
            return Outcome(message.claimed.id, status, reason=f"SMTP {code} {said[:120]}")
        except smtplib.SMTPResponseException as exc:
            said = (
                exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
            )
            reason = f"SMTP {exc.smtp_code} {said[:120]}".strip()
            return Outcome(
                message.claimed.id, "failed" if exc.smtp_code >= 500 else "retry", reason
            )
        return Outcome(message.claimed.id, "sent")


class _Connection:
    """An SMTP connection that notes when a message's data starts going out: a connection lost
    before that lost nothing the server took; after it, the server may have the message.
    `took`: the server answered a message on it."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.data_sent = False
        self.took = False
        send_data = smtp.data

        def data(message: bytes | str) -> tuple[int, bytes]:
            self.data_sent = True
            return send_data(message)

        smtp.data = data  # type: ignore[method-assign, assignment]


def bad_address(code: int, reply: str) -> bool:
    """Whether a 5xx refusal of a recipient says the address is bad (a hard bounce: the user
    is suppressed), not that the server refuses to relay, wants a login or blocks on policy
    (the send failed: fix the setting, then --resend-failed). RFC 3463's enhanced codes 5.1.x
    (address) and 5.2.1 (mailbox disabled) are bounces; without one, 550/551/553 are, unless
    the text speaks of relaying or policy."""
    enhanced = re.match(r"\s*5\.(\d{1,3})\.(\d{1,3})", reply)
    if enhanced:
        return enhanced.group(1) == "1" or enhanced.groups() == ("2", "1")
    return code in (550, 551, 553) and not re.search(
        r"relay|auth|policy|spam|block|denied", reply, re.IGNORECASE
    )


def _smtp_failure(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"SMTP login refused ({exc.smtp_code}): check smtp.username and smtp.password"
    return f"SMTP connection: {type(exc).__name__}"


def channels_for(settings: Settings) -> dict[str, Channel]:
    outbox = settings.outbox_path
    providers = settings.providers

    def http(api: ProviderApi) -> Channel:
        return HttpChannel(api, providers.timeout_seconds, providers.concurrency)

    def webhook(url: str | None, name: str) -> Channel:
        secret = providers.webhook_secret
        signing_key = secret.get_secret_value().encode() if secret else None
        return http(JsonWebhook(url, signing_key)) if url else JsonLinesChannel(outbox, name)

    channels = {
        "sms": webhook(providers.sms_url, "sms"),
        "push": webhook(providers.push_url, "push"),
        "webhook": webhook(providers.webhook_url, "webhook"),
    }
    if providers.sms_url and providers.sms_api == "twilio":
        assert providers.twilio_account_sid and providers.twilio_auth_token and providers.sms_from
        channels["sms"] = http(
            Twilio(
                providers.sms_url,
                providers.twilio_account_sid,
                providers.twilio_auth_token.get_secret_value(),
                providers.sms_from,
            )
        )
    channels["wechat"] = JsonLinesChannel(outbox, "wechat")
    if settings.wechat.kind:
        url = settings.store_url
        channels["wechat"] = WeChatChannel(
            settings.wechat,
            lambda: store_engine(url),
            providers.timeout_seconds,
            providers.concurrency,
        )
    if settings.push.provider:
        channels["push"] = PushChannel(
            settings.push, providers.timeout_seconds, providers.concurrency
        )
    if settings.cn_sms.provider:
        channels["sms"] = CnSmsChannel(
            settings.cn_sms, providers.timeout_seconds, providers.concurrency
        )
    if providers.email_url:
        assert providers.email_api_key
        api_key = providers.email_api_key.get_secret_value()
        channels["email"] = http(Resend(providers.email_url, api_key, settings.mail_from))
    elif settings.smtp.host:
        channels["email"] = SmtpChannel(settings.smtp, settings.mail_from)
    else:
        channels["email"] = EmlFileChannel(outbox, settings.mail_from)
    return channels
