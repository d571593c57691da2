"""Reading an HTTP API source page by page (`paginators` says which page follows)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import orjson

from yunying.errors import ConfigError
from yunying.http_client import request, with_retries
from yunying.sources.config import HttpSource
from yunying.sources.read.batch import Batch
from yunying.sources.read.paginators import Request, dig, paginator


def read_http(source: HttpSource, watermark: str | None) -> Iterator[Batch]:
    pages = paginator(source)
    with httpx.Client(timeout=source.timeout_seconds, headers=_auth_headers(source)) as client:
        request: Request | None = pages.first(watermark)
        # Pages are gathered into batches of about batch_size: each batch is a transaction.
        pending: list[Any] = []
        pending_mark: str | None = None
        previous: list[Any] = []
        while request is not None:
            response = with_retries(
                partial(_get, client, request.url, dict(request.params)), attempts=6
            )
            body = _json_body(source, response)
            items = dig(body, source.items_path)
            if not isinstance(items, list):
                raise ConfigError(
                    f"source {source.name}: items_path {source.items_path!r} is no list"
                )
            if items and items == previous:  # it would go on for ever
                raise ConfigError(
                    f"source {source.name}: the API gave the same page twice in a row"
                    f" ({response.url}); check pagination and next_cursor_path"
                )
            previous = items
            following, mark = pages.following(request, response, body, items)
            request = following if items else None  # an empty page is the last
            pending += items
            pending_mark = mark or pending_mark
            if len(pending) >= source.batch_size or request is None:
                if pending or pending_mark:
                    yield Batch(pending, pending_mark)
                pending, pending_mark = [], None


def _json_body(source: HttpSource, response: httpx.Response) -> Any:
    # orjson decodes a page in about half the standard library's time, during which
    # Python's GIL is held.
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:  # not UTF-8, NaN, a huge number: read as the stdlib reads
        pass
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise ConfigError(
            f"source {source.name}: {response.url} answered with no JSON ({kind}):"
            f" {response.text[:200]!r}"
        ) from None


def _get(client: httpx.Client, url: str, params: dict[str, Any]) -> httpx.Response:
    # Empty params would make httpx drop the query string of a Link URL.
    return request(client, "GET", url, params=params or None)


def _auth_headers(source: HttpSource) -> dict[str, str]:
    if source.auth == "none" or source.token_env is None:
        return {}
    secret = os.environ.get(source.token_env)
    if not secret:
        raise ConfigError(f"source {source.name}: env var {source.token_env} is not set")
    if source.auth == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    if source.auth == "basic":
        user, _, password = secret.partition(":")
        return {"Authorization": httpx.BasicAuth(user, password)._auth_header}
    return {source.header_name: secret}
