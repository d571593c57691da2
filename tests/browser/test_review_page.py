"""The review page (复盘) in headless Chromium, with the demo's figures: at desktop and 390 px
phone widths, in both locales, no table is wider than the page (no column cut off behind a
sideways scroll) and the cost table has no empty header row. Screenshots go to tmp_path, or
to $WEB_SCREENSHOT_DIR when set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_recipient_pages import browser, shots  # noqa: F401 (fixtures)
from tests.unit.test_review_verdict import _review
from yunying.reports.review import Arm, Comparison
from yunying.reports.review_page import html, page
from yunying.reports.words import Words

WIDTHS = (1280, 390)


def _demo_like() -> Any:
    review = _review(94, 422)
    held = Arm(40, 5)
    review.overall = Comparison("overall", review.overall.treated, held)
    review.variants = [
        Comparison("gift", Arm(192, 56), held),
        Comparison("news", Arm(230, 38), held),
    ]
    review.leader = Comparison("gift", Arm(192, 56), Arm(230, 38))
    zones = [("America/Los_Angeles", 46, 2), ("Asia/Shanghai", 329, 33), ("Europe/London", 47, 5)]
    review.slices = {
        "tier": [Comparison("low", Arm(422, 94), held)],
        "locale": [
            Comparison("en", Arm(93, 20), Arm(7, 1)),
            Comparison("zh-CN", Arm(329, 74), Arm(33, 4)),
        ],
        "channel": [Comparison("email", Arm(372, 80), Arm(36, 4))],
        "timezone": [Comparison(z, Arm(n, n // 5), Arm(h, 1)) for z, n, h in zones],
    }
    return review


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_review_page_fits_a_phone_and_a_desktop(
    browser: Any,  # noqa: F811
    shots: Path,  # noqa: F811
    tmp_path: Path,
    locale: str,
) -> None:
    file = tmp_path / f"review-{locale}.html"
    file.write_text(html(page(_demo_like(), Words(locale, "CNY")), locale), encoding="utf-8")
    for width in WIDTHS:
        view = browser.new_page(viewport={"width": width, "height": 900})
        view.goto(file.as_uri())
        seen = view.evaluate(
            """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            tables: [...document.querySelectorAll('table')].map(
                t => t.scrollWidth - t.parentElement.clientWidth),
            emptyHeaders: [...document.querySelectorAll('tr')].filter(
                r => r.querySelector('th') && !r.innerText.trim()).length,
        })"""
        )
        view.screenshot(path=str(shots / f"review-{locale}-{width}.png"), full_page=True)
        view.close()
        assert seen["scrollWidth"] <= width
        assert max(seen["tables"]) <= 0, f"a table overflows at {width} px: {seen['tables']}"
        assert seen["emptyHeaders"] == 0
