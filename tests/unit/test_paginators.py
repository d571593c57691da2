"""Each pagination style: where a pull starts from its watermark, which page follows an
answer, and the watermark that answer leaves, without changing the request it was given."""

import httpx

from yunying.sources.config import HttpSource
from yunying.sources.read.paginators import Request, paginator


def _source(pagination: str) -> HttpSource:
    return HttpSource(
        name="api", entity="events", url="https://api.test/events", pagination=pagination
    )


def _answer(request: Request, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        200, headers=headers, request=httpx.Request("GET", request.url, params=request.params)
    )


def test_cursor_pages_send_the_cursor_the_answer_names() -> None:
    pages = paginator(_source("cursor"))
    assert pages.first(None) == Request("https://api.test/events", {"limit": 1000})
    first = pages.first("c9")
    assert first.params == {"limit": 1000, "cursor": "c9"}
    following, mark = pages.following(first, _answer(first), {"next_cursor": "c10"}, [1])
    assert following == Request(first.url, {"limit": 1000, "cursor": "c10"})
    assert mark == "c10"
    assert first.params["cursor"] == "c9"
    assert pages.following(first, _answer(first), {"next_cursor": None}, [1]) == (None, None)


def test_numbered_pages_resume_at_the_last_page_with_items() -> None:
    pages = paginator(_source("page"))
    assert pages.first(None).params == {"limit": 1000, "page": 1}
    third = pages.first("3")
    assert third.params == {"limit": 1000, "page": 3}
    following, mark = pages.following(third, _answer(third), {}, [1])
    assert following is not None and following.params["page"] == 4
    assert mark == "3"
    assert pages.following(third, _answer(third), {}, [])[1] is None


def test_link_pages_follow_the_next_link_and_resume_at_it() -> None:
    pages = paginator(_source("link"))
    assert pages.first(None) == Request("https://api.test/events", {"limit": 1000})
    resumed = pages.first("https://api.test/events?after=7")
    assert resumed == Request("https://api.test/events?after=7", {})
    link = {"Link": '</events?after=9>; rel="next"'}
    following, mark = pages.following(resumed, _answer(resumed, link), {}, [1])
    assert following == Request("https://api.test/events?after=9", {})
    assert mark == "https://api.test/events?after=9"
    assert pages.following(resumed, _answer(resumed), {}, [1]) == (None, None)
