"""The campaign review (复盘) against a direct computation, with planted effects: variant
`better` lifts zh-CN users' return rate from 10% to 40%; variant `plain` does nothing."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from cli.main import main
from tests.builders import DAY, load_records, silent_users
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.messaging import send as sending
from yunying.messaging.campaign import Campaign
from yunying.messaging.outbox import plan
from yunying.reports.effects import Money, difference_interval
from yunying.reports.review import compute_review
from yunying.reports.review_page import markdown, page
from yunying.reports.words import Words
from yunying.store.engine import session_scope
from yunying.store.models import LifecycleState, OutboxMessage, User

NOON_IN_SHANGHAI = dt.datetime(2026, 11, 2, 4, 0)
AS_OF = DAY + dt.timedelta(days=7)
CAMPAIGN = """name = "spring"
description = "Spring win-back with two messages"
segment = ["silent"]
channels = ["email"]
template = "winback"
holdout_percent = 30
frequency_cap_days = 0
quiet_hours = false
target_uplift_points = 5.0
message_cost = { email = 0.01 }

[objective]
kind = "activity"
within_days = 7

[[variants]]
name = "plain"
template = "winback"

[[variants]]
name = "better"
template = "winback"
"""


def _campaign_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    (folder / "spring.toml").write_text(CAMPAIGN, encoding="utf-8")
    return folder


def _returns(
    rate_of: dict[tuple[str, str], int], rows: list[tuple[str, str, str, str]]
) -> set[str]:
    """Exactly `rate` in ten of each (arm-or-variant, locale) group come back."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for user, status, variant, locale in sorted(rows):
        if status == "suppressed":
            continue
        arm = "holdout" if status == "holdout" else variant
        groups[(arm, locale)].append(user)
    back = set()
    for key, users in groups.items():
        back |= {u for i, u in enumerate(users) if i % 10 < rate_of.get(key, 1)}
    return back


def _plant(
    engine: Engine, settings: Settings, tmp_path: Path, users: int
) -> list[tuple[str, str, str, str]]:
    silent_users(engine, settings, users)
    chosen = Campaign.model_validate(
        __import__("tomllib").loads(CAMPAIGN)  # the same file the CLI reads
    )
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    sending.send_all(engine, settings, chosen, DAY, "w1", 2000, NOON_IN_SHANGHAI)
    with session_scope(engine) as session:
        rows = [
            tuple(r)
            for r in session.execute(
                select(
                    OutboxMessage.user_id, OutboxMessage.status, OutboxMessage.variant, User.locale
                ).join(User, User.user_id == OutboxMessage.user_id)
            )
        ]
    back = _returns({("better", "zh-CN"): 4}, rows)  # type: ignore[arg-type]
    events = [
        {
            "event_id": f"back-{u}",
            "user_id": u,
            "name": "app_open",
            "occurred_at": f"{DAY + dt.timedelta(days=3)}T04:00:00Z",
        }
        for u in back
    ]
    # A return after the window counts for nobody: held-out users who did not come back.
    late = [r[0] for r in rows if r[1] == "holdout" and r[0] not in back][:5]
    events += [
        {
            "event_id": f"late-{u}",
            "user_id": u,
            "name": "app_open",
            "occurred_at": f"{DAY + dt.timedelta(days=8)}T04:00:00Z",
        }
        for u in late
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "events", events)
    return rows  # type: ignore[return-value]


