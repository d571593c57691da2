"""A real local HTTP server that plays the company's HTTP API and the message providers.

- `GET /events?cursor=&limit=` pages the source database's events by cursor;
  `/events/pages?page=&limit=` by page number; `/events/linked` by a Link header.
- `POST /v1/<channel>` accepts a message like a provider would, deduplicating on the
  `Idempotency-Key` header, so `deliveries` counts what a real provider would deliver.
- Fault switches for tests and benchmarks: latency, a 5xx rate, a 429 rate with
  Retry-After, a dropped-connection rate, and a set of keys to reject permanently (4xx).
"""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Faults:
    latency_seconds: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_seconds: int = 1
    drop_rate: float = 0.0
    reject_keys: set[str] = field(default_factory=set)


@dataclass
class Recorder:
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> first body
    requests: int = 0
    duplicates: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # monotonic time of each delivery


class LocalServer:
    def __init__(self, source_db: Path | None = None, seed: int = 0) -> None:
        self.source_db = source_db
        self.faults = Faults()
        self.recorder = Recorder()
        self.bearer_token: str | None = None
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

    def deliver(self, key: str, body: dict[str, Any], headers: dict[str, str]) -> bool:
        """Record a delivery; False when the key was already delivered."""
        with self._lock:
            self.recorder.requests += 1
            self.recorder.headers.append(headers)
            if key in self.recorder.deliveries:
                self.recorder.duplicates += 1
                return False
            self.recorder.deliveries[key] = body
            self.recorder.arrivals.append(time.monotonic())
            return True


class _Handler(BaseHTTPRequestHandler):
    app: LocalServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_GET(self) -> None:
        if self._faulted() or not self._authorised():
            return
        parsed = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
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
                next_url = f"{self.app.url}/events/linked?after={items[-1]['seq']}&limit={limit}"
                headers["Link"] = f'<{next_url}>; rel="next"'
            self._json(200, {"items": items}, headers)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self._faulted() or not self._authorised():
            return
        key = self.headers.get("Idempotency-Key", "")
        if not key:
            self._json(400, {"error": "Idempotency-Key header is required"})
            return
        if key in self.app.faults.reject_keys:
            self._json(400, {"error": "invalid recipient"})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": "body is not JSON"})
            return
        self.app.deliver(key, body, dict(self.headers.items()))
        self._json(200, {"id": f"msg-{key}"})

    def _authorised(self) -> bool:
        token = self.app.bearer_token
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            self._json(401, {"error": "bad credentials"})
            return False
        return True

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
