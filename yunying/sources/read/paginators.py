"""How an HTTP source's pages follow one another: one class per style behind `Paginator`.

A paginator gives the first request (resuming from the watermark) and, from each answer, the
next request and the watermark that answer leaves. Requests are values: nothing a caller
holds is changed."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import httpx

from yunying.sources.config import HttpSource


class Request(NamedTuple):
    url: str
    params: dict[str, Any]


class Paginator(Protocol):
    def first(self, watermark: str | None) -> Request:
        """The first page to read, after what the watermark says was read."""

    def following(
        self, request: Request, response: httpx.Response, body: Any, items: list[Any]
    ) -> tuple[Request | None, str | None]:
        """The page after the one `request` read (None: that was the last) and the
        watermark reading it leaves (None: the one before stays)."""


def dig(body: Any, path: str) -> Any:
    """The value at a dotted path in a JSON body, or None."""
    for part in path.split(".") if path else []:
        body = body.get(part) if isinstance(body, dict) else None
    return body


class CursorPaginator:
    """The answer names the next page's cursor (`next_cursor_path`), sent as `cursor_param`;
    the watermark is the last cursor."""

    def __init__(self, source: HttpSource) -> None:
        self.source = source

    def first(self, watermark: str | None) -> Request:
        params: dict[str, Any] = {self.source.page_size_param: self.source.page_size}
        if watermark:
            params[self.source.cursor_param] = watermark
        return Request(self.source.url, params)

    def following(
        self, request: Request, response: httpx.Response, body: Any, items: list[Any]
    ) -> tuple[Request | None, str | None]:
        cursor = dig(body, self.source.next_cursor_path)
        if not cursor:
            return None, None
        return Request(request.url, {**request.params, self.source.cursor_param: cursor}), str(
            cursor
        )


class PagePaginator:
    """Pages numbered from 1 (`page_param`). The watermark is the last page that had items:
    it may gain more, so a pull starts there again (its items are upserted, not added
    twice) instead of from page 1."""

    def __init__(self, source: HttpSource) -> None:
        self.source = source

    def first(self, watermark: str | None) -> Request:
        page = int(watermark) if watermark and watermark.isdigit() else 1
        params = {self.source.page_size_param: self.source.page_size, self.source.page_param: page}
        return Request(self.source.url, params)

    def following(
        self, request: Request, response: httpx.Response, body: Any, items: list[Any]
    ) -> tuple[Request | None, str | None]:
        page = int(request.params[self.source.page_param])
        following = Request(request.url, {**request.params, self.source.page_param: page + 1})
        return following, str(page) if items else None


class LinkPaginator:
    """The answer's `Link: <...>; rel="next"` header names the next page's whole URL (maybe
    relative to the page's); the watermark is that URL."""

    def __init__(self, source: HttpSource) -> None:
        self.source = source

    def first(self, watermark: str | None) -> Request:
        if watermark:
            return Request(watermark, {})
        return Request(self.source.url, {self.source.page_size_param: self.source.page_size})

    def following(
        self, request: Request, response: httpx.Response, body: Any, items: list[Any]
    ) -> tuple[Request | None, str | None]:
        following = response.links.get("next", {}).get("url")
        if not following:
            return None, None
        following = str(response.url.join(following))
        return Request(following, {}), following


PAGINATORS: dict[str, type[CursorPaginator | PagePaginator | LinkPaginator]] = {
    "cursor": CursorPaginator,
    "page": PagePaginator,
    "link": LinkPaginator,
}


def paginator(source: HttpSource) -> Paginator:
    return PAGINATORS[source.pagination](source)