def test_review_matches_a_direct_computation_and_finds_the_better_variant(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rows = _plant(engine, settings, tmp_path, 1200)
    back = _returns({("better", "zh-CN"): 4}, rows)
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        review = compute_review(session, chosen, AS_OF, settings.zone, Money())

    # Direct: count the rows and the planted returns.
    eligible = [r for r in rows if r[1] != "suppressed"]
    held = [r for r in eligible if r[1] == "holdout"]
    assigned = [r for r in eligible if r[1] != "holdout"]
    sent = [r for r in assigned if r[1] == "sent"]
    assert (review.funnel.eligible, review.funnel.held_out, review.funnel.assigned) == (
        len(eligible),
        len(held),
        len(assigned),
    )
    # A new store's sending is off: the file outbox wrote them, no one received them.
    assert review.funnel.sent == review.funnel.written_to_files == len(sent)
    assert review.funnel.delivered == 0
    assert review.funnel.converted == sum(1 for r in assigned if r[0] in back)
    k0, n0 = sum(1 for r in held if r[0] in back), len(held)
    for variant in ("plain", "better"):
        group = [r for r in assigned if r[2] == variant]
        k1 = sum(1 for r in group if r[0] in back)
        comparison = next(c for c in review.variants if c.label == variant)
        assert (comparison.treated.users, comparison.treated.converted) == (len(group), k1)
        assert comparison.interval == difference_interval(k1, len(group), k0, n0)
    better, plain = review.variants  # best first
    assert better.label == "better" and better.significant
    assert plain.label == "plain" and not plain.significant
    assert plain.interval is not None and plain.interval[0] < 0 < plain.interval[1]
    assert review.leader is not None and review.leader.significant
    assert review.message_cost == 0  # the file outbox's messages cost nothing
    assert review.reward_cost == 0 and review.cost == review.message_cost
    with session_scope(engine) as session:  # ten of them as a provider's would be
        ids = [r[0] for r in sent[:10]]
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.user_id.in_(ids))
            .values(provider_ref="<yunying.1@smtp.example.com>")
        )
    with session_scope(engine) as session:
        review = compute_review(session, chosen, AS_OF, settings.zone, Money())
    assert review.message_cost == Decimal("0.10")
    # The better message promises a 2.50 gift: each user it brought back costs that.
    gifted = CAMPAIGN.replace(
        'name = "better"\ntemplate = "winback"',
        'name = "better"\ntemplate = "winback"\ncost_per_conversion = 2.5',
    )
    with session_scope(engine) as session:
        priced = compute_review(
            session,
            Campaign.model_validate(__import__("tomllib").loads(gifted)),
            AS_OF,
            settings.zone,
            Money(),
        )
    better_back = sum(1 for r in assigned if r[2] == "better" and r[0] in back)
    assert priced.incentive_cost == Decimal("2.5") * better_back > 0
    assert priced.cost == review.message_cost + priced.incentive_cost
    # A quarter of the assigned users lifted by 30 pts: +7.5 on the point estimate, above the
    # +5.0 target, but the interval reaches below it, so the target is not shown yet.
    uplift, interval = review.overall.uplift, review.overall.interval
    assert uplift is not None and uplift * 100 > 5.0
    assert interval is not None and interval[0] * 100 < 5.0 < interval[1] * 100
    assert review.target_verdict == "not_shown" and review.window_closed

    # Where it worked: zh-CN best, en worst, each with its sample size.
    best, worst = review.best_and_worst("locale")
    assert best is not None and worst is not None
    assert (best.label, worst.label) == ("zh-CN", "en")
    zh_held = sum(1 for r in held if r[3] == "zh-CN")
    assert best.reference.users == zh_held
    assert review.best_and_worst("timezone") == (None, None)  # one zone: nothing to compare


def test_only_messages_a_provider_took_count_as_delivered(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _plant(engine, settings, tmp_path, 300)  # sending off: every send went to the file outbox
    with session_scope(engine) as session:
        sent = session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.status == "sent").order_by("id")
        ).all()
        # As a real provider records its own message id once sending is on.
        real = sent[: len(sent) // 3]
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(real)).values(provider_ref="msg-1")
        )
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        review = compute_review(session, chosen, AS_OF, settings.zone, Money())
    funnel = review.funnel
    assert funnel.delivered + funnel.written_to_files == funnel.sent
    assert 0 < funnel.delivered < funnel.sent
    english = markdown(page(review, Words("en", "CNY")))
    assert "| Delivered |" in english and "| Written to files, not sent |" in english


