"""Every email Yunying sends carries Date and Message-ID, and the report's charts are inline
images referenced from its HTML: checked on what a real SMTP server (aiosmtpd) received."""

import datetime as dt
import re
from email import message_from_bytes
from email.headerregistry import AddressHeader, DateHeader, UnstructuredHeader
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cli.main import main
from tests.builders import DAY, END, company_settings, pull_all, silent_users
from tests.integration.test_outbox import campaign, send_all
from tests.rig import SmtpSink
from yunying.config import Settings, load_settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.messaging.channels import build_email, mime_boundary
from yunying.messaging.outbox import Claimed, plan
from yunying.messaging.providers import OutgoingMessage
from yunying.messaging.render import Rendered
from yunying.reports.daily_email import publish_report, send_alert
from yunying.reports.kpis import compute_kpis
from yunying.store.engine import session_scope

MESSAGE_ID = re.compile(r"<[^<>@\s]+@example\.com>")  # the domain of mail_from


@pytest.fixture
def smtp(settings: Settings, smtp_server: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    return load_settings()


def assert_dated_and_identified(message: EmailMessage) -> str:
    date = parsedate_to_datetime(str(message["Date"]))
    assert date.tzinfo is not None
    assert abs(date - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert MESSAGE_ID.fullmatch(str(message["Message-ID"]))
    return str(message["Message-ID"])


def test_campaign_emails_carry_date_and_a_message_id_of_their_own(
    engine: Engine, smtp: Settings, smtp_server: SmtpSink
) -> None:
    silent_users(engine, smtp, 5)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, smtp, chosen) == {"sent": 5}
    ids = [assert_dated_and_identified(m) for m in smtp_server.messages]
    assert len(set(ids)) == 5


def test_a_test_send_carries_date_and_message_id(
    engine: Engine, smtp: Settings, smtp_server: SmtpSink
) -> None:
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "en"]) == 0
    [message] = smtp_server.messages
    assert_dated_and_identified(message)


def test_the_failure_alert_carries_date_and_message_id(
    smtp: Settings, smtp_server: SmtpSink
) -> None:
    send_alert(smtp, "Yunying: nightly failed", "see the Prefect UI")
    [message] = smtp_server.messages
    assert_dated_and_identified(message)


def test_the_report_is_dated_identified_and_its_charts_are_inline(
    engine: Engine, smtp: Settings, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    company = company_settings(smtp, tmp_path, users=100)  # enough activity for charts
    pull_all(engine, company)
    with session_scope(engine) as session:
        compute_lifecycle(session, END, company.lifecycle)
        kpis = compute_kpis(session, END, company.zone)
    with session_scope(engine) as session:
        publish_report(session, company, kpis)
    [message] = smtp_server.messages
    assert_dated_and_identified(message)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    images = [part for part in message.walk() if part.get_content_maintype() == "image"]
    assert images
    for image in images:
        assert image.get_content_disposition() == "inline"
        cid = str(image["Content-ID"])
        assert MESSAGE_ID.fullmatch(cid)
        assert f'src="cid:{cid.strip("<>")}"' in html.get_content()
    assert not list(message.iter_attachments())  # a mail client lists no attachment


def outgoing(text: str, html: str = "<p>hi</p>") -> OutgoingMessage:
    claimed = Claimed(1, "winback:2026-11-01:u1", "u1", "email", 1)
    rendered = Rendered("email", subject="We miss you", html=html, text=text)
    return OutgoingMessage(claimed, "u1@example.com", rendered, "http://x/unsubscribe", {})


@pytest.mark.parametrize(
    "text", ["plain", f"a line\n--{mime_boundary('winback:2026-11-01:u1')}\nmore"], ids=str
)
def test_an_email_keeps_its_two_parts_whatever_its_text_holds(text: str) -> None:
    """The boundary is chosen per key, not at random: a text holding that very line must
    not cut the message short (another boundary is chosen then)."""
    sent = build_email("ops@example.com", outgoing(text))
    parsed = message_from_bytes(sent.as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    parts = [part.get_content().replace("\r\n", "\n") for part in parsed.iter_parts()]
    assert parts == [text + "\n", "<p>hi</p>\n"]


def test_emails_share_their_header_classes_and_parse_each_header_by_its_name() -> None:
    first, second = (
        build_email("ops@example.com", outgoing("a")),
        build_email("ops@example.com", outgoing("b")),
    )
    assert isinstance(first["To"], AddressHeader) and isinstance(first["Date"], DateHeader)
    assert isinstance(first["Subject"], UnstructuredHeader)
    assert type(first["To"]) is type(second["To"])  # made once, not per header


def test_an_alert_the_mail_server_refuses_is_kept_and_says_refused_not_unreachable(
    smtp: Settings, smtp_server: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.bounce = set(smtp.report_recipients)  # 550 for every recipient
    kept = send_alert(smtp, "Yunying: nightly failed", "see the Prefect UI")
    assert kept is not None and "Subject: Yunying: nightly failed" in kept.read_text()
    assert "refused 1 of the report_recipients (SMTP [550])" in caplog.text
    assert "unreachable" not in caplog.text and "ops@example.com" not in caplog.text
