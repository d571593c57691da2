"""The demo's strategy step, run as a newcomer runs it (`yunying demo`, README "Two commands"):
three campaigns on different segments a week back (one with two variants), the customers'
planted answers, the nightly, the segment sizes, and each campaign's review in the summary."""

import datetime as dt
import re
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cli.demo import DEMO_CAMPAIGNS
from cli.main import main
from yunying.reports.uplift import difference_interval

VARIANTS = "demo-silent"  # the demo campaign with two variants


def test_the_demo_names_the_planted_better_variant_ahead_and_significant(
    prefect: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "var"
    monkeypatch.setenv("YUNYING_HOME", str(home))
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("Yunying demo — nightly run") :]

    # Every campaign is sent and reviewed, each review with its page and command.
    sent = dict(re.findall(r"review (\S+): sent (\d+), held out \d+", summary))
    assert list(sent) == DEMO_CAMPAIGNS and all(int(n) > 0 for n in sent.values())
    for page in re.findall(r"page: (\S+review-\S+\.html)", summary):
        assert Path(page).exists()
    for name in DEMO_CAMPAIGNS:
        assert f"more: .venv/bin/yunying review {name}" in summary
    sizes = next(line for line in summary.splitlines() if "segment sizes:" in line)
    assert "high-value-silent" in sizes and "repeat-buyers-lapsed" in sizes

    # The headline: the planted better message (gift) is ahead, and significantly.
    headline = next(line for line in summary.splitlines() if "variant test:" in line)
    assert f"{VARIANTS}: 版本 gift 领先 news" in headline and headline.endswith("：显著。")
    assert f"the review: .venv/bin/yunying review {VARIANTS}" in summary

    # Its figures are those of a direct count in the store.
    arms = direct_arms(home / "yunying.db", VARIANTS)
    (kg, ng), (kn, nn) = arms["gift"], arms["news"]
    low, high = difference_interval(kg, ng, kn, nn) or (0.0, 0.0)
    assert low > 0
    leader = (
        f"版本 gift 领先 news {(kg / ng - kn / nn) * 100:.1f} 个百分点"
        f"（95% 置信区间 {low * 100:+.1f} 至 {high * 100:+.1f}）：显著。"
    )
    assert headline.endswith(leader)

    # Only recipients answered: about 5% of news's and 25% of gift's, 1 to 5 days after.
    answered = answers(home, VARIANTS)
    assert {status for status, _, _ in answered} == {"sent"}
    assert {days for _, _, days in answered} <= set(range(1, 6))
    for arm, share in (("news", 0.05), ("gift", 0.25)):
        assigned = arms[arm][1]
        assert abs(sum(v == arm for _, v, _ in answered) / assigned - share) < 0.09, arm

    # `yunying review` says the same, with the same arms, in the company's locale and in English.
    assert main(["review", VARIANTS]) == 0
    review = capsys.readouterr().out
    assert leader in review
    for arm, label in (("gift", "gift"), ("news", "news"), ("holdout", "对照组")):
        converted, users = arms[arm]
        assert re.search(rf"^\| {label} \| {users} \| {converted} \| ", review, re.M), arm
    # The total row is named; the target is met only if the whole interval clears it.
    (kt, nt), (kh, nh) = (kg + kn, ng + nn), arms["holdout"]
    assert re.search(rf"^\| 全部版本合计 \| {nt} \| {kt} \| ", review, re.M)
    low_all, high_all = difference_interval(kt, nt, kh, nh) or (0.0, 0.0)
    verdict = "达成" if low_all * 100 >= 3.0 else "未达成" if high_all * 100 < 3.0 else "尚未证实"
    target = next(line for line in review.splitlines() if line.startswith("- 目标提升"))
    assert f"个百分点：{verdict}（" in target
    # Tiers are those kept when the messages were planned, not after the users came back.
    for tier, (k, n) in direct_tiers(home / "yunying.db", VARIANTS).items():
        assert re.search(rf"^\| {tier} \| {n} / {k} \| ", review, re.M), tier
    monkeypatch.setenv("YUNYING_DEFAULT_LOCALE", "en")
    assert main(["review", VARIANTS]) == 0
    english = capsys.readouterr().out
    assert "Variant gift is ahead of news by" in english
    assert f"(95% interval {low * 100:+.1f} to {high * 100:+.1f}): significant." in english


def direct_arms(store: Path, campaign: str) -> dict[str, tuple[int, int]]:
    """(converted, users) per variant and for the holdout: active on one of the 7 days after
    the send, counted straight from the outbox and the active days (one send date)."""
    with sqlite3.connect(store) as db:
        assert db.execute(
            "SELECT COUNT(DISTINCT business_date) FROM outbox WHERE campaign = ?", (campaign,)
        ).fetchone() == (1,)
        rows = db.execute(
            """
            SELECT CASE WHEN o.status = 'holdout' THEN 'holdout' ELSE o.variant END,
                   SUM(EXISTS (SELECT 1 FROM active_days a WHERE a.user_id = o.user_id
                               AND a.day > o.business_date
                               AND a.day <= date(o.business_date, '+7 days'))),
                   COUNT(*)
            FROM outbox o WHERE o.campaign = ? AND o.status != 'suppressed'
            GROUP BY 1
            """,
            (campaign,),
        ).fetchall()
    db.close()
    return {arm: (int(k), int(n)) for arm, k, n in rows}


def direct_tiers(store: Path, campaign: str) -> dict[str, tuple[int, int]]:
    """(held out, assigned) per tier kept on the outbox rows (one send date)."""
    with sqlite3.connect(store) as db:
        rows = db.execute(
            """
            SELECT tier, SUM(status = 'holdout'), SUM(status != 'holdout') FROM outbox
            WHERE campaign = ? AND status != 'suppressed' GROUP BY tier
            """,
            (campaign,),
        ).fetchall()
    db.close()
    assert rows and all(tier is not None for tier, _, _ in rows)
    return {tier: (int(k), int(n)) for tier, k, n in rows}


def answers(home: Path, campaign: str) -> list[tuple[str, str, int]]:
    """(outbox status, variant, local days after the send) of each user the demo's customers
    had answer `campaign`, from the answers' own rows in the company's database."""
    with sqlite3.connect(home / "demo" / "source.db") as source:
        first = source.execute(
            "SELECT uid, ts FROM src_events WHERE event_uuid = uid || '-' || ? || '-0'",
            (campaign,),
        ).fetchall()
    source.close()
    found = []
    with sqlite3.connect(home / "yunying.db") as db:
        for uid, ts in first:
            status, variant, day, zone = db.execute(
                "SELECT status, variant, business_date, timezone FROM outbox"
                " JOIN users USING (user_id) WHERE campaign = ? AND user_id = ?",
                (campaign, uid),
            ).fetchone()
            local = dt.datetime.fromisoformat(ts).astimezone(ZoneInfo(zone)).date()
            found.append((status, variant, (local - dt.date.fromisoformat(day)).days))
    db.close()
    assert found
    return found