def test_review_page_says_which_variant_is_ahead_in_both_locales(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _plant(engine, settings, tmp_path, 800)
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        review = compute_review(session, chosen, AS_OF, settings.zone, Money())
    english = markdown(page(review, Words("en", "CNY")))
    chinese = markdown(page(review, Words("zh-CN", "CNY")))
    assert "Variant better is ahead of plain" in english and "): significant." in english
    assert (
        "Target uplift +5.0 pts" in english
        and ": not shown yet (the point estimate is above" in english
    )
    assert "版本 better 领先 plain" in chinese and "显著" in chinese
    assert "：尚未证实（点估计高于目标" in chinese
    assert "| Sent |" in english and "| 已发送 |" in chinese


def test_an_open_window_and_an_empty_campaign_say_so(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        empty = compute_review(session, chosen, AS_OF, settings.zone, Money())
    text = markdown(page(empty, Words("en", "CNY")))
    assert "no outbox rows" in text and empty.roi is None
    _plant(engine, settings, tmp_path, 100)
    with session_scope(engine) as session:
        early = compute_review(session, chosen, DAY + dt.timedelta(days=2), settings.zone, Money())
    assert not early.window_closed
    assert "still open" in markdown(page(early, Words("en", "CNY")))


def test_a_review_as_of_a_date_counts_nothing_that_came_later(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The planted returns are on DAY + 3: a review measured to DAY + 2, run once they are
    loaded, has none of them; one measured to DAY + 3 has them all."""
    rows = _plant(engine, settings, tmp_path, 100)
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        before, on = (
            compute_review(session, chosen, DAY + dt.timedelta(days=d), settings.zone, Money())
            for d in (2, 3)
        )
    returned = len(_returns({("better", "zh-CN"): 4}, rows))  # type: ignore[arg-type]
    assert (before.funnel.converted, before.overall.reference.converted) == (0, 0)
    assert on.overall.treated.converted + on.overall.reference.converted == returned > 0
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(_campaign_dir(tmp_path)))
    as_of = (DAY + dt.timedelta(days=2)).isoformat()
    assert main(["review", "spring", "--as-of", as_of]) == 0
    assert "| 已转化（发送组） | 0 | 0.0% |" in capsys.readouterr().out


def test_cli_review_prints_the_review_and_writes_the_page(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _plant(engine, settings, tmp_path, 300)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(_campaign_dir(tmp_path)))
    assert main(["review", "spring", "--date", DAY.isoformat(), "--as-of", AS_OF.isoformat()]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# 活动复盘：spring")
    assert "仅写入文件，未发出" in out  # sending is off
    page_path = Path(out.strip().splitlines()[-1].removeprefix("page: "))
    assert page_path.exists() and "<table" in page_path.read_text(encoding="utf-8")
    assert main(["review", "nosuch"]) == 2
    assert "nosuch.toml does not exist" in capsys.readouterr().err
    # A date the campaign sent nothing on is named, with the dates it did run.
    before = (DAY - dt.timedelta(days=3)).isoformat()
    assert main(["review", "spring", "--date", before, "--as-of", AS_OF.isoformat()]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --date {before}: campaign spring has no message on that date;"
        f" it ran on 1 date(s), {DAY} to {DAY}"
    )


def test_review_flow_emails_the_review_and_shows_an_artifact(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.review import review

    _plant(engine, settings, tmp_path, 300)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(_campaign_dir(tmp_path)))
    result = review(campaign="spring", as_of=AS_OF)
    eml = Path(result["eml"]).read_text(encoding="utf-8")
    assert "Subject: =?utf-8?" in eml or "Subject:" in eml
    assert "text/html" in eml
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["review-spring"]))
        )
    latest = max(artifacts, key=lambda a: a.created)
    assert str(latest.data).startswith("# 活动复盘：spring")
    assert Counter(line.startswith("| ") for line in str(latest.data).splitlines())[True] > 10


def test_the_daily_report_links_each_running_campaigns_latest_review(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While its measurement window is open, the daily report shows the campaign's review
    headline as of the report's date and links its page (written beside the report) and its
    artifact; once the window has closed, the campaign is no longer listed."""
    from flows.report import report

    _plant(engine, settings, tmp_path, 300)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(_campaign_dir(tmp_path)))
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    during = DAY + dt.timedelta(days=3)
    result = report(business_date=during)
    html = Path(result["html"]).read_text(encoding="utf-8")
    assert f'<a href="review-spring-{during}.html">spring</a>' in html
    review_page = Path(result["html"]).parent / f"review-spring-{during}.html"
    assert review_page.exists()
    with session_scope(engine) as session:
        latest = compute_review(session, chosen, during, settings.zone, Money())
    for line in page(latest, Words("zh-CN", "CNY")).lines:
        assert line in html  # the figures as of the report's date, not an older review
    assert "review-spring" in Path(result["eml"]).read_text(encoding="utf-8")

    closed = DAY + dt.timedelta(days=8)  # sent on DAY, measured for 7 days
    later = Path(report(business_date=closed)["html"]).read_text(encoding="utf-8")
    assert "review-spring" not in later and "没有进行中的活动" in later


def test_the_scheduled_review_covers_the_campaigns_whose_window_closed(
    prefect: None,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.review import review

    _plant(engine, settings, tmp_path, 100)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(_campaign_dir(tmp_path)))
    assert review(as_of=AS_OF - dt.timedelta(days=1), send_email=False) == {}  # still open
    closed = review(as_of=AS_OF, send_email=False)  # sent on DAY, measured for 7 days
    assert list(closed) == ["spring"] and Path(closed["spring"]["html"]).exists()
    assert review(as_of=AS_OF + dt.timedelta(days=1), send_email=False) == {}  # reviewed once


def test_a_user_planned_on_several_nights_counts_once_from_their_first_night(
    engine: Engine, settings: Settings
) -> None:
    """With the cap off a campaign plans its held-out users again every night: the funnel and
    the uplift count users (each on their first night), not rows."""
    users = silent_users(engine, settings, 200)
    chosen = Campaign.model_validate(
        {**__import__("tomllib").loads(CAMPAIGN), "frequency_cap_days": 0}
    )
    second = DAY + dt.timedelta(days=1)
    for day in (DAY, second):
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle)
            plan(session, chosen, day)
    # Held-out users come back within 7 days of the first night only.
    with session_scope(engine) as session:
        held = sorted(
            session.scalars(
                select(OutboxMessage.user_id).where(
                    OutboxMessage.status == "holdout", OutboxMessage.business_date == DAY
                )
            )
        )
        first_night = [
            {
                "event_id": f"b-{u}",
                "user_id": u,
                "name": "app_open",
                "occurred_at": f"{DAY + dt.timedelta(days=1)}T04:00:00Z",
            }
            for u in held
        ]
        load_records(session, settings.zone, "events", first_night)
        rows = session.execute(select(OutboxMessage.user_id, OutboxMessage.status)).all()
        review = compute_review(
            session, chosen, AS_OF + dt.timedelta(days=1), settings.zone, Money()
        )
    assert len(rows) == 2 * len(users)  # two rows each
    assert review.funnel.eligible == len(users)
    assert review.funnel.held_out == len(held) == review.overall.reference.users
    assert review.overall.reference.converted == len(held)  # measured from their first night
    assert review.funnel.assigned == len(users) - len(held)
    assert (review.first_date, review.last_date) == (DAY, second)


def test_a_holdout_of_a_few_users_gets_no_verdict(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _plant(engine, settings, tmp_path, 40)  # 30% held out: about 12 users
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        review = compute_review(session, chosen, AS_OF, settings.zone, Money())
    assert 0 < review.overall.reference.users < 30
    assert not review.overall.enough and not review.overall.significant
    assert review.incremental_revenue is None and review.roi is None
    assert review.target_verdict is None
    interval = review.overall.interval
    assert interval is not None and -1 <= interval[0] < interval[1] <= 1
    english = markdown(page(review, Words("en", "CNY")))
    too_few = "too few users to tell (30 needed in each arm)"
    assert f"): {too_few}." in english  # the overall line
    assert f"pts: {too_few}." in english  # the target line: neither met nor missed
    assert f"| Incremental revenue | {too_few} |" in english
    assert f"| ROI | {too_few} |" in english
    assert "): significant." not in english and ": met." not in english
    chinese = markdown(page(review, Words("zh-CN", "CNY")))
    assert "人数太少，无法判断" in chinese and "：显著。" not in chinese


def test_slices_count_each_user_in_the_tier_they_had_when_sent(
    engine: Engine, settings: Settings
) -> None:
    """Coming back raises a user's RFM tier (recency), so a slice by the tier as of now puts
    the converted users in a higher tier after the fact. Every third user ordered twice before
    going silent (mid at the send); the others were low; half of each come back and order."""
    users = silent_users(engine, settings, 240, day=DAY - dt.timedelta(days=1))
    buyers = users[::3]
    early = f"{DAY - dt.timedelta(days=20)}T04:00:00Z"
    with session_scope(engine) as session:
        orders = [
            {"order_id": f"{u}-{n}", "user_id": u, "amount": "60.00", "created_at": early}
            for u in buyers
            for n in range(2)
        ]
        load_records(session, settings.zone, "orders", orders)
        compute_lifecycle(session, DAY, settings.lifecycle)
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
        when_sent = {
            u: t for u, t in session.execute(select(LifecycleState.user_id, LifecycleState.tier))
        }
        rows = session.execute(select(OutboxMessage.user_id, OutboxMessage.status)).all()
    assert set(when_sent.values()) == {"low", "mid"}
    back = {u for u, _ in rows if int(u[1:]) % 2 == 0}
    later = f"{DAY + dt.timedelta(days=2)}T04:00:00Z"
    with session_scope(engine) as session:
        load_records(
            session,
            settings.zone,
            "events",
            [
                {"event_id": f"b-{u}", "user_id": u, "name": "app_open", "occurred_at": later}
                for u in back
            ],
        )
        load_records(
            session,
            settings.zone,
            "orders",
            [
                {"order_id": f"b-{u}", "user_id": u, "amount": "80.00", "created_at": later}
                for u in back
            ],
        )
        compute_lifecycle(session, AS_OF, settings.lifecycle)
        now = {
            u: t for u, t in session.execute(select(LifecycleState.user_id, LifecycleState.tier))
        }
        review = compute_review(session, chosen, AS_OF, settings.zone, Money())
    assert any(now[u] != when_sent[u] for u in back)  # the outcome moved tiers

    direct: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])
    for user, status in rows:
        if status == "suppressed":
            continue
        group = direct[(when_sent[user], status == "holdout")]
        group[0] += 1
        group[1] += user in back
    by_tier = {c.label: c for c in review.slices["tier"]}
    assert set(by_tier) == {"low", "mid"}
    for tier, c in by_tier.items():
        assert [c.treated.users, c.treated.converted] == direct[(tier, False)]
        assert [c.reference.users, c.reference.converted] == direct[(tier, True)]

    # A row planned before the tier was kept (migration 0013) is counted, under "-".
    with session_scope(engine) as session:
        old = session.scalars(
            select(OutboxMessage).where(OutboxMessage.status == "holdout")
        ).first()
        assert old is not None
        old.tier = None
        session.flush()
        again = compute_review(session, chosen, AS_OF, settings.zone, Money())
    unknown = next(c for c in again.slices["tier"] if c.label == "-")
    assert (unknown.treated.users, unknown.reference.users) == (0, 1)
    assert again.funnel.eligible == review.funnel.eligible


def test_a_zones_old_alias_is_one_slice_with_its_place(engine: Engine, settings: Settings) -> None:
    """Users stored as Asia/Calcutta and as Asia/Kolkata are one time-zone slice, as they are
    one segment; Europe/Oslo stays apart from Berlin."""
    zones = {"Asia/Calcutta": 20, "Asia/Kolkata": 20, "Europe/Oslo": 10, "Europe/Berlin": 10}
    for zone, count in zones.items():
        silent_users(engine, settings, count, user_id=f"{zone[-4:]}-{{}}".format, timezone=zone)
    chosen = Campaign.model_validate(__import__("tomllib").loads(CAMPAIGN))
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
        review = compute_review(session, chosen, AS_OF, settings.zone, Money())
    sliced = {s.label: s.treated.users + s.reference.users for s in review.slices["timezone"]}
    assert sliced == {"Asia/Kolkata": 40, "Europe/Berlin": 10, "Europe/Oslo": 10}
