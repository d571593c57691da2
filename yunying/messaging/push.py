"""App push through JPush REST v3 and FCM HTTP v1, one request per message.

- JPush (https://docs.jiguang.cn/jpush/server/push/rest_api_v3_push): POST `/v3/push` with
  `Authorization: Basic base64(appKey:masterSecret)`, audience `registration_id`; answers
  `{"sendno": "...", "msg_id": "..."}`; error 1011 (no such user, or inactive 255 days) means
  the token is dead: the user's push is suppressed.
- FCM HTTP v1 (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send):
  POST `/v1/projects/{project}/messages:send` with an OAuth2 bearer token from a service
  account (google-auth, scope firebase.messaging); answers `{"name": ...}`; errorCode
  UNREGISTERED (404) means the token is dead
  (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode); a 401 refreshes the
  access token and tries again.

Neither takes an idempotency key nor lists what was sent to a token. A message claimed again
after a crash is sent again, but carries a hash of its outbox key as the APNs collapse id
(both) and the Android notification tag (FCM), so the device shows it once: the second
replaces the first. JPush's Android notifications have no such key.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any

import orjson

from yunying.messaging.batch_channel import BatchApi, BatchChannel, Prepared
from yunying.messaging.outbox import Outcome
from yunying.messaging.providers import HttpRequest, OutgoingMessage
from yunying.messaging.push_config import PushSettings
from yunying.messaging.status import Verdict

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def collapse_id(key: str) -> str:
    """APNs takes at most 64 bytes; an outbox key can be longer."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_object(answer: dict[str, Any]) -> dict[str, Any]:
    """The `error` object of an answer; a proxy's or load balancer's page may have none."""
    error = answer.get("error")
    return error if isinstance(error, dict) else {}


def _by_status(status: int, reason: str) -> Verdict:
    return "retry" if status == 429 or status >= 500 else "failed"


def _one_by_one(ready: list[Prepared]) -> list[list[Prepared]]:
    return [[item] for item in ready]


class JPush:
    split_refused = False  # one message per call

    def __init__(self, settings: PushSettings) -> None:
        secret = (
            settings.jpush_master_secret.get_secret_value() if settings.jpush_master_secret else ""
        )
        pair = f"{settings.jpush_app_key}:{secret}".encode()
        self.auth = "Basic " + base64.b64encode(pair).decode()
        self.url = f"{settings.endpoint}/v3/push"

    batches = staticmethod(_one_by_one)

    def send_request(self, batch: list[Prepared]) -> HttpRequest:
        [item] = batch
        message = item.message
        tag = collapse_id(message.claimed.key)
        payload = {
            "platform": "all",
            "audience": {"registration_id": [message.address]},
            "notification": {
                "alert": message.rendered.text,
                "android": {"alert": message.rendered.text, "title": message.rendered.subject},
                "ios": {
                    "alert": {"title": message.rendered.subject, "body": message.rendered.text}
                },
            },
            "options": {"time_to_live": 86400, "apns_collapse_id": tag},
        }
        headers = {"Authorization": self.auth, "Content-Type": "application/json"}
        return HttpRequest("POST", self.url, headers, orjson.dumps(payload))

    def verdicts(
        self, batch: list[Prepared], status: int, body: bytes
    ) -> list[tuple[Verdict, str]]:
        answer = _json(body)
        if status < 300 and answer.get("msg_id"):
            return [("sent", str(answer["msg_id"]))]
        error = _error_object(answer)
        reason = f"{error.get('code', status)} {error.get('message', '')}".strip()
        if error.get("code") == 1011:
            return [("bounced", reason)]
        return [(_by_status(status, reason), reason)]

    def lookups(self, item: Prepared, now: Any) -> list[HttpRequest]:
        return []  # nothing to ask: the collapse id keeps a resend from showing twice

    def found(self, item: Prepared, body: bytes) -> str | None:
        return None


