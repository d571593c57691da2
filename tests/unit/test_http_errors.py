"""What a failed HTTP call says: where it went (never a token in its query) and the error
page's text, not its markup."""

from __future__ import annotations

import httpx
import pytest

from tests.rig import free_port
from yunying.errors import ProviderRejected, TransientError
from yunying.http_client import check_response, request

PAGE = (
    "<!DOCTYPE HTML>\n<html><head><title>Error</title></head>\n<body><h1>404 Not Found</h1></body>"
)


def _answer(status: int, body: str, url: str) -> httpx.Response:
    return httpx.Response(status, text=body, request=httpx.Request("GET", url))


def test_a_4xx_names_the_address_and_the_page_text() -> None:
    url = "https://api.example.com:8443/v1/users?access_token=s3cret&page=2"
    with pytest.raises(ProviderRejected) as rejected:
        check_response(_answer(404, PAGE, url))
    said = str(rejected.value)
    assert said == "api.example.com:8443/v1/users answered HTTP 404: Error 404 Not Found"
    assert "s3cret" not in said


def test_a_5xx_and_a_refused_connection_name_the_address() -> None:
    with pytest.raises(TransientError, match=r"^HTTP 503 from api.example.com/v1/users$"):
        check_response(_answer(503, "", "https://user:pw@api.example.com/v1/users?token=t"))
    port = free_port()
    with httpx.Client() as client, pytest.raises(TransientError) as refused:
        request(client, "GET", f"http://127.0.0.1:{port}/v1/events?token=t")
    assert str(refused.value) == f"ConnectError calling 127.0.0.1:{port}/v1/events"
