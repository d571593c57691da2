"""The demo's strategy step: three campaigns on different segments a week back (one with
two variants), the nightly, the segment sizes, and each campaign's review in the summary."""

from pathlib import Path

import pytest

from cli.demo import DEMO_CAMPAIGNS, print_summary, run_demo
from yunying.config import load_settings


def test_demo_sends_three_campaigns_and_says_which_variant_leads(
    prefect: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    settings = load_settings()
    summary = run_demo(settings, users=1200, seed=7, keep=False)
    reviews = summary["reviews"]
    assert list(reviews) == DEMO_CAMPAIGNS
    assert all(r["sent"] > 0 for r in reviews.values())
    vip = reviews["demo-vip"]["lines"]
    leader = [line for line in vip if line.startswith("版本 ") and "领先" in line]
    # At this size a variant has fewer than 30 users: "too few to tell" is the honest verdict.
    verdicts = ("：显著。", "：不显著。", "：人数太少，无法判断（每组至少需要 30 人）。")
    assert len(leader) == 1 and leader[0].endswith(verdicts)
    assert set(summary["segments"]) >= {"high-value-silent", "repeat-buyers-lapsed"}
    print_summary(summary, settings)
    out = capsys.readouterr().out
    assert "review demo-vip: sent" in out and leader[0] in out
    assert Path(reviews["demo-vip"]["page"]).exists()
