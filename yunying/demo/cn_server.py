"""The Chinese providers and group-chat robots the local server plays (see local_server.py).

Each endpoint checks a request the way its provider documents it (key, signature, body) and
answers with the provider's documented success and error bodies:

- `POST /cgi-bin/webhook/send?key=` — a WeCom group robot;
- `POST /robot/send?access_token=&timestamp=&sign=` — a DingTalk custom robot;
- `POST /open-apis/bot/v2/hook/<id>` — a Feishu custom bot.

`busy` answers the next posts with each robot's flow-control code, as a throttled robot does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

Answer = tuple[int, dict[str, Any]]


@dataclass
class ChatRobots:
    wecom_keys: set[str] = field(default_factory=set)
    dingtalk: dict[str, str | None] = field(default_factory=dict)  # access_token -> secret
    feishu: dict[str, str | None] = field(default_factory=dict)  # hook id -> secret
    received: list[dict[str, Any]] = field(default_factory=list)
    # robot kind -> how many of its next posts are answered with its flow-control code
    busy: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _throttled(self, kind: str) -> bool:
        with self._lock:
            if self.busy.get(kind, 0) > 0:
                self.busy[kind] -= 1
                return True
            return False

    def _receive(self, kind: str, robot: str, body: dict[str, Any], query: dict[str, str]) -> None:
        with self._lock:
            self.received.append({"kind": kind, "robot": robot, "body": body, "query": query})

    def post(self, path: str, raw: bytes) -> Answer | None:
        parsed = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        if parsed.path == "/cgi-bin/webhook/send":
            return self._wecom(query, raw)
        if parsed.path == "/robot/send":
            return self._dingtalk(query, raw)
        if parsed.path.startswith("/open-apis/bot/v2/hook/"):
            return self._feishu(parsed.path.rsplit("/", 1)[1], query, raw)
        return None

    def _wecom(self, query: dict[str, str], raw: bytes) -> Answer:
        key = query.get("key", "")
        if key not in self.wecom_keys:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [..]"}
        body = _json_object(raw)
        content = (body or {}).get("markdown", {}).get("content")
        if body is None or body.get("msgtype") != "markdown" or not content:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if len(content.encode()) > 4096:
            return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
        if self._throttled("wecom"):
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        self._receive("wecom", key, body, query)
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _dingtalk(self, query: dict[str, str], raw: bytes) -> Answer:
        token = query.get("access_token", "")
        if token not in self.dingtalk:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        secret = self.dingtalk[token]
        if secret is not None:
            stamp = query.get("timestamp", "")
            if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > 3_600_000:
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            to_sign = f"{stamp}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(secret.encode(), to_sign, "sha256").digest())
            if not hmac.compare_digest(expected.decode(), query.get("sign", "")):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
        body = _json_object(raw)
        if body is None or body.get("msgtype") not in ("text", "markdown", "link", "actionCard"):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        if self._throttled("dingtalk"):
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        self._receive("dingtalk", token, body, query)
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _feishu(self, hook: str, query: dict[str, str], raw: bytes) -> Answer:
        if hook not in self.feishu:
            return 404, {
                "code": 19001,
                "data": {},
                "msg": "param invalid: incoming webhook access token invalid",
            }
        body = _json_object(raw)
        if body is None or body.get("msg_type") not in ("text", "post", "interactive"):
            return 400, {"code": 9499, "data": {}, "msg": "Bad Request"}
        secret = self.feishu[hook]
        if secret is not None:
            stamp = str(body.get("timestamp", ""))
            key = f"{stamp}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 3600
            if not fresh or not hmac.compare_digest(expected, str(body.get("sign", ""))):
                return 200, {
                    "code": 19021,
                    "data": {},
                    "msg": "sign match fail or timestamp is not within one hour from current time",
                }
        if self._throttled("feishu"):
            return 200, {"code": 11232, "data": {}, "msg": "frequency limited psm"}
        self._receive("feishu", hook, body, query)
        return 200, {"code": 0, "data": {}, "msg": "success"}


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class CnProviders:
    """Every Chinese provider the local server plays; `post` answers the requests that are
    theirs and returns None for the rest."""

    robots: ChatRobots = field(default_factory=ChatRobots)

    def post(self, path: str, headers: Mapping[str, str], raw: bytes) -> Answer | None:
        return self.robots.post(path, raw)

    def get(self, path: str, headers: Mapping[str, str]) -> Answer | None:
        return None
