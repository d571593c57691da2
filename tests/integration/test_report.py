"""The daily report: KPIs against a direct computation, and the email as a mail client sees it."""

import datetime as dt
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, select

from tests.builders import company_settings, pull_all
from tests.rig import SmtpSink
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.reports.daily_email import publish_report
from yunying.reports.kpis import compute_kpis
from yunying.store.engine import session_scope
from yunying.store.models import Event, Order, User

DAY = dt.date(2026, 10, 31)


def test_kpis_match_a_direct_computation(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = company_settings(settings, tmp_path, users=300)
    pull_all(engine, settings)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
        kpis = compute_kpis(session, DAY)
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
        kpis = compute_kpis(session, DAY)
        files = publish_report(session, settings, kpis)
    assert files.sent and files.html_path.exists()
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["Subject"] == f"Yunying daily report {DAY} — 0 flag(s)"
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.get_payload()  # type: ignore[misc]
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.get_payload()
    assert image.get_content_type() == "image/png"
    assert image.get_payload(decode=True)[:8] == b"\x89PNG\r\n\x1a\n"
    html = html_part.get_content()
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no external resources
    assert "<script" not in html
    text = text_part.get_content()
    for number in (kpis.dau, kpis.wau, kpis.mau, kpis.orders):
        assert f"{number}" in text and f">{number}<" in html

    with session_scope(engine) as session:  # the same date again: archived, not resent
        assert not publish_report(session, settings, kpis).sent
    with session_scope(engine) as session:
        assert publish_report(session, settings, kpis, force=True).sent
    assert len(smtp_server.messages) == 2
