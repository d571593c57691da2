"""The daily report (日报): rendered from templates, archived as HTML, emailed once per date.

The email is multipart/alternative (text, then HTML in multipart/related with the charts as
inline PNG parts), with styles inlined and no external resources.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from yunying import templates
from yunying.config import Settings
from yunying.errors import PermanentError, TemplateError, TransientError
from yunying.messaging.channels import mail_domain, stamp
from yunying.messaging.smtp_connection import open_smtp
from yunying.reports.anomaly import METHOD
from yunying.reports.charts import dau_chart, retention_chart
from yunying.reports.headline import flag_status, headline
from yunying.reports.kpis import DailyKpis
from yunying.reports.running import RunningCampaign
from yunying.reports.uplift import MIN_ARM
from yunying.reports.words import Words
from yunying.store.engine import upsert_insert, utcnow
from yunying.store.models import ReportRecord


@dataclass(frozen=True)
class ReportFiles:
    html_path: Path
    eml_path: Path | None
    sent: bool
    subject: str


def subject_for(kpis: DailyKpis, words: Words) -> str:
    return words("subject", date=words.date(kpis.business_date), flags=len(kpis.raised_flags))


def words_for(settings: Settings, kpis: DailyKpis) -> Words:
    return Words(settings.default_locale, kpis.currency)


def charts(kpis: DailyKpis) -> dict[str, bytes]:
    """Only the charts that have something to show: a sparse section says "no data" instead."""
    dau_flag = next((f for f in kpis.flags if f.kpi == "dau"), None)
    offsets = [1, 3, 7]
    images = {}
    if any(n for _, n in kpis.dau_trend):
        images["dau"] = dau_chart(kpis.dau_trend, dau_flag.band if dau_flag else None)
    rows = [(str(c.signup_day), [c.retention.get(o) for o in offsets]) for c in kpis.cohorts]
    if any(v is not None for _, values in rows for v in values):
        images["retention"] = retention_chart(rows, offsets)
    return images


def render(
    kpis: DailyKpis,
    images: dict[str, str],
    words: Words,
    running: Sequence[RunningCampaign] = (),
) -> tuple[str, str]:
    """HTML and text; `images` maps each chart to its src (a cid: or a file name)."""
    env = templates.reports()
    context = {
        "k": kpis,
        "running": running,
        "images": images,
        "w": words,
        "headline": headline(kpis, words),
        "flag_status": lambda flag: flag_status(flag, kpis.business_date, words),
        "method": words("method_text", **METHOD),
        "min_arm": MIN_ARM,
    }
    return env.get_template("daily.html").render(context), env.get_template("daily.txt").render(
        context
    )


def build_message(
    settings: Settings, subject: str, html: str, text: str, images: dict[str, tuple[str, bytes]]
) -> EmailMessage:
    """multipart/alternative: text, then HTML inside multipart/related with the charts."""
    message = EmailMessage(policy=SMTP)
    message["From"] = settings.mail_from
    message["To"] = ", ".join(settings.report_recipients)
    message["Subject"] = subject
    stamp(message, settings.mail_from)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    html_part = message.get_body(preferencelist=("html",))
    if html_part is None:
        raise TemplateError("the report has no HTML part")
    for name, (cid, png) in images.items():
        # Shown in the HTML where its cid: is referenced, not listed as an attachment.
        html_part.add_related(
            png,
            maintype="image",
            subtype="png",
            cid=f"<{cid}>",
            filename=f"{name}.png",
            disposition="inline",
        )
    return message


def send_alert(settings: Settings, subject: str, text: str) -> Path | None:
    """A plain-text email to the report recipients, e.g. when a nightly run fails."""
    message = EmailMessage(policy=SMTP)
    message["From"] = settings.mail_from
    message["To"] = ", ".join(settings.report_recipients)
    message["Subject"] = subject
    stamp(message, settings.mail_from)
    message.set_content(text)
    name = f"alert-{utcnow():%Y%m%dT%H%M%S}"
    try:
        return deliver(settings, message, name)
    except (TransientError, PermanentError, smtplib.SMTPException) as exc:  # kept, not lost
        path = _write_eml(settings, message, name)
        logging.getLogger(__name__).warning("alert not emailed (%s): written to %s", exc, path)
        return path


def publish_report(
    session: Session,
    settings: Settings,
    kpis: DailyKpis,
    force: bool = False,
    running: Sequence[RunningCampaign] = (),
) -> ReportFiles:
    """Archive the report and email it; a date already sent is only resent with `force`.

    Call it at the start of its own transaction: the send is claimed by taking the date's
    report row (`claim_send`), which holds the row, or SQLite's one write lock, until the
    transaction ends, so a second run of the same date waits and then sees it sent."""
    day = kpis.business_date
    words = words_for(settings, kpis)
    folder = settings.report_path
    folder.mkdir(parents=True, exist_ok=True)
    pngs = charts(kpis)
    for name, png in pngs.items():
        (folder / f"daily-{day}-{name}.png").write_bytes(png)
    html_archive, _ = render(
        kpis, {name: f"daily-{day}-{name}.png" for name in pngs}, words, running
    )
    html_path = folder / f"daily-{day}.html"
    html_path.write_text(html_archive, encoding="utf-8")

    subject = subject_for(kpis, words)
    eml_path: Path | None = None
    sent = claim_send(session, day, force)
    if sent:
        domain = mail_domain(settings.mail_from)
        cids = {name: make_msgid(name, domain=domain)[1:-1] for name in pngs}
        html, text = render(
            kpis, {name: f"cid:{cid}" for name, cid in cids.items()}, words, running
        )
        images = {name: (cids[name], png) for name, png in pngs.items()}
        message = build_message(settings, subject, html, text, images)
        eml_path = deliver(settings, message, f"daily-{day}")
    session.execute(
        update(ReportRecord)
        .where(ReportRecord.business_date == day, ReportRecord.kind == "daily")
        .values(path=str(html_path), kpis=json.dumps(kpis.as_json()))
    )
    return ReportFiles(html_path, eml_path, sent, subject)


def claim_send(session: Session, day: dt.date, force: bool) -> bool:
    """Whether this run sends the date's report: one conditional UPDATE of the date's row,
    which locks it until the transaction ends (a send that fails rolls the claim back)."""
    session.execute(
        upsert_insert(session, ReportRecord)
        .values(business_date=day, kind="daily", created_at=utcnow(), path="", kpis="")
        .on_conflict_do_nothing(index_elements=["business_date", "kind"])
    )
    claim = (
        update(ReportRecord)
        .where(ReportRecord.business_date == day, ReportRecord.kind == "daily")
        .values(sent_at=utcnow())
    )
    if not force:
        claim = claim.where(ReportRecord.sent_at.is_(None))
    result = session.execute(claim)
    return bool(cast(CursorResult[Any], result).rowcount == 1)


def deliver(settings: Settings, message: EmailMessage, name: str) -> Path | None:
    """Send to the report recipients over SMTP, or write `outbox/reports/<name>.eml`."""
    smtp = settings.smtp
    if not smtp.host:
        return _write_eml(settings, message, name)
    server = f"SMTP server {smtp.host}:{smtp.port}"
    try:
        with open_smtp(smtp) as connection:
            connection.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        raise PermanentError(
            f"{server} refused {len(exc.recipients)} of the report_recipients (SMTP {codes})"
        ) from exc
    except smtplib.SMTPResponseException as exc:  # it answered, and said no
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        check = {
            smtplib.SMTPAuthenticationError: ": check smtp.username and smtp.password",
            smtplib.SMTPSenderRefused: ": check mail_from",
        }.get(type(exc), "")
        error = TransientError if exc.smtp_code < 500 else PermanentError
        raise error(f"{server} refused: {exc.smtp_code} {reply[:120]}{check}") from exc
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise TransientError(f"{server} unreachable") from exc
    return None


def _write_eml(settings: Settings, message: EmailMessage, name: str) -> Path:
    path = settings.outbox_path / "reports" / f"{name}.eml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(message.as_bytes())
    return path
