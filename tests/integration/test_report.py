"""The daily report: KPIs against a direct computation, and the email as a mail client sees it."""

import datetime as dt
import json
import re
import threading
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.builders import company_settings, load_records, pull_all
from tests.rig import SmtpSink
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.reports.daily_email import publish_report, render
from yunying.reports.kpis import compute_kpis
from yunying.reports.uplift import difference_interval
from yunying.reports.words import Words
from yunying.store.engine import session_scope
from yunying.store.models import Event, Order, ReportRecord, User

DAY = dt.date(2026, 10, 31)


@pytest.mark.parametrize(
    ("zone", "day"),
    [("Asia/Shanghai", DAY), ("America/Los_Angeles", dt.date(2026, 11, 1))],  # a DST change
    ids=["shanghai", "los-angeles-dst"],
)
def test_kpis_match_a_direct_computation(
    engine: Engine, settings: Settings, tmp_path: Path, zone: str, day: dt.date
) -> None:
    DAY = day
    settings = company_settings(settings.model_copy(update={"timezone": zone}), tmp_path, users=300)
    pull_all(engine, settings)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
        kpis = compute_kpis(session, DAY, settings.zone)
        events = session.execute(select(Event.user_id, Event.occurred_at)).all()
        users = session.execute(select(User.user_id, User.signup_at)).all()
        orders = session.execute(
            select(Order.user_id, Order.amount, Order.created_at).where(Order.status == "paid")
        ).all()
    zone = settings.zone

    def local(moment: dt.datetime) -> dt.date:
        return moment.replace(tzinfo=dt.UTC).astimezone(zone).date()

    days_by_user: dict[str, set[dt.date]] = defaultdict(set)
    for uid, moment in events:
        days_by_user[uid].add(local(moment))

    def active_between(first: dt.date) -> int:
        return sum(1 for days in days_by_user.values() if any(first <= d <= DAY for d in days))

    assert kpis.dau == active_between(DAY) > 0
    assert kpis.wau == active_between(DAY - dt.timedelta(days=6))
    assert kpis.mau == active_between(DAY - dt.timedelta(days=29))
    assert kpis.new_users == sum(1 for _, s in users if local(s) == DAY)
    todays = [(u, a) for u, a, c in orders if local(c) == DAY]
    assert kpis.orders == len(todays)
    assert kpis.revenue == sum((a for _, a in todays), Decimal("0"))
    cohort = [u for u, s in users if local(s) == DAY - dt.timedelta(days=1)]
    if cohort:
        assert kpis.d1_retention == sum(DAY in days_by_user[u] for u in cohort) / len(cohort)
    assert sum(kpis.lifecycle.values()) == sum(1 for _, s in users if local(s) <= DAY)

    signup = {u: local(s) for u, s in users}
    order_days: dict[str, set[dt.date]] = defaultdict(set)
    for uid, _, created in orders:
        order_days[uid].add(local(created))
    week = dt.timedelta(days=7)
    cohort = [u for u, d in signup.items() if DAY - 13 * dt.timedelta(days=1) <= d <= DAY - week]
    assert kpis.funnel.signed_up == len(cohort) > 0
    assert kpis.funnel.activated == sum(
        any(signup[u] < d <= signup[u] + week for d in days_by_user[u]) for u in cohort
    )
    assert kpis.funnel.ordered == sum(
        any(signup[u] <= d < signup[u] + week for d in order_days[u]) for u in cohort
    )

    def retained(back: int, on: dt.date) -> float | None:
        cohort = [u for u, d in signup.items() if d == on - dt.timedelta(days=back)]
        return sum(on in days_by_user[u] for u in cohort) / len(cohort) if cohort else None

    assert kpis.d7_retention == retained(7, DAY) is not None
    assert kpis.d30_retention == retained(30, DAY) is not None
    # The cohort table: each of the 7 signup days before the date, its size and the share
    # active exactly 1, 3 and 7 days after signing up, where that day has come.
    expected_cohorts = []
    for back in range(1, 8):
        day = DAY - dt.timedelta(days=back)
        members = [u for u, d in signup.items() if d == day]
        shares = {
            offset: (
                sum(day + dt.timedelta(days=offset) in days_by_user[u] for u in members)
                / len(members)
                if members and offset <= back
                else None
            )
            for offset in (1, 3, 7)
        }
        expected_cohorts.append((day, len(members), shares))
    assert [(c.signup_day, c.size, c.retention) for c in kpis.cohorts] == expected_cohorts
    assert sum(size for _, size, _ in expected_cohorts) > 0

    dau, mau = kpis.dau, kpis.mau
    revenue = sum((a for _, a in todays), Decimal("0"))
    payers = {u for u, _ in todays}
    assert kpis.stickiness == dau / mau
    assert kpis.arpu == (revenue / dau).quantize(Decimal("0.01"))
    assert payers and kpis.arppu == (revenue / len(payers)).quantize(Decimal("0.01"))


