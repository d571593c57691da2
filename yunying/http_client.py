"""HTTP calls to the company's APIs and to providers: one client per task, errors translated.

Translation: timeouts, connection errors and 5xx -> TransientError; 429 -> RateLimited with
the Retry-After seconds; any other 4xx -> ProviderRejected (permanent, with a body excerpt).
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from yunying.errors import ProviderRejected, RateLimited, TransientError

T = TypeVar("T")


def check_response(response: httpx.Response) -> httpx.Response:
    status = response.status_code
    if status < 400:
        return response
    if status == 429:
        raise RateLimited(
            "HTTP 429 Too Many Requests", retry_after_seconds(response.headers.get("Retry-After"))
        )
    where = address(response.request.url)
    if status >= 500:
        raise TransientError(f"HTTP {status} from {where}")
    raise ProviderRejected(status, _plain(response.text)[:200], where)


def address(url: httpx.URL) -> str:
    """Host, port and path of a URL, for errors and logs: never its query or user info,
    which may carry a token."""
    return f"{url.host}{f':{url.port}' if url.port else ''}{url.path}"


def _plain(body: str) -> str:
    """An error page's text without its markup, on one line."""
    return " ".join(re.sub(r"<[^>]*>", " ", body).split())


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's delay: seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def request(client: httpx.Client, method: str, url: str, **kwargs: object) -> httpx.Response:
    try:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        raise TransientError(f"{type(exc).__name__} calling {address(httpx.URL(url))}") from exc
    return check_response(response)


def backoff(
    attempt: int, retry_after: float | None, base_delay: float = 0.2, max_delay: float = 30.0
) -> float:
    """Seconds to wait before retry number `attempt`: the server's Retry-After when it gave
    one, else jittered exponential backoff."""
    if retry_after is not None:
        return min(max_delay, retry_after)
    delay: float = min(max_delay, base_delay * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.5)


def with_retries(
    call: Callable[[], T],
    attempts: int = 4,
    base_delay: float = 0.2,
    max_delay: float = 30.0,
) -> T:
    """Retry a call on TransientError with jittered exponential backoff, honouring 429s."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except TransientError as exc:
            if attempt == attempts:
                raise
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            time.sleep(backoff(attempt, retry_after, base_delay, max_delay))
    raise AssertionError("unreachable")
