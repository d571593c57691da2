"""What keeps the public service safe: security headers, per-IP rate limits, CSRF tokens.

The rate limit is counted in each instance's memory (a fixed one-minute window per client
IP): N instances behind a proxy allow N times the limit, which still stops a single client
hammering the pages; the store is never touched to count. Signed provider callbacks and
/healthz are not limited.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSRF_COOKIE = "yy_csrf"

# Pages carry the signed token in their URL: never let it leak through a Referer, and
# never let the pages be framed (click-jacking the confirm button).
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS + ([HSTS] if https else [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class RateLimit:
    """At most `per_minute` requests per client IP and minute on paths not exempted."""

    def __init__(
        self,
        app: ASGIApp,
        per_minute: int,
        exempt: tuple[str, ...],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.per_minute = per_minute
        self.exempt = exempt
        self.clock = clock
        self.window = 0
        self.counts: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        now = self.clock()
        window = int(now // 60)
        if window != self.window:  # a new minute: forget the last one's counts
            self.window, self.counts = window, {}
        client = (scope.get("client") or ("unknown", 0))[0]
        self.counts[client] = self.counts.get(client, 0) + 1
        if self.counts[client] > self.per_minute:
            retry_after = str(int(60 - now % 60) + 1).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"retry-after", retry_after),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"too many requests\n"})
            return
        await self.app(scope, receive, send)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, form_value: str | None) -> bool:
    """Double submit: the form's hidden value must equal the page's SameSite=Strict cookie,
    which another site can neither read nor make the browser send."""
    return bool(cookie and form_value) and hmac.compare_digest(str(cookie), str(form_value))