def test_report_email_is_multipart_with_inline_chart_and_sent_once(
    engine: Engine, settings: Settings, tmp_path: Path, smtp_server: SmtpSink
) -> None:
    settings = company_settings(settings, tmp_path, users=100)
    settings = settings.model_copy(
        update={
            "smtp": settings.smtp.model_copy(
                update={"host": "127.0.0.1", "port": smtp_server.port}
            ),
            "report_recipients": ["ops@example.com", "lead@example.com"],
        }
    )
    pull_all(engine, settings)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
        kpis = compute_kpis(session, DAY, settings.zone)
        files = publish_report(session, settings, kpis)
    assert files.sent and files.html_path.exists()
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    flags = len(kpis.raised_flags)
    assert message["Subject"] == f"运营日报 2026年10月31日 — {flags} 项异常"
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.get_payload()  # type: ignore[misc]
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    html = html_part.get_content()
    assert len(images) == 2  # DAU with its band, retention (the funnel is HTML)
    for image in images:
        assert image.get_content_type() == "image/png"
        assert image.get_payload(decode=True)[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no external resources
    assert "<script" not in html
    text = text_part.get_content()
    for number in (kpis.dau, kpis.wau, kpis.mau, kpis.orders):
        assert f"{number:,}" in text and f">{number:,}<" in html

    with session_scope(engine) as session:  # the same date again: archived, not resent
        assert not publish_report(session, settings, kpis).sent
    with session_scope(engine) as session:
        assert publish_report(session, settings, kpis, force=True).sent
    assert len(smtp_server.messages) == 2


def _active_users(engine: Engine, settings: Settings, counts: dict[dt.date, int]) -> None:
    """`counts[day]` users active on each day; all signed up on 2026-08-01."""

    users = [
        {"user_id": f"p{i}", "signup_at": "2026-08-01T00:00:00+08:00"}
        for i in range(max(counts.values()))
    ]
    events = [
        {
            "event_id": f"p{i}-{day}",
            "user_id": f"p{i}",
            "name": "app_open",
            "occurred_at": f"{day}T12:00:00+08:00",
        }
        for day, n in counts.items()
        for i in range(n)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)


def _weekly(days: int, end: dt.date) -> dict[dt.date, int]:
    """A steady week: 200 on weekdays, 140 on weekends, with a little noise."""
    counts = {}
    for back in range(days):
        day = end - dt.timedelta(days=back)
        counts[day] = (140 if day.weekday() >= 5 else 200) + (back * 7) % 11
    return counts


def test_a_planted_spike_is_flagged_and_a_weekend_dip_is_not(
    engine: Engine, settings: Settings
) -> None:
    saturday = dt.date(2026, 10, 31)
    counts = _weekly(60, saturday)  # Saturday is a normal weekend dip
    _active_users(engine, settings, counts)
    with session_scope(engine) as session:
        weekend = compute_kpis(session, saturday, settings.zone)
    dau = next(f for f in weekend.flags if f.kpi == "dau")
    assert dau.status == "normal" and dau.band is not None and dau.band.high < 180

    monday = saturday + dt.timedelta(days=2)
    _active_users(engine, settings, {saturday + dt.timedelta(days=1): 140, monday: 420})
    with session_scope(engine) as session:
        spike = compute_kpis(session, monday, settings.zone)
    flag = next(f for f in spike.flags if f.kpi == "dau")
    assert (flag.value, flag.status, flag.since) == (420, "above", monday)
    assert "dau" in {f.kpi for f in spike.raised_flags}


def test_an_empty_day_and_a_store_with_no_history(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, settings.zone)
    assert (kpis.dau, kpis.orders, kpis.revenue, kpis.arpu) == (0, 0, 0, None)
    assert kpis.flags == [] and kpis.uplifts == [] and kpis.rewards == []


def _plant_uplift(engine: Engine, settings: Settings, per_arm: int) -> None:
    """`per_arm` users sent and as many held out 7 days before DAY: 60% of the assigned and
    20% of the held out came back, and the first two assigned ordered 100 each."""
    from yunying.store.engine import utcnow
    from yunying.store.models import OutboxMessage

    sent_day = DAY - dt.timedelta(days=7)
    n = 2 * per_arm
    users = [{"user_id": f"r{i}", "signup_at": "2026-08-01T00:00:00Z"} for i in range(n)]
    back = [i for i in range(per_arm) if i % 10 < 6]
    back += [i for i in range(per_arm, n) if (i - per_arm) % 10 < 2]
    events = [
        {
            "event_id": f"r{i}",
            "user_id": f"r{i}",
            "name": "app_open",
            "occurred_at": f"{sent_day + dt.timedelta(days=3)}T04:00:00Z",
        }
        for i in back
    ]
    orders = [
        {
            "order_id": f"o{i}",
            "user_id": f"r{i}",
            "amount": "100",
            "created_at": f"{sent_day + dt.timedelta(days=2)}T04:00:00Z",
        }
        for i in (0, 1)
    ]
    with session_scope(engine) as session:
        for entity, rows in (("users", users), ("events", events), ("orders", orders)):
            load_records(session, settings.zone, entity, rows)
        for i in range(n):
            session.add(
                OutboxMessage(
                    key=f"winback:{sent_day}:r{i}",
                    campaign="winback",
                    business_date=sent_day,
                    user_id=f"r{i}",
                    channel="email",
                    status="sent" if i < per_arm else "holdout",
                    created_at=utcnow(),
                )
            )


def test_reactivation_uplift_against_the_holdout(engine: Engine, settings: Settings) -> None:
    _plant_uplift(engine, settings, per_arm=30)
    with session_scope(engine) as session:
        (uplift,) = compute_kpis(session, DAY, settings.zone).uplifts
    counts = (
        uplift.assigned,
        uplift.assigned_reactivated,
        uplift.holdout,
        uplift.holdout_reactivated,
    )
    assert counts == (30, 18, 30, 6)
    assert uplift.uplift == pytest.approx(0.4)
    assert uplift.interval == difference_interval(18, 30, 6, 30)  # tested in unit/test_uplift
    assert uplift.enough and uplift.significant
    assert uplift.incremental_revenue == 200  # (200 / 30 - 0) x 30


def test_a_reactivation_of_ten_per_arm_is_too_few_to_tell(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """Ten users per arm get their interval (in points, like the review) but no verdict and
    no incremental revenue."""
    _plant_uplift(engine, settings, per_arm=10)
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, settings.zone)
    (uplift,) = kpis.uplifts
    assert (uplift.assigned, uplift.holdout, uplift.uplift) == (10, 10, pytest.approx(0.4))
    assert not uplift.enough and not uplift.significant
    assert uplift.incremental_revenue is None
    html, text = render(kpis, {}, Words("en", "CNY"))
    for out in (html, text):
        assert "+40.0 pts" in out and "+40.0%" not in out
        assert "too few users to tell (30 needed in each arm)" in out
    zh_html, _ = render(kpis, {}, Words("zh-CN", "CNY"))
    assert "+40.0 个百分点" in zh_html and "人数太少，无法判断" in zh_html


def test_two_concurrent_runs_send_a_dates_report_once(
    engine: Engine, settings: Settings, tmp_path: Path, smtp_server: SmtpSink
) -> None:
    settings = company_settings(settings, tmp_path, users=60)
    settings = settings.model_copy(
        update={
            "smtp": settings.smtp.model_copy(update={"host": "127.0.0.1", "port": smtp_server.port})
        }
    )
    pull_all(engine, settings)
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, settings.zone)
    smtp_server.delay_seconds = 0.5  # both runs are inside the send at once
    start = threading.Barrier(2)
    results: list[bool] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            with session_scope(engine) as session:  # as the task does: its own transaction
                results.append(publish_report(session, settings, kpis).sent)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [False, True]
    assert len(smtp_server.messages) == 1
    with session_scope(engine) as session:
        record = session.get(ReportRecord, (DAY, "daily"))
        assert record is not None and record.sent_at is not None and record.path