class FcmToken:
    """One OAuth2 access token per service account per process, refreshed by google-auth
    before it expires, and at once after the API answers 401."""

    def __init__(self, info: dict[str, Any]) -> None:
        from google.oauth2 import service_account

        self.credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[FCM_SCOPE]
        )
        self._lock = threading.Lock()
        self._stale = False
        self.problem = ""

    def bearer(self) -> str:
        """The current token, refreshed first when stale; when the token endpoint cannot be
        reached the old one is returned and `problem` says why (the API then answers 401)."""
        import google.auth.exceptions
        import google.auth.transport.requests

        with self._lock:
            if self._stale or not self.credentials.valid:
                try:
                    self.credentials.refresh(google.auth.transport.requests.Request())
                except google.auth.exceptions.GoogleAuthError as exc:
                    self.problem = f"FCM access token: {type(exc).__name__}"
                else:
                    self._stale, self.problem = False, ""
            return f"Bearer {self.credentials.token or ''}"

    @property
    def ready(self) -> bool:
        with self._lock:
            return bool(self.credentials.valid) and not self._stale

    def mark_stale(self) -> None:
        with self._lock:
            self._stale = True


class Fcm:
    split_refused = False  # one message per call

    def __init__(self, settings: PushSettings, token: FcmToken) -> None:
        project = settings.service_account()["project_id"]
        self.url = f"{settings.endpoint}/v1/projects/{project}/messages:send"
        self.token = token

    batches = staticmethod(_one_by_one)

    def send_request(self, batch: list[Prepared]) -> HttpRequest:
        [item] = batch
        message = item.message
        tag = collapse_id(message.claimed.key)
        payload = {
            "message": {
                "token": message.address,
                "notification": {"title": message.rendered.subject, "body": message.rendered.text},
                "android": {"notification": {"tag": tag}},
                "apns": {"headers": {"apns-collapse-id": tag}},
            }
        }
        headers = {"Authorization": self.token.bearer(), "Content-Type": "application/json"}
        return HttpRequest("POST", self.url, headers, orjson.dumps(payload))

    def verdicts(
        self, batch: list[Prepared], status: int, body: bytes
    ) -> list[tuple[Verdict, str]]:
        answer = _json(body)
        if status < 300:
            return [("sent", str(answer.get("name", "")))]
        error = _error_object(answer)
        codes = [d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict)]
        code = next((c for c in codes if c), error.get("status", status))
        reason = f"{code} {error.get('message', '')}".strip()
        if code == "UNREGISTERED":
            return [("bounced", reason)]
        if status == 401:
            self.token.mark_stale()  # the next request signs with a fresh token
            return [("retry", reason)]
        return [(_by_status(status, reason), reason)]

    def lookups(self, item: Prepared, now: Any) -> list[HttpRequest]:
        return []  # see the module docstring: the tag and collapse id absorb a resend

    def found(self, item: Prepared, body: bytes) -> str | None:
        return None


_tokens: dict[str, FcmToken] = {}
_tokens_lock = threading.Lock()


def fcm_token(settings: PushSettings) -> FcmToken:
    info = settings.service_account()
    identity = f"{info['client_email']} {info.get('private_key_id')} {info['token_uri']}"
    with _tokens_lock:
        token = _tokens.get(identity)
        if token is None:
            token = _tokens[identity] = FcmToken(info)
        return token


def push_api(settings: PushSettings) -> BatchApi:
    return JPush(settings) if settings.provider == "jpush" else Fcm(settings, fcm_token(settings))


class PushChannel(BatchChannel):
    def __init__(
        self, settings: PushSettings, timeout: float, concurrency: int, attempts: int = 4
    ) -> None:
        api = push_api(settings)
        super().__init__(api, self._ready, timeout, concurrency, attempts)

    def _ready(self, messages: list[OutgoingMessage]) -> tuple[list[Prepared], list[Outcome]]:
        missing = [
            Outcome(m.claimed.id, "failed", "no push token") for m in messages if not m.address
        ]
        ready = [Prepared([m]) for m in messages if m.address]
        if isinstance(self.api, Fcm):
            self.api.token.bearer()  # fetched here, before the sends, not inside them
            if not self.api.token.ready:  # nothing is sent without a token; try again later
                reason = self.api.token.problem or "no FCM access token"
                return [], missing + [Outcome(p.message.claimed.id, "retry", reason) for p in ready]
        return ready, missing
