"""The daily report shows suppressed messages by the reason the outbox recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.builders import DAY, silent_users
from yunying.config import Settings
from yunying.messaging.campaign import Campaign
from yunying.messaging.outbox import plan
from yunying.store.engine import session_scope

pytestmark = pytest.mark.usefixtures("prefect")


def _campaign(name: str, priority: int) -> Campaign:
    return Campaign.model_validate(
        {
            "name": name,
            "segment": ["silent"],
            "channels": ["email"],
            "template": "winback",
            "holdout_percent": 0,
            "priority": priority,
        }
    )


def _page_text(path: str) -> str:
    html = Path(path).read_text(encoding="utf-8")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize(
    ("locale", "status", "reason", "wrong"),
    [
        ("en", "suppressed", "another campaign has this user tonight", "opted out"),
        ("zh-CN", "已屏蔽", "今晚已有其他活动触达该用户", "用户退订"),
    ],
)
def test_the_report_names_each_suppression_by_its_recorded_reason(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    locale: str,
    status: str,
    reason: str,
    wrong: str,
) -> None:
    from cli.main import main

    silent_users(engine, settings, 12)
    with session_scope(engine) as session:  # two campaigns on one night: the cap holds
        plan(session, _campaign("first", 10), DAY)
        plan(session, _campaign("second", 20), DAY)
    monkeypatch.setenv("YUNYING_DEFAULT_LOCALE", locale)
    assert main(["run", "report", "--date", str(DAY)]) == 0
    html = re.search(r"'html': '([^']+)'", capsys.readouterr().out)
    assert html is not None
    page = _page_text(html.group(1))
    assert re.search(rf"{status} 12 {reason} 12", page), page[-600:]
    assert wrong not in page


def test_the_report_does_not_call_an_evaluations_messages_sent(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Sending off: the night's messages went to files, and the report says so."""
    from cli.main import main

    monkeypatch.delenv("YUNYING_SENDING")
    monkeypatch.setenv("YUNYING_DEFAULT_LOCALE", "en")
    (tmp_path / "mail.toml").write_text(
        'name = "mail"\nsegment = ["silent"]\nchannels = ["email"]\ntemplate = "winback"\n'
        "holdout_percent = 0\nquiet_hours = false\n"
    )
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(tmp_path))
    silent_users(engine, settings, 5)
    assert main(["run", "reactivation", "--campaign", "mail", "--date", str(DAY)]) == 0
    capsys.readouterr()
    assert main(["run", "report", "--date", str(DAY)]) == 0
    html = re.search(r"'html': '([^']+)'", capsys.readouterr().out)
    assert html is not None
    page = _page_text(html.group(1))
    assert "written to files (sending off): sent to no one 5" in page
    assert not re.search(r"\bsent [1-9]", page)