def test_a_past_dates_report_is_about_that_date(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    prefect: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`yunying run report --date D` after later dates were computed: the lifecycle counts
    are those of D's own run, and nothing after D is counted."""
    from cli.main import main
    from yunying.lifecycle.states import summarise

    settings = company_settings(settings, tmp_path, users=300)
    pull_all(engine, settings)
    days = [DAY - dt.timedelta(days=20), DAY - dt.timedelta(days=10), DAY]
    as_computed = {}
    for day in days:  # dates run in order, as the nightly flow does
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle)
            as_computed[day] = summarise(session, day).by_state
    assert as_computed[days[0]] != as_computed[days[2]]
    with session_scope(engine) as session:  # every run's counts, read back afterwards
        for day in days:
            kpis = compute_kpis(session, day, settings.zone)
            assert kpis.lifecycle == as_computed[day]
        assert compute_kpis(session, DAY - dt.timedelta(days=15), settings.zone).lifecycle is None

    past = days[0]
    assert main(["run", "report", "--date", past.isoformat()]) == 0
    capsys.readouterr()
    with session_scope(engine) as session:
        record = session.get(ReportRecord, (past, "daily"))
        assert record is not None
        reported = json.loads(record.kpis)
        users = session.execute(select(User.user_id, User.signup_day)).all()
    assert reported["lifecycle"] == as_computed[past]
    assert sum(reported["lifecycle"].values()) == sum(1 for _, d in users if d <= past)
    html = Path(record.path).read_text(encoding="utf-8")
    for state, count in as_computed[past].items():
        assert f">{count:,}<" in html, state
    # The run's artifact in the Prefect UI: a headline, human names, formatted numbers.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["daily-report"]))
        )
    title = "# 运营日报 · 2026年10月11日"  # the past date, in the company locale
    # The latest such artifact: the same Prefect server serves the whole test session.
    artifact = max((a for a in artifacts if str(a.data).startswith(title)), key=lambda a: a.created)
    markdown = str(artifact.data)
    assert markdown.splitlines()[2].startswith("**") and "| 日活跃用户 |" in markdown
    assert "new_users" not in markdown and "d1_retention" not in markdown
    assert "## 异常波动" in markdown and "| 正常范围 |" in markdown
