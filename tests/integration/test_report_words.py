"""The daily report says every message status in the report's language."""

import dataclasses

import pytest
from sqlalchemy import Engine

from tests.builders import DAY
from yunying.config import Settings
from yunying.messaging.outbox import STATUSES
from yunying.reports.daily_email import render
from yunying.reports.kpis import compute_kpis
from yunying.reports.words import WORDS, Words
from yunying.store.engine import session_scope


@pytest.mark.parametrize("locale", sorted(WORDS))
def test_every_outbox_status_has_words(locale: str) -> None:
    assert all(f"status_{status}" in WORDS[locale] for status in STATUSES)


def test_the_zh_cn_report_names_message_statuses_in_chinese(
    engine: Engine, settings: Settings
) -> None:
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, settings.zone)
    kpis = dataclasses.replace(kpis, messages={"sent": 7, "holdout": 2, "suppressed": 1})
    html, text = render(kpis, {}, Words("zh-CN", "CNY"))
    for page in (html, text):
        for word in ("已发送", "对照组", "已屏蔽"):
            assert word in page
    assert not any(f"{english}:" in text for english in ("sent", "holdout", "suppressed"))
    assert ">sent<" not in html and ">holdout<" not in html
