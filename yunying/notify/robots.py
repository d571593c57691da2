"""The group-chat robots' webhook APIs: one signed request per message, and what an answer means.

- WeCom (企业微信) group robot, https://developer.work.weixin.qq.com/document/path/91770:
  POST JSON `{"msgtype": "markdown", "markdown": {"content": ...}}` to `...?key=`; answers
  `{"errcode": 0, "errmsg": "ok"}`; 20 messages a minute per robot (errcode 45009 beyond).
- DingTalk (钉钉) custom robot, https://open.dingtalk.com/document/robots/custom-robot-access
  and .../customize-robot-security-settings: `timestamp` (ms) and `sign` query parameters,
  sign = urlencode(base64(HmacSHA256(key=secret, "timestamp\\nsecret"))); answers
  `{"errcode": 0, "errmsg": "ok"}`; 20 a minute per robot (errcode 130101 beyond).
- Feishu/Lark (飞书) custom bot, https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot:
  `timestamp` (s) and `sign` in the JSON body, sign = base64(HmacSHA256(key="timestamp\\nsecret",
  empty message)); answers `{"code": 0, "msg": "success"}`; 100 a minute, 5 a second
  (code 11232 beyond).

Why not Apprise for these three (it has dingtalk://, wecombot://, feishu://): its plugins post
to the vendors' fixed hosts, so neither a private deployment nor our local test server can be
addressed; its Feishu plugin does not sign; and it answers True/False, dropping the errcode
that says whether to retry (flow control) or to fix a setting (bad sign). Every other chat
service goes through Apprise (`kind = "apprise"`, see post.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote_plus

from yunying.messaging.providers import HttpRequest

Verdict = Literal["ok", "retry", "failed"]
WECOM_MARKDOWN_BYTES = 4096  # the documented limit of a markdown message's content


@dataclass(frozen=True)
class ChatMessage:
    title: str
    lines: list[str] = field(default_factory=list)
    link: str | None = None
    link_text: str = "Open in the Prefect UI"

    def markdown(self, title: str = "### {}") -> str:
        parts = [title.format(self.title), *(f"- {line}" for line in self.lines)]
        if self.link:
            parts.append(f"[{self.link_text}]({self.link})")
        return "\n".join(parts)

    def plain(self) -> str:
        parts = [self.title, *self.lines]
        if self.link:
            parts.append(f"{self.link_text}: {self.link}")
        return "\n".join(parts)


class Robot(Protocol):
    def request(self, message: ChatMessage, now: float) -> HttpRequest:
        """The signed POST for `message`; `now` in seconds since the epoch."""

    def verdict(self, status: int, body: bytes) -> tuple[Verdict, str]:
        """Whether the robot took the message, should be asked again, or refused it (why)."""


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def _json_post(url: str, payload: dict[str, Any]) -> HttpRequest:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return HttpRequest("POST", url, {"Content-Type": "application/json; charset=utf-8"}, body)


def _answer(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _http_verdict(status: int, body: bytes) -> tuple[Verdict, str] | None:
    """The verdict an HTTP status alone gives; None when the body's code decides."""
    if status == 429 or status >= 500:
        return "retry", f"HTTP {status}"
    if status >= 300:
        return "failed", f"HTTP {status}: {body[:120].decode(errors='replace')}"
    return None


def _code_verdict(code: object, text: object, transient: set[int]) -> tuple[Verdict, str]:
    if code == 0:
        return "ok", ""
    reason = f"{code} {text}"
    return ("retry" if code in transient else "failed"), reason


@dataclass(frozen=True)
class WeComRobot:
    url: str

    def request(self, message: ChatMessage, now: float) -> HttpRequest:
        content = message.markdown(title="**{}**")  # WeCom's markdown has no headings
        encoded = content.encode()
        if len(encoded) > WECOM_MARKDOWN_BYTES:
            content = encoded[: WECOM_MARKDOWN_BYTES - 3].decode(errors="ignore") + "..."
        return _json_post(self.url, {"msgtype": "markdown", "markdown": {"content": content}})

    def verdict(self, status: int, body: bytes) -> tuple[Verdict, str]:
        by_status = _http_verdict(status, body)
        if by_status:
            return by_status
        answer = _answer(body)
        # -1: system busy; 45009: over 20 messages a minute.
        return _code_verdict(answer.get("errcode"), answer.get("errmsg"), {-1, 45009})


@dataclass(frozen=True)
class DingTalkRobot:
    url: str
    secret: str | None = None

    def request(self, message: ChatMessage, now: float) -> HttpRequest:
        url = self.url
        if self.secret:
            stamp = int(now * 1000)
            url += f"&timestamp={stamp}&sign={dingtalk_sign(self.secret, stamp)}"
        payload = {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": message.markdown()},
        }
        return _json_post(url, payload)

    def verdict(self, status: int, body: bytes) -> tuple[Verdict, str]:
        by_status = _http_verdict(status, body)
        if by_status:
            return by_status
        answer = _answer(body)
        # -1: system busy; 130101: over 20 messages a minute.
        return _code_verdict(answer.get("errcode"), answer.get("errmsg"), {-1, 130101})


@dataclass(frozen=True)
class FeishuRobot:
    url: str
    secret: str | None = None

    def request(self, message: ChatMessage, now: float) -> HttpRequest:
        rows: list[list[dict[str, str]]] = [
            [{"tag": "text", "text": line}] for line in message.lines
        ]
        if message.link:
            rows.append([{"tag": "a", "text": message.link_text, "href": message.link}])
        payload: dict[str, Any] = {
            "msg_type": "post",
            "content": {"post": {"zh_cn": {"title": message.title, "content": rows}}},
        }
        if self.secret:
            stamp = int(now)
            payload = {"timestamp": str(stamp), "sign": feishu_sign(self.secret, stamp), **payload}
        return _json_post(self.url, payload)

    def verdict(self, status: int, body: bytes) -> tuple[Verdict, str]:
        by_status = _http_verdict(status, body)
        if by_status:
            return by_status
        answer = _answer(body)
        # Older deployments answer StatusCode/StatusMessage; 11232: over the frequency limit.
        code = answer.get("code", answer.get("StatusCode"))
        text = answer.get("msg", answer.get("StatusMessage"))
        return _code_verdict(code, text, {11232})
