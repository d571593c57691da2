"""A real local HTTP server that plays the company's HTTP API and the message providers.

- `GET /events?cursor=&limit=` pages the source database's events by cursor;
  `/events/pages?page=&limit=` by page number; `/events/linked` by a Link header.
- `POST /v1/<channel>` accepts a message like a provider would, deduplicating on the
  `Idempotency-Key` header, so `deliveries` counts what a real provider would deliver.
- `POST /emails` plays Resend's send-email API (bearer key, JSON, Idempotency-Key);
  `POST|GET /2010-04-01/Accounts/<sid>/Messages.json` plays Twilio's Messages API (Basic
  auth, a form body, no idempotency key: a repeat is delivered again and counted in
  `double_sends`), with the list filters To and DateSent>.
- The API's auth, as the company's API would check it: a bearer token, HTTP Basic
  credentials, or a key in a named header (`bearer_token`, `basic_auth`, `api_key`).
- Fault switches for tests and benchmarks: latency, a 5xx rate, a 429 rate with
  Retry-After, a dropped-connection rate, and a set of keys to reject permanently (4xx).
- The Chinese SMS providers, WeChat and the group-chat robots: see cn_server.py (`cn`).
"""

from __future__ import annotations

import base64
import hmac
import json
import random
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from yunying.demo.cn_server import CnProviders

TWILIO_MESSAGES = re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages\.json")


@dataclass
class Faults:
    latency_seconds: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_seconds: int = 1
    drop_rate: float = 0.0
    reject_keys: set[str] = field(default_factory=set)  # idempotency keys or recipients


@dataclass
class Recorder:
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> first body
    requests: int = 0
    duplicates: int = 0  # repeats a provider absorbed on its idempotency key
    double_sends: int = 0  # repeats a provider without idempotency delivered a second time
    headers: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # monotonic time of each delivery
    refusals: Counter[str] = field(default_factory=Counter)  # reject_keys answered, per key
    unavailable: int = 0  # requests answered 503 by `Faults.error_rate`


