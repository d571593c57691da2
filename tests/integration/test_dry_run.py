"""A dry run (`dry_run = true`) plans and reports, and leaves no trace a later run can see."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.builders import DAY, silent_users
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage

pytestmark = pytest.mark.usefixtures("prefect")

FALL = """name = "fall-winback"
segment = ["silent"]
channels = ["webhook"]
template = "winback"
holdout_percent = 20
quiet_hours = false
{dry}

[[variants]]
name = "news"
template = "winback"

[[variants]]
name = "gift"
template = "winback_gift"
"""
OTHER = (
    'name = "other"\nsegment = ["silent"]\nchannels = ["webhook"]\ntemplate = "winback"\n'
    "holdout_percent = 0\nquiet_hours = false\n"
)


def _campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dry: bool) -> None:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    (folder / "fall-winback.toml").write_text(FALL.format(dry="dry_run = true" if dry else ""))
    (folder / "other.toml").write_text(OTHER)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(folder))


def _rows(engine: Engine, campaign: str) -> dict[str, int]:
    with session_scope(engine) as session:
        return dict(
            session.execute(  # type: ignore[arg-type]
                select(OutboxMessage.status, func.count())
                .where(OutboxMessage.campaign == campaign)
                .group_by(OutboxMessage.status)
            ).all()
        )


def _run(campaign: str, day: dt.date = DAY) -> list[str]:
    return ["run", "reactivation", "--campaign", campaign, "--date", str(day)]


def test_a_dry_run_reports_what_it_would_send_and_writes_nothing(
    engine: Engine,
    settings: Settings,
    local_server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    silent_users(engine, settings, 40)
    _campaigns(tmp_path, monkeypatch, dry=True)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    assert main(_run("fall-winback")) == 0
    assert _rows(engine, "fall-winback") == {}
    captured = capsys.readouterr()
    assert "'dry_run': {'would_send': {'webhook/gift':" in captured.out
    assert "'would_hold_out': " in captured.out
    assert "nothing was written or sent" in captured.out
    assert local_server.recorder.requests == 0

    # Another campaign the same night, and the frequency cap, see no trace of it.
    assert main(_run("other")) == 0
    assert _rows(engine, "other") == {"sent": 40}


def test_switching_a_dry_run_off_sends_that_date_normally(
    engine: Engine,
    settings: Settings,
    local_server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    silent_users(engine, settings, 40)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    _campaigns(tmp_path, monkeypatch, dry=True)
    assert main(_run("fall-winback")) == 0
    out = capsys.readouterr().out
    _campaigns(tmp_path, monkeypatch, dry=False)
    assert main(_run("fall-winback")) == 0
    rows = _rows(engine, "fall-winback")
    assert set(rows) == {"sent", "holdout"} and sum(rows.values()) == 40
    assert f"'would_hold_out': {rows['holdout']}" in out  # the dry run foretold the real one
    assert local_server.recorder.requests == rows["sent"]


def test_a_dry_run_says_how_many_quiet_hours_would_defer(
    engine: Engine,
    settings: Settings,
    local_server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Quiet hours around Shanghai's time now: its three users would be deferred, the three
    twelve hours away sent; the real run that follows does just that."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import update

    from cli.main import main
    from yunying.store.models import User

    users = silent_users(engine, settings, 6)
    with session_scope(engine) as session:
        session.execute(
            update(User).where(User.user_id.in_(users[3:])).values(timezone="Etc/GMT+4")
        )
    shanghai = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = shanghai - dt.timedelta(hours=1), shanghai + dt.timedelta(hours=1)
    quiet = f'quiet_hours = {{ start = "{start:%H:%M}", end = "{end:%H:%M}" }}'
    text = OTHER.replace("quiet_hours = false", quiet)
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", local_server.url + "/v1/webhook")
    folder = tmp_path / "campaigns"
    folder.mkdir()
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(folder))
    (folder / "other.toml").write_text(text + "dry_run = true\n")
    assert main(_run("other")) == 0
    out = capsys.readouterr().out
    assert "'would_send': {'webhook': 6}, 'would_defer_by_quiet_hours': 3" in out
    (folder / "other.toml").write_text(text)
    assert main(_run("other")) == 0
    assert _rows(engine, "other") == {"deferred": 3, "sent": 3}
