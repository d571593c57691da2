"""`yunying init` for a company whose users should be reachable: columns named as Yunying's
fields are used and said, a terminal is offered the optional fields (contacts, consent, time
zone, locale), and a channel with a contact but no consent column is warned about."""

from __future__ import annotations

import os
import pty
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cli.main import main

BIN = Path(sys.executable).parent


def _shop(path: Path, columns: tuple[str, ...], row: tuple[str, ...]) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE customers ({', '.join(f'{c} TEXT' for c in columns)})")
        db.executemany(
            f"INSERT INTO customers VALUES ({', '.join('?' * len(columns))})",
            [tuple(value.format(i=i) for value in row) for i in range(5)],
        )


def _flags(config: Path, db: Path) -> list[str]:
    args = ["init", "--config", str(config), "--timezone", "Asia/Shanghai", "--locale", "en"]
    args += ["--currency", "USD", "--sql", f"sqlite:///{db}", "--users-table", "customers"]
    args += ["--orders-table", "", "--events-table", ""]
    for name, days in (("new", 7), ("active", 7), ("churn", 30), ("returned", 7)):
        args += [f"--{name}-days", str(days)]
    return [*args, "--map", "users.user_id=id", "--map", "users.signup_at=created"]


def test_columns_named_as_fields_are_used_and_a_channel_without_consent_is_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = tmp_path / "shop.db", tmp_path / "yunying.toml"
    columns = ("id", "created", "email", "email_opt_in", "phone")
    _shop(db, columns, ("c{i}", "2026-10-01T00:00:00Z", "c{i}@example.com", "1", "+8613800{i}"))
    assert main(_flags(config, db)) == 0
    out = capsys.readouterr().out
    assert "read from columns of the same name: email, phone, email_opt_in" in out
    assert '"email_opt_in": true' in out
    assert "no consent column (email_opt_in)" not in out
    assert (
        "WARNING: phone is mapped but no consent column (sms_opt_in) is: nobody will get"
        " marketing messages by sms. Map the column recording it: --map users.sms_opt_in=<column>"
    ) in out


def test_no_consent_column_is_warned_unless_consent_is_assumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "shop.db"
    _shop(db, ("id", "created", "email"), ("c{i}", "2026-10-01T00:00:00Z", "c{i}@example.com"))
    assert main(_flags(tmp_path / "a.toml", db)) == 0
    out = capsys.readouterr().out
    assert "WARNING: email is mapped but no consent column (email_opt_in) is" in out
    monkeypatch.setenv("YUNYING_CONSENT__ASSUME_OPT_IN_WHEN_MISSING", "true")
    monkeypatch.setenv("YUNYING_CONFIG", str(tmp_path / "a.toml"))
    assert main(["init", "--check"]) == 0
    assert "WARNING" not in capsys.readouterr().out


def test_no_contact_column_is_warned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "shop.db"
    _shop(db, ("id", "created"), ("c{i}", "2026-10-01T00:00:00Z"))
    assert main(_flags(tmp_path / "a.toml", db)) == 0
    assert "WARNING: no contact column (email, phone, push_token, openid)" in (
        capsys.readouterr().out
    )


def test_orders_without_a_status_column_are_warned_naming_the_likely_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unmapped, every order counts as paid: a trial's refunds (EUR 41,072) were revenue."""
    db = tmp_path / "shop.db"
    _shop(db, ("id", "created"), ("c{i}", "2026-10-01T00:00:00Z"))
    with sqlite3.connect(db) as shop:
        shop.execute("CREATE TABLE sales (ref TEXT, cust TEXT, total TEXT, at TEXT, order_status)")
        shop.execute("INSERT INTO sales VALUES ('o1', 'c1', '9.50', '2026-10-02', 'refunded')")
    args = [*_flags(tmp_path / "a.toml", db), "--orders-table", "sales"]
    args += ["--map", "orders.order_id=ref", "--map", "orders.user_id=cust"]
    args += ["--map", "orders.amount=total", "--map", "orders.created_at=at"]
    assert main(args) == 0
    assert (
        "WARNING: no status column is mapped: every order counts as paid, refunds and"
        " cancellations too, in revenue and paying users. Map the one (perhaps order_status)"
        " whose values are paid, refunded or cancelled: --map orders.status=<column>."
    ) in capsys.readouterr().out
    args += ["--map", "orders.status=order_status", "--config", str(tmp_path / "b.toml")]
    assert main(args) == 0
    assert "no status column" not in capsys.readouterr().out


