"""The review's target verdict: "met" only when the whole 95% interval clears the target,
"not met" only when the whole interval is below it, "not shown yet" while the interval
includes it — in English and Chinese, on the page every channel renders (artifact, CLI,
HTML, email)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from yunying.reports.review import Arm, Comparison, Funnel, Review
from yunying.reports.review_page import leader_line, markdown, page
from yunying.reports.uplift import difference_interval
from yunying.reports.words import Words

DAY = dt.date(2026, 11, 1)
HOLDOUT = (100, 1000)  # converted, users: 10%


def _review(converted: int, users: int, target: float | None = 3.0) -> Review:
    held = Arm(HOLDOUT[1], HOLDOUT[0], Decimal(0))
    treated = Arm(users, converted, Decimal(0))
    return Review(
        campaign="spring",
        description="",
        first_date=DAY,
        last_date=DAY,
        as_of=DAY + dt.timedelta(days=7),
        objective="activity",
        objective_event=None,
        within_days=7,
        target_uplift_points=target,
        funnel=Funnel(eligible=users + held.users, held_out=held.users, assigned=users),
        overall=Comparison("overall", treated, held),
        variants=[],
        leader=None,
        message_cost=Decimal(1),
        reward_cost=Decimal(0),
    )


def _bounds(converted: int, users: int) -> tuple[str, str]:
    interval = difference_interval(converted, users, *HOLDOUT)
    assert interval is not None
    return f"{interval[0] * 100:+.1f}", f"{interval[1] * 100:+.1f}"


@pytest.mark.parametrize(
    ("converted", "verdict", "english", "chinese"),
    [
        (
            300,
            "met",
            "met (even the 95% interval's low end, {low}, clears it)",
            "达成（95% 置信区间下限 {low} 也达到目标）",
        ),
        (
            140,
            "not_shown",
            "not shown yet (the point estimate is above the target, but the 95% interval,"
            " {low} to {high}, includes it)",
            "尚未证实（点估计高于目标，但 95% 置信区间 {low} 至 {high} 包含目标）",
        ),
        (
            120,
            "not_shown",
            "not shown yet (the point estimate is below the target, and the 95% interval,"
            " {low} to {high}, includes it)",
            "尚未证实（点估计低于目标，且 95% 置信区间 {low} 至 {high} 包含目标）",
        ),
        (
            100,
            "missed",
            "not met (the whole 95% interval, {low} to {high}, is below it)",
            "未达成（95% 置信区间 {low} 至 {high} 整体低于目标）",
        ),
    ],
    ids=["interval-clears-target", "point-above", "point-below", "interval-below-target"],
)
def test_the_target_is_met_only_when_the_interval_clears_it(
    converted: int, verdict: str, english: str, chinese: str
) -> None:
    review = _review(converted, 1000)
    assert review.target_verdict == verdict
    low, high = _bounds(converted, 1000)
    en = markdown(page(review, Words("en", "CNY")))
    zh = markdown(page(review, Words("zh-CN", "CNY")))
    assert english.format(low=low, high=high) + "." in en
    assert chinese.format(low=low, high=high) in zh
    if verdict != "met":
        assert ": met" not in en and "：达成" not in zh
    assert "pts: " + english.split(" (")[0] in en and "百分点：" + chinese.split("（")[0] in zh


def test_no_target_or_too_few_users_gives_no_verdict() -> None:
    assert _review(300, 1000, target=None).target_verdict is None
    assert _review(10, 20).target_verdict is None  # 20 assigned: too few to tell


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_total_row_of_the_variants_table_has_a_name(locale: str) -> None:
    review = _review(300, 1000)
    review.variants = [Comparison("gift", Arm(500, 200), review.overall.reference)]
    review.variants.append(Comparison("news", Arm(500, 100), review.overall.reference))
    table = next(s for s in page(review, Words(locale, "CNY")).sections if len(s.header) == 6)
    labels = [row[0] for row in table.rows]
    total = {"en": "All variants", "zh-CN": "全部版本合计"}[locale]
    assert labels == ["gift", "news", total, {"en": "holdout", "zh-CN": "对照组"}[locale]]
    review.variants = []
    table = next(s for s in page(review, Words(locale, "CNY")).sections if len(s.header) == 6)
    assert table.rows[0][0] == {"en": "Assigned to send", "zh-CN": "分配发送"}[locale]


@pytest.mark.parametrize(
    ("gift", "news", "english", "chinese"),
    [
        (100, 0, "Variant gift is ahead of news by", "版本 gift 领先 news"),
        (0, 0, "convert at the same rate", "转化率相同"),
        (40, 40, "neither is ahead", "无领先者"),
    ],
)
def test_the_leader_line_names_a_variant_ahead_only_when_one_is(
    gift: int, news: int, english: str, chinese: str
) -> None:
    review = _review(300, 1000)
    reference = review.overall.reference
    review.variants = [
        Comparison("gift", Arm(500, gift), reference),
        Comparison("news", Arm(500, news), reference),
    ]
    review.leader = Comparison("gift", review.variants[0].treated, review.variants[1].treated)
    for locale, expected in (("en", english), ("zh-CN", chinese)):
        line = leader_line(review, Words(locale, "CNY"))
        assert line is not None and expected in line
