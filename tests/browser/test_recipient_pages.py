"""The recipient's pages in headless Chromium (Debian's, driven by Playwright): open the
unsubscribe link of an email a send wrote, read it in zh-CN and en, confirm, and change a
topic on the preference page. Screenshots at 1280 and 390 px go to tmp_path, or to
$WEB_SCREENSHOT_DIR when set (to look at them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.builders import silent_users
from tests.integration.test_web import (
    send_winback,
    sent_emails,
    site_settings,
    suppressions,
    unsubscribe_link,
)
from tests.rig import WebServer, free_port
from yunying.config import Settings
from yunying.store.engine import session_scope
from yunying.store.models import TopicSuppression
from yunying.web.app import create_app

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright package is missing (make install)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (CI=true: browser tests are required)")
        pytest.skip(problem)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    keep = os.environ.get("WEB_SCREENSHOT_DIR")
    if keep:
        shutil.copytree(folder, keep, dirs_exist_ok=True)


def snap(browser: Any, url: str, folder: Path, name: str) -> None:
    for width, height in ((1280, 800), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        page.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_unsubscribe_in_a_browser_then_one_click_without_one(
    engine: Engine, settings: Settings, browser: Any, shots: Path
) -> None:
    port = free_port()
    configured = site_settings(settings, port)
    silent_users(engine, configured, 2)  # s00000 reads zh-CN, s00001 en
    send_winback(engine, configured, 2)
    links = {str(m["To"]): unsubscribe_link(m) for m in sent_emails(configured)}
    with WebServer(create_app(configured), port):
        chinese = links["s0@example.com"]
        snap(browser, chinese, shots, "unsubscribe-zh-CN")
        snap(browser, links["s1@example.com"], shots, "unsubscribe-en")
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(chinese)
        assert page.get_by_role("button", name="确认退订").is_visible()
        page.get_by_role("link", name="English").click()
        assert page.get_by_role("button", name="Unsubscribe").is_visible()
        assert suppressions(engine) == set()  # reading the page changed nothing
        page.get_by_role("button", name="Unsubscribe").click()
        assert "You are unsubscribed" in page.get_by_role("status").inner_text()
        page.screenshot(path=str(shots / "unsubscribed-en-390.png"), full_page=True)
        page.close()
        assert suppressions(engine) == {("s00000", "email", "unsubscribed")}

        # The same link, as a mail client's one-click POST: no browser, no cookie.
        for link in (chinese, links["s1@example.com"]):
            answer = httpx.post(link, content=b"List-Unsubscribe=One-Click")
            assert answer.status_code == 200 and not answer.has_redirect_location
    assert suppressions(engine) == {
        ("s00000", "email", "unsubscribed"),
        ("s00001", "email", "unsubscribed"),
    }


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_preference_page_changes_a_topic_in_a_browser(
    engine: Engine, settings: Settings, browser: Any, shots: Path
) -> None:
    port = free_port()
    configured = site_settings(settings, port)
    silent_users(engine, configured, 1)
    send_winback(engine, configured, 1)
    link = unsubscribe_link(sent_emails(configured)[0]).replace("/unsubscribe", "/preferences")
    with WebServer(create_app(configured), port):
        snap(browser, link, shots, "preferences-zh-CN")
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(link)
        topic = page.get_by_role("checkbox", name="回归优惠与提醒")
        assert topic.is_checked()
        topic.uncheck()
        page.get_by_role("button", name="保存").click()
        assert "已保存" in page.get_by_role("status").inner_text()
        assert not page.get_by_role("checkbox", name="回归优惠与提醒").is_checked()
        assert page.get_by_role("checkbox", name="邮件").is_checked()
        page.screenshot(path=str(shots / "preferences-saved-zh-CN-1280.png"), full_page=True)
        page.close()
    with session_scope(engine) as session:
        saved = session.execute(select(TopicSuppression.user_id, TopicSuppression.topic)).all()
    assert ("s00000", "winback") in set(saved)
    assert suppressions(engine) == set()
