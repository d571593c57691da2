"""The report as people read it: in a real headless browser (Debian's chromium driven by
Playwright) at desktop and phone widths, in both locales; sparse sections say "no data";
the Prefect artifact is readable."""

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.builders import company_settings, pull_all
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.reports.artifact import report_markdown
from yunying.reports.daily_email import publish_report, words_for
from yunying.reports.kpis import compute_kpis
from yunying.store.engine import session_scope

CHROMIUM = "/usr/bin/chromium"
DAY = dt.date(2026, 10, 31)
WIDTHS = {"desktop": 1280, "phone": 390}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the browser check is required)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def _publish(engine: Engine, settings: Settings, locale: str, folder: Path) -> Path:
    settings = settings.model_copy(update={"default_locale": locale, "report_dir": folder})
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, settings.zone)
    with session_scope(engine) as session:
        return publish_report(session, settings, kpis).html_path


def _look(browser: Any, html: Path, width: int, shot: Path) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(shot), full_page=True)
        return dict(
            page.evaluate(
                """() => ({
                scrollWidth: document.documentElement.scrollWidth,
                viewport: document.querySelector('meta[name=viewport]')?.content,
                headline: document.getElementById('headline')?.innerText,
                images: [...document.images].map(i => ({
                    loaded: i.complete && i.naturalWidth > 0,
                    right: i.getBoundingClientRect().right})),
                fontSize: parseFloat(getComputedStyle(document.body).fontSize),
            })"""
            )
        )
    finally:
        page.close()


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_report_reads_at_desktop_and_phone_widths(
    engine: Engine, settings: Settings, tmp_path: Path, browser: Any, locale: str
) -> None:
    settings = company_settings(settings, tmp_path, users=300)
    pull_all(engine, settings)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
    html = _publish(engine, settings, locale, tmp_path / "reports")
    shots = Path(os.environ.get("REPORT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    for name, width in WIDTHS.items():
        seen = _look(browser, html, width, shots / f"report-{locale}-{name}.png")
        assert seen["viewport"] == "width=device-width, initial-scale=1"
        assert seen["scrollWidth"] <= width  # no horizontal scrolling, even on a phone
        assert seen["images"] and all(i["loaded"] and i["right"] <= width for i in seen["images"])
        assert seen["headline"]
    text = html.read_text(encoding="utf-8")
    assert 'width="640"' not in text
    if locale == "zh-CN":
        assert '<html lang="zh-CN">' in text and "日活跃用户" in text and "正常范围" in text
    else:
        assert '<html lang="en">' in text and "Daily active users" in text


def test_a_sparse_report_says_no_data_instead_of_empty_charts(
    engine: Engine, settings: Settings, tmp_path: Path, browser: Any
) -> None:
    for locale, no_data, no_run in (
        ("en", "No data for this date.", "No lifecycle run for this date."),
        ("zh-CN", "该日期暂无数据。", "该日期没有生命周期计算。"),
    ):
        html = _publish(engine, settings, locale, tmp_path / locale)
        text = html.read_text(encoding="utf-8")
        assert no_run in text
        assert "<img" not in text  # no empty chart with a negative axis
        # trend, funnel, retention, reactivation, rewards, flags, messages: each says so
        assert text.count(no_data) >= 7
        assert not list(html.parent.glob("*.png"))
        seen = _look(browser, html, 390, tmp_path / f"sparse-{locale}.png")
        assert seen["scrollWidth"] <= 390


def test_the_artifact_has_a_headline_flags_and_formatted_numbers(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = company_settings(settings, tmp_path, users=300)
    pull_all(engine, settings)
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, settings.zone)
    zh = report_markdown(kpis, words_for(settings, kpis), "daily.html")
    en_settings = settings.model_copy(update={"default_locale": "en"})
    en = report_markdown(kpis, words_for(en_settings, kpis), "daily.html")
    assert zh.startswith("# 运营日报 · 2026年10月31日") and "| 日活跃用户 |" in zh
    assert en.startswith("# Daily report · Oct 31, 2026") and "| Daily active users |" in en
    assert "_" not in en.split("Archived at")[0]  # no snake_case names
    assert f"| Revenue | CN¥{kpis.revenue:,.2f} |" in en  # "CN¥": Babel tells yuan from yen in en
    assert kpis.stickiness is not None and str(kpis.stickiness) not in en  # not 0.316163...
    assert f"| Stickiness (DAU/MAU) | {kpis.stickiness * 100:.1f}% |" in en
    assert "| Normal range | Status |" in en and "## Flags" in en
    assert en.splitlines()[2].startswith("**") and en.splitlines()[2].endswith("**")


def test_the_headline_says_what_moved_which_way_and_since_when(
    engine: Engine, settings: Settings
) -> None:
    from tests.integration.test_report import _active_users, _weekly

    saturday = dt.date(2026, 10, 31)
    _active_users(engine, settings, _weekly(70, saturday))
    monday = saturday + dt.timedelta(days=2)
    _active_users(engine, settings, {saturday + dt.timedelta(days=1): 420, monday: 420})
    with session_scope(engine) as session:
        kpis = compute_kpis(session, monday, settings.zone)
    dau = next(f for f in kpis.flags if f.kpi == "dau")
    assert (dau.status, dau.since) == ("above", saturday + dt.timedelta(days=1))
    from yunying.reports.headline import headline
    from yunying.reports.words import Words

    en = headline(kpis, Words("en", "CNY"))
    assert en.startswith("Beyond normal: Daily active users 420 is above its normal range (")
    assert "since Nov 1, 2026" in en
    zh = headline(kpis, Words("zh-CN", "CNY"))
    assert zh.startswith("超出正常范围：日活跃用户 420，自 2026年11月1日 起高于正常范围（")
    assert headline(kpis.__class__(**{**kpis.__dict__, "flags": []}), Words("en", "CNY")) == (
        "Nothing moved beyond its normal range today."
    )