class LocalServer:
    def __init__(self, source_db: Path | None = None, seed: int = 0) -> None:
        self.source_db = source_db
        self.faults = Faults()
        self.recorder = Recorder()
        self.bearer_token: str | None = None
        self.basic_auth: tuple[str, str] | None = None  # (user, password) the API asks for
        self.api_key: tuple[str, str] | None = None  # (header name, key) the API asks for
        self.relative_links = False  # Link headers with a path only, as RFC 8288 allows
        self.twilio_account: tuple[str, str] | None = None  # (AccountSid, AuthToken)
        self.cn = CnProviders()
        # False plays a provider that ignores Idempotency-Key on POST /v1/<channel>: a repeat
        # is delivered again and counted in `double_sends`.
        self.dedupe_keys = True
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._local = threading.local()
        handler = type("Handler", (_Handler,), {"app": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def roll(self, rate: float) -> bool:
        with self._lock:
            return rate > 0 and self._random.random() < rate

    def events_after(self, cursor: int, limit: int) -> list[dict[str, Any]]:
        if self.source_db is None:
            return []
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.source_db, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        rows = connection.execute(
            "SELECT seq, event_uuid, uid, type, ts FROM src_events WHERE seq > ? ORDER BY seq"
            " LIMIT ?",
            (cursor, limit),
        ).fetchall()
        return [dict(row) for row in rows]

    def count_unavailable(self) -> None:
        with self._lock:
            self.recorder.unavailable += 1

    def refuses(self, key: str) -> bool:
        """Whether `key` is one the provider rejects as invalid; counts each refusal."""
        if key not in self.faults.reject_keys:
            return False
        with self._lock:
            self.recorder.refusals[key] += 1
        return True

    def deliver(
        self, key: str, body: dict[str, Any], headers: dict[str, str], idempotent: bool = True
    ) -> dict[str, Any] | None:
        """Record a delivery under `key`; the first body when the key was already delivered
        (a provider that deduplicates answers with it; one that doesn't delivers again)."""
        with self._lock:
            self.recorder.requests += 1
            self.recorder.headers.append(headers)
            earlier = self.recorder.deliveries.get(key)
            if earlier is not None:
                if idempotent:
                    self.recorder.duplicates += 1
                    return earlier
                self.recorder.double_sends += 1
            self.recorder.deliveries.setdefault(key, body)
            self.recorder.arrivals.append(time.monotonic())
            return None

    def sent_to(self, recipient: str, since: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                body
                for body in self.recorder.deliveries.values()
                if body.get("to") == recipient and body.get("day", "") >= since
            ]


class _Handler(BaseHTTPRequestHandler):
    app: LocalServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_GET(self) -> None:
        if self._faulted():
            return
        answer = self.app.cn.get(self.path, dict(self.headers.items()))
        if answer is not None:
            self._json(*answer)
            return
        if not TWILIO_MESSAGES.fullmatch(urlparse(self.path).path) and not self._authorised():
            return
        parsed = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        if TWILIO_MESSAGES.fullmatch(parsed.path):
            self._twilio_list(query)
            return
        limit = int(query.get("limit", "1000"))
        if parsed.path == "/events":
            items = self.app.events_after(int(query.get("cursor") or 0), limit)
            cursor = items[-1]["seq"] if len(items) == limit else None
            self._json(200, {"items": items, "next_cursor": cursor})
        elif parsed.path == "/events/pages":
            page = int(query.get("page", "1"))
            items = self.app.events_after((page - 1) * limit, limit)
            self._json(200, {"data": {"items": items}, "page": page})
        elif parsed.path == "/events/linked":
            after = int(query.get("after") or 0)
            items = self.app.events_after(after, limit)
            headers = {}
            if len(items) == limit:
                next_url = f"/events/linked?after={items[-1]['seq']}&limit={limit}"
                if not self.app.relative_links:
                    next_url = self.app.url + next_url
                headers["Link"] = f'<{next_url}>; rel="next"'
            self._json(200, {"items": items}, headers)
        elif parsed.path == "/":  # the company's web front page, not its API
            html = b"<!doctype html><title>Sign in</title><form>...</form>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        path = urlparse(self.path).path
        if self._faulted():
            return
        answer = self.app.cn.post(self.path, dict(self.headers.items()), raw)
        if answer is not None:
            self._json(*answer)
        elif TWILIO_MESSAGES.fullmatch(path):
            self._twilio_send(raw)
        elif path == "/emails":
            self._resend_send(raw)
        elif self._authorised():
            self._generic_send(raw)

    def _generic_send(self, raw: bytes) -> None:
        key = self.headers.get("Idempotency-Key", "")
        if not key:
            self._json(400, {"error": "Idempotency-Key header is required"})
            return
        if self.app.refuses(key):
            self._json(400, {"error": "invalid recipient"})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": "body is not JSON"})
            return
        self.app.deliver(key, body, dict(self.headers.items()), idempotent=self.app.dedupe_keys)
        self._json(200, {"id": f"msg-{key}"})

    def _resend_send(self, raw: bytes) -> None:
        if not self._authorised():
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._resend_error(400, "invalid_json", "The request body is not valid JSON.")
            return
        for name in ("from", "to", "subject"):
            if not body.get(name):
                self._resend_error(422, "validation_error", f"Missing `{name}` field.")
                return
        if not (body.get("html") or body.get("text")):
            self._resend_error(422, "validation_error", "Missing `html` or `text` field.")
            return
        if any(self.app.refuses(to) for to in body["to"]):
            self._resend_error(422, "validation_error", "Invalid `to` field.")
            return
        key = self.headers.get("Idempotency-Key") or str(uuid.uuid4())
        body["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
        earlier = self.app.deliver(key, body, dict(self.headers.items()))
        if earlier is not None and {**earlier, "id": ""} != {**body, "id": ""}:
            self._resend_error(
                409, "invalid_idempotent_request", "Same idempotency key, different payload."
            )
            return
        self._json(200, {"id": (earlier or body)["id"]})

    def _resend_error(self, status: int, name: str, message: str) -> None:
        self._json(status, {"statusCode": status, "name": name, "message": message})

    def _twilio_send(self, raw: bytes) -> None:
        if not self._twilio_authorised():
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        for name, code in (("To", 21604), ("From", 21603), ("Body", 21602)):
            if not form.get(name):
                self._twilio_error(400, code, f"A '{name}' parameter is required.")
                return
        if self.app.refuses(form["To"]):
            self._twilio_error(400, 21211, f"Invalid 'To' Phone Number: {form['To'][:4]}***")
            return
        now = time.gmtime()
        message = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": self._twilio_sid(),
            "to": form["To"],
            "from": form["From"],
            "body": form["Body"],
            "status": "queued",
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", now),
            "day": time.strftime("%Y-%m-%d", now),
        }
        self.app.deliver(
            f"{form['To']}|{form['Body']}", message, dict(self.headers.items()), idempotent=False
        )
        self._json(201, message)

    def _twilio_list(self, query: dict[str, str]) -> None:
        if not self._twilio_authorised():
            return
        found = self.app.sent_to(query.get("To", ""), query.get("DateSent>", ""))
        self._json(200, {"messages": found, "next_page_uri": None, "page": 0})

    def _twilio_sid(self) -> str:
        match = TWILIO_MESSAGES.fullmatch(urlparse(self.path).path)
        return match.group(1) if match else ""

    def _twilio_authorised(self) -> bool:
        account = self.app.twilio_account
        if account is None:
            return True
        expected = "Basic " + base64.b64encode(f"{account[0]}:{account[1]}".encode()).decode()
        if self.headers.get("Authorization") != expected or self._twilio_sid() != account[0]:
            self._twilio_error(401, 20003, "Authenticate")
            return False
        return True

    def _twilio_error(self, status: int, code: int, message: str) -> None:
        more_info = f"https://www.twilio.com/docs/errors/{code}"
        self._json(
            status, {"code": code, "message": message, "more_info": more_info, "status": status}
        )

    def _authorised(self) -> bool:
        token = self.app.bearer_token
        basic = self.app.basic_auth
        key = self.app.api_key
        if (
            (token and self.headers.get("Authorization") != f"Bearer {token}")
            or (basic and self._basic_credentials() != basic)
            or (
                key
                and not hmac.compare_digest(
                    (self.headers.get(key[0]) or "").encode(), key[1].encode()
                )
            )
        ):
            headers = {"WWW-Authenticate": 'Basic realm="api"'} if basic else {}
            self._json(401, {"error": "bad credentials"}, headers)
            return False
        return True

    def _basic_credentials(self) -> tuple[str, str] | None:
        """(user, password) from an RFC 7617 Authorization header, decoded as a server does:
        the scheme in any case, base64 of UTF-8 'user:password' split at the first colon."""
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        user, colon, password = decoded.partition(":")
        return (user, password) if colon else None

    def _faulted(self) -> bool:
        faults = self.app.faults
        if faults.latency_seconds:
            time.sleep(faults.latency_seconds)
        if self.app.roll(faults.drop_rate):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # close() alone leaves the fd open
            return True
        if self.app.roll(faults.rate_limit_rate):
            self._json(
                429, {"error": "slow down"}, {"Retry-After": str(faults.retry_after_seconds)}
            )
            return True
        if self.app.roll(faults.error_rate):
            self.app.count_unavailable()
            self._json(503, {"error": "unavailable"})
            return True
        return False

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