def test_times_without_an_offset_are_said_to_be_read_as_utc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shop's orders in its own wall-clock time would shift evening orders a day."""
    db = tmp_path / "shop.db"
    _shop(db, ("id", "created"), ("c{i}", "2026-10-01T00:00:00Z"))
    with sqlite3.connect(db) as shop:
        shop.execute("CREATE TABLE sales (ref TEXT, cust TEXT, total TEXT, at TEXT)")
        shop.execute("INSERT INTO sales VALUES ('o1', 'c1', '9.50', '2026-10-02 20:15:00')")
        shop.execute("INSERT INTO sales VALUES ('o2', 'c1', '9.50', '2026-10-02T20:15:00Z')")
    args = [*_flags(tmp_path / "a.toml", db), "--orders-table", "sales"]
    args += ["--map", "orders.order_id=ref", "--map", "orders.user_id=cust"]
    args += ["--map", "orders.amount=total", "--map", "orders.created_at=at"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("without an offset") == 1
    assert (
        "1 of 2 rows have a time without an offset, read as UTC: if they are local times, add"
        ' naive_times_in = "Asia/Shanghai" (their zone) to this source'
    ) in out


def test_a_hurried_init_is_told_its_defaults_takes_a_path_and_refuses_no_valid_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three things a trial met: defaults written without a word, a file path refused as
    "not a database URL", and settings written though not one row was valid."""
    db = tmp_path / "shop.db"
    _shop(db, ("id", "created", "email"), ("c{i}", "2026-10-01T00:00:00Z", "c{i}@example.com"))
    args = _flags(tmp_path / "a.toml", db)
    args = [a for a in args if a not in ("--timezone", "Asia/Shanghai", "--locale", "en")]
    args[args.index("--sql") + 1] = str(db)  # a path, not a URL
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        "NOTE: not given, the defaults are written: --timezone Asia/Shanghai, --locale zh-CN."
        " The time zone dates every stored day and cannot change once data is pulled."
    ) in out
    assert f'url = "sqlite:///{db.resolve()}"' in (tmp_path / "a.toml").read_text()

    wrong = [*_flags(tmp_path / "b.toml", db), "--map", "users.signup_at=email"]
    assert main(wrong) == 2
    out = capsys.readouterr().out
    assert "0 of 5 rows read are valid" in out
    assert "PROBLEM: no row read is valid: check the mapping against the reasons below" in out
    assert not (tmp_path / "b.toml").exists()


def test_in_a_terminal_init_offers_contacts_consent_and_time_zone(tmp_path: Path) -> None:
    db, config = tmp_path / "shop.db", tmp_path / "yunying.toml"
    columns = ("id", "created", "mail", "ok_mail", "tz")
    _shop(db, columns, ("c{i}", "2026-10-01T00:00:00Z", "c{i}@example.com", "yes", "Europe/Paris"))
    # email, phone, push_token, openid; email_opt_in (asked again); timezone, locale
    answers = ["mail", "", "", "", "ok", "ok_mail", "tz", ""]
    leader, terminal = pty.openpty()
    try:
        os.write(leader, "".join(f"{a}\n" for a in answers).encode())
        done = subprocess.run(
            [str(BIN / "yunying"), *_flags(config, db)],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "YUNYING_HOME": str(tmp_path / "var")},
        )
    finally:
        os.close(terminal)
        os.close(leader)
    assert done.returncode == 0, done.stderr
    assert "Column of users.email in customers, optional (empty: none; id, created, mail" in (
        done.stdout
    )
    assert "customers has no column 'ok'" in done.stdout
    assert "Column of users.sms_opt_in" not in done.stdout  # no phone: its consent not asked
    assert '"timezone": "Europe/Paris"' in done.stdout and '"email_opt_in": true' in done.stdout
    assert "no consent column (email_opt_in)" not in done.stdout
    written = tomllib.loads(config.read_text(encoding="utf-8"))
    assert written["sources"][0]["mapping"] == {
        "user_id": "id", "signup_at": "created", "email": "mail", "email_opt_in": "ok_mail",
        "timezone": "tz",
    }  # fmt: skip
