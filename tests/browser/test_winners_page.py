"""The public winners page (公示) in headless Chromium (Debian's, driven by Playwright), served
by `yunying web` from the store after a lottery was paid and then corrected: it renders with
its own styles, fits a 390 px phone without sideways scrolling, and its link to the earlier
version opens that version. Screenshots go to tmp_path, or to $WEB_SCREENSHOT_DIR when set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.browser.test_recipient_pages import browser, shots  # noqa: F401 (fixtures)
from tests.integration.test_web import site_settings
from tests.integration.test_web_winners import lottery, pay_and_publish
from tests.rig import WebServer, free_port
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.rewards.publish import publications
from yunying.store.engine import session_scope
from yunying.web.app import create_app

WIDTHS = ((1280, 800), (390, 844))


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_winners_page_renders_on_a_desktop_and_a_phone(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    local_server: LocalServer,
    browser: Any,  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    chosen = lottery(engine, settings, tmp_path, people=8)
    # The provider refuses every payout the first time (version 1); the retry pays them all
    # (version 2, the correction).
    local_server.faults.reject_keys.update(f"{chosen.name}:w{i}:points" for i in range(8))
    pay_and_publish(engine, chosen, local_server)
    local_server.faults.reject_keys.clear()
    pay_and_publish(engine, chosen, local_server)
    with session_scope(engine) as session:
        versions = [(p.kind, p.version) for p in publications(session, chosen.name, "winners")]
    assert versions == [("winners", 1), ("winners", 2)]

    port = free_port()
    with WebServer(create_app(site_settings(settings, port)), port) as server:
        url = f"{server.url}/rewards/{chosen.name}/"
        for width, height in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": height})
            refused: list[str] = []
            page.on("console", lambda m, into=refused: into.append(m.text))
            answer = page.goto(url)
            assert answer is not None and answer.status == 200
            assert page.get_by_role("heading", level=1).inner_text().endswith("Winners")
            assert page.get_by_role("cell", name="paid", exact=True).count() == 3
            # The page's inline styles apply (the service's policy lets them through)…
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "720px"
            assert refused == []  # …and Chromium reported no blocked style or resource.
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{overflow}px of sideways scrolling at {width} px"
            page.screenshot(path=str(shots / f"winners-{width}.png"), full_page=True)
            page.close()

        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(url)
        page.get_by_role("link", name="version 1").click()
        page.wait_for_url(url + "winners.v1.html")
        assert page.get_by_role("cell", name="payment failed").count() == 3
        page.screenshot(path=str(shots / "winners-v1-390.png"), full_page=True)
        page.close()
