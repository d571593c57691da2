"""Sending off on a new store, turned on by `yunying sending enable` or the setting; and
`yunying init` refusing a source it cannot read, writing nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cli.main import main
from tests.builders import DAY, silent_users
from tests.rig import SmtpSink
from yunying.config import Settings

pytestmark = pytest.mark.usefixtures("prefect")


def _campaign(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    channel: str,
    *more: str,
    holdout: int = 0,
) -> None:
    """A campaign file `name` on `channel` for silent users, no quiet hours, with `more` TOML
    lines, in the campaign folder the settings read."""
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir(exist_ok=True)
    (campaigns / f"{name}.toml").write_text(
        f'name = "{name}"\nsegment = ["silent"]\nchannels = ["{channel}"]\n'
        f'template = "winback"\nholdout_percent = {holdout}\nquiet_hours = false\n'
        + "".join(f"{line}\n" for line in more)
    )
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(campaigns))


def test_sending_is_off_until_enabled_and_the_setting_overrides_the_store(
    engine: Engine,
    settings: Settings,
    smtp_server: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("YUNYING_SENDING")
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    _campaign(tmp_path, monkeypatch, "mail", "email", "frequency_cap_days = 0")
    silent_users(engine, settings, 4)

    assert main(["sending", "status"]) == 0
    assert "sending is off" in capsys.readouterr().out
    # Staff messages are not campaign messages: a test send goes out.
    assert main(["test-send", "mail", "--to", "staff@example.com", "--locale", "en"]) == 0
    assert [m["To"] for m in smtp_server.messages] == ["staff@example.com"]

    assert main(["run", "reactivation", "--campaign", "mail", "--date", str(DAY)]) == 0
    assert "SENDING IS OFF" in capsys.readouterr().err
    assert len(smtp_server.messages) == 1
    assert len(list((settings.outbox_path / "email").glob("*.eml"))) == 4

    silent_users(engine, settings, 4, day=DAY + dt.timedelta(days=1))  # still silent a day on
    assert main(["sending", "enable"]) == 0
    assert "sending is on" in capsys.readouterr().out
    later = str(DAY + dt.timedelta(days=1))
    assert main(["run", "reactivation", "--campaign", "mail", "--date", later]) == 0
    assert "SENDING IS OFF" not in capsys.readouterr().err
    assert len(smtp_server.messages) == 1 + 4

    monkeypatch.setenv("YUNYING_SENDING", "false")  # the setting wins over the store
    assert main(["sending", "status"]) == 0
    assert "sending is off" in capsys.readouterr().out


def test_init_refuses_a_mapping_to_a_missing_column_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as shop:
        shop.execute("CREATE TABLE customers (id TEXT, created TEXT)")
        shop.execute("INSERT INTO customers VALUES ('c1', '2026-01-01T00:00:00Z')")
    config = tmp_path / "yunying.toml"
    code = main(
        [
            "init", "--config", str(config), "--timezone", "UTC", "--sql", f"sqlite:///{db}",
            "--users-table", "customers", "--orders-table", "", "--events-table", "",
            "--map", "users.user_id=id", "--map", "users.signup_at=signup",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "users.signup_at: table customers has no column 'signup'" in err
    assert "its columns: id, created" in err
    assert not config.exists()


def test_init_asks_in_a_terminal_for_what_no_flag_gives(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as shop:
        shop.execute("CREATE TABLE customers (id TEXT, created TEXT)")
        shop.execute("INSERT INTO customers VALUES ('c1', '2026-01-01T00:00:00Z')")
    config = tmp_path / "yunying.toml"
    primary, secondary = os.openpty()  # a terminal on stdin, as a person at a keyboard has
    # time zone, locale, currency, new/active/churn/returned days (empty: the default), then
    # no optional column (4 contacts, time zone, locale)
    os.write(primary, b"America/New_York\nen\nusd\n\n\n45\n\n" + b"\n" * 6)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "init",
            "--config",
            str(config),
            "--sql",
            f"sqlite:///{db}",
            "--users-table",
            "customers",
            "--orders-table",
            "",
            "--events-table",
            "",
            "--map",
            "users.user_id=id",
            "--map",
            "users.signup_at=created",
        ],
        stdin=secondary,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("YUNYING_")},
    )
    os.close(secondary)
    os.close(primary)
    assert done.returncode == 0, done.stdout + done.stderr
    written = config.read_text()
    assert 'timezone = "America/New_York"' in written and 'currency = "USD"' in written
    assert "churn_days = 45" in written and "active_days = 7" in written
    assert 'default_locale = "en"' in written


def test_messages_written_to_files_while_sending_is_off_reach_no_one_and_cap_no_one(
    engine: Engine,
    settings: Settings,
    smtp_server: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A company tries its campaigns for a few nights with sending off, then turns sending
    on: the next night's messages go to every user the evaluation wrote to or held out,
    under a 7-day frequency cap and the cross-campaign cap, as if the evaluation had never
    happened (it reached no one)."""
    monkeypatch.delenv("YUNYING_SENDING")
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    _campaign(tmp_path, monkeypatch, "mail", "email", "frequency_cap_days = 7")
    _campaign(tmp_path, monkeypatch, "other", "email", "frequency_cap_days = 7", holdout=50)
    silent_users(engine, settings, 8)
    assert main(["run", "reactivation", "--campaign", "other", "--date", str(DAY)]) == 0
    written = len(list((settings.outbox_path / "email").glob("*.eml")))
    assert 0 < written < 8  # and the others held out

    assert main(["sending", "enable"]) == 0
    # The evaluated date stays done: run again with sending on, it sends nothing.
    assert main(["run", "reactivation", "--campaign", "other", "--date", str(DAY)]) == 0
    assert smtp_server.messages == []
    later = DAY + dt.timedelta(days=1)
    silent_users(engine, settings, 8, day=later)
    assert main(["run", "reactivation", "--campaign", "mail", "--date", str(later)]) == 0
    capsys.readouterr()
    assert sorted(m["To"] for m in smtp_server.messages) == [f"s{i}@example.com" for i in range(8)]


def test_a_wechat_campaign_with_sending_off_writes_its_messages_to_a_file(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("YUNYING_SENDING")
    _campaign(tmp_path, monkeypatch, "wx", "wechat")
    silent_users(engine, settings, 3, openid="o-wx", wechat_opt_in=True)
    assert main(["run", "reactivation", "--campaign", "wx", "--date", str(DAY)]) == 0
    lines = (settings.outbox_path / "wechat.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_a_run_names_the_channels_with_no_provider_whose_messages_go_to_files(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _campaign(tmp_path, monkeypatch, "app", "push")
    silent_users(engine, settings, 2)
    assert main(["run", "reactivation", "--campaign", "app", "--date", str(DAY)]) == 0
    err = capsys.readouterr().err
    assert "no provider configured for push: those messages are written to the file outbox" in err
    assert "SENDING IS OFF" not in err
    assert len((settings.outbox_path / "push.jsonl").read_text().splitlines()) == 2
