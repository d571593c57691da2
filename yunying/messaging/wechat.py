"""WeChat messages to a user's openid: official-account template messages
(https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Template_Message_Interface.html)
and mini-program subscribe messages
(https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/mp-message-management/subscribe-message/sendMessage.html).

The access token (`GET /cgi-bin/token`, valid 7,200 s, a few thousand fetches a day, and a new
one ends the old) is fetched by one worker and shared by all through the store
(`provider_tokens`, row-locked while it is fetched); it is refreshed
`refresh_before_seconds` before it expires, and at once when WeChat answers 40001, 42001 or
40014. Answers map to: sent; retry (-1 busy, 45009/45011 quota, a stale token); bounced,
which suppresses the user's WeChat (43004 unfollowed, 43101 refused the subscription); or
failed with WeChat's errcode and errmsg.

WeChat takes no idempotency key and cannot be asked what it sent: a message left in
`sending` by a crash is sent again when reclaimed (see README, Chinese channels).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import httpx
import orjson
from jinja2 import UndefinedError
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yunying.errors import TemplateError
from yunying.messaging.batch_channel import BatchChannel, Prepared
from yunying.messaging.cn_sms import render_param
from yunying.messaging.outbox import Outcome
from yunying.messaging.providers import HttpRequest, OutgoingMessage
from yunying.messaging.status import Verdict
from yunying.messaging.wechat_config import WeChatSettings, WeChatTemplate
from yunying.store.engine import create_store_engine, session_scope, utcnow
from yunying.store.models import ProviderToken

STALE_TOKEN = {40001, 42001, 40014}
TRANSIENT = {-1, 45009, 45011}
SUPPRESS = {43004, 43101}
# Subscribe-message keyword types and their documented value limits (characters).
KEYWORD_LIMITS = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phone_number": 17,
    "car_number": 8,
    "name": 20,
    "phrase": 5,
    "amount": 32,
}
_KEYWORD_TYPE = re.compile(r"^([a-z_]+?)\d*$")


class TokenError(Exception):
    """WeChat would not give an access token (its errcode and errmsg, or the transport)."""


def token_name(settings: WeChatSettings) -> str:
    return f"wechat:{settings.app_id}"


def shared_token(
    session: Session,
    name: str,
    fetch: Callable[[], tuple[str, int]],
    margin: dt.timedelta,
    now: dt.datetime,
) -> str:
    """The stored token when it is good for `margin` more; else a fetched one, stored. The
    row is written first, which locks it (a row lock on PostgreSQL, the write lock on
    SQLite) until the caller commits: workers asking at once fetch once."""
    touch = update(ProviderToken).where(ProviderToken.name == name).values(updated_at=now)
    if not session.execute(touch).rowcount:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(ProviderToken(name=name, updated_at=now))
        except IntegrityError:
            session.execute(touch)  # another worker made it first: wait for its lock
    row = session.get(ProviderToken, name, populate_existing=True)
    if row is None:
        raise TokenError(f"{name}: the token row vanished")
    if row.token and row.expires_at and row.expires_at - margin > now:
        return row.token
    token, expires_in = fetch()
    row.token, row.expires_at = token, now + dt.timedelta(seconds=expires_in)
    row.fetches += 1
    row.updated_at = now
    return token


def forget_token(session: Session, name: str, token: str) -> None:
    """WeChat said `token` is stale: the next ask fetches, unless another worker already did."""
    session.execute(
        update(ProviderToken)
        .where(ProviderToken.name == name, ProviderToken.token == token)
        .values(expires_at=None)
    )


class StoreTokens:
    """This process's view of the shared token: asks the store only near expiry or after
    WeChat called the token stale."""

    def __init__(self, settings: WeChatSettings, engine: Callable[[], Engine]) -> None:
        self.settings = settings
        self.engine = engine
        self.name = token_name(settings)
        self.margin = dt.timedelta(seconds=settings.refresh_before_seconds)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = dt.datetime.min

    def current(self) -> str:
        with self._lock:
            now = utcnow()
            if self._token is None or self._until - self.margin <= now:
                with session_scope(self.engine()) as session:
                    self._token = shared_token(session, self.name, self._fetch, self.margin, now)
                    row = session.get(ProviderToken, self.name)
                    self._until = row.expires_at if row and row.expires_at else now
            return self._token

    def stale(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None
            with session_scope(self.engine()) as session:
                forget_token(session, self.name, token)

    def _fetch(self) -> tuple[str, int]:
        secret = self.settings.app_secret.get_secret_value() if self.settings.app_secret else ""
        params = {
            "grant_type": "client_credential",
            "appid": self.settings.app_id,
            "secret": secret,
        }
        try:
            answer = httpx.get(f"{self.settings.url}/cgi-bin/token", params=params, timeout=10)
        except httpx.TransportError as exc:
            raise TokenError(f"access token: {type(exc).__name__}") from exc
        data = _json(answer.content)
        if answer.status_code >= 300 or not data.get("access_token"):
            code = data.get("errcode", answer.status_code)
            raise TokenError(f"access token: {code} {data.get('errmsg', '')}".strip())
        return str(data["access_token"]), int(data.get("expires_in", 7200))


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def template_data(template: WeChatTemplate, context: Mapping[str, Any]) -> dict[str, str]:
    """Each keyword's value, checked against its type's documented limit."""
    values = {}
    for keyword, expression in template.data.items():
        try:
            value = render_param(expression, context).strip()
        except UndefinedError as exc:
            raise ValueError(f"WeChat keyword {keyword!r}: {exc.message}") from None
        if not value:
            raise ValueError(f"WeChat keyword {keyword!r} is empty")
        kind = _KEYWORD_TYPE.match(keyword)
        limit = KEYWORD_LIMITS.get(kind.group(1) if kind else "", 200)
        if len(value) > limit:
            raise ValueError(f"WeChat keyword {keyword!r}: {len(value)} characters, over {limit}")
        values[keyword] = value
    return values


def wechat_template_of(settings: WeChatSettings, template: str) -> WeChatTemplate:
    """Preflight: the template's mapping to a WeChat template, or a TemplateError naming the
    setting."""
    mapping = settings.templates.get(template)
    if mapping is None:
        raise TemplateError(
            f"no wechat.templates entry for template {template!r}: map it to a template_id"
        )
    return mapping


class WeChatApi:
    split_refused = False  # one message per call

    def __init__(self, settings: WeChatSettings, tokens: StoreTokens) -> None:
        self.settings = settings
        self.tokens = tokens
        kind = "template" if settings.kind == "official_account" else "subscribe"
        self.path = f"{settings.url}/cgi-bin/message/{kind}/send"
        self._used: dict[int, str] = {}  # message id -> the token its last request carried

    def batches(self, ready: list[Prepared]) -> list[list[Prepared]]:
        return [[item] for item in ready]

    def send_request(self, batch: list[Prepared]) -> HttpRequest:
        [item] = batch
        try:
            token = self.tokens.current()
        except TokenError:
            token = self._used.get(item.message.claimed.id, "")  # answered 40001: retried
        self._used[item.message.claimed.id] = token
        payload: dict[str, Any] = {
            "touser": item.message.address,
            "template_id": item.code,
            "data": {k: {"value": v} for k, v in item.params.items()},
        }
        link = self.settings.templates[str(item.message.context["template"])].link
        if link:
            payload["url" if self.settings.kind == "official_account" else "page"] = link
        headers = {"Content-Type": "application/json"}
        return HttpRequest(
            "POST", f"{self.path}?access_token={token}", headers, orjson.dumps(payload)
        )

    def verdicts(
        self, batch: list[Prepared], status: int, body: bytes
    ) -> list[tuple[Verdict, str]]:
        [item] = batch
        if status == 429 or status >= 500:
            return [("retry", f"HTTP {status}")]
        answer = _json(body)
        code = answer.get("errcode", status if status >= 300 else None)
        reason = f"{code} {answer.get('errmsg', '')}".strip()
        if code == 0:
            return [("sent", str(answer.get("msgid", "")))]
        if code in STALE_TOKEN:
            used = self._used.get(item.message.claimed.id)
            if used:
                self.tokens.stale(used)
            return [("retry", reason)]
        if code in SUPPRESS:
            return [("bounced", reason)]
        return [("retry" if code in TRANSIENT else "failed", reason)]

    def lookups(self, item: Prepared, now: dt.datetime) -> list[HttpRequest]:
        return []  # WeChat cannot be asked: see the module docstring

    def found(self, item: Prepared, body: bytes) -> str | None:
        return None


@cache
def store_engine(url: str) -> Engine:
    """One engine per store URL per process, made when WeChat first needs its token."""
    return create_store_engine(url)


class WeChatChannel(BatchChannel):
    def __init__(
        self,
        settings: WeChatSettings,
        engine: Callable[[], Engine],
        timeout: float,
        concurrency: int,
        attempts: int = 4,
    ) -> None:
        self.settings = settings
        self.wechat = WeChatApi(settings, StoreTokens(settings, engine))
        super().__init__(self.wechat, self._ready, timeout, concurrency, attempts)

    def _ready(self, messages: list[OutgoingMessage]) -> tuple[list[Prepared], list[Outcome]]:
        ready: list[Prepared] = []
        outcomes: list[Outcome] = []
        for message in messages:
            id = message.claimed.id
            template = self.settings.templates.get(str(message.context.get("template", "")))
            if template is None:
                outcomes.append(Outcome(id, "failed", "no wechat.templates entry for it"))
                continue
            try:
                data = template_data(template, message.context)
            except ValueError as exc:
                outcomes.append(Outcome(id, "failed", str(exc)))
                continue
            ready.append(Prepared([message], template.template_id, data))
        if ready:
            try:
                self.wechat.tokens.current()  # fetched before the sends, not inside them
            except TokenError as exc:
                return [], outcomes + [
                    Outcome(p.message.claimed.id, "retry", str(exc)) for p in ready
                ]
        return ready, outcomes
