"""`yunying init` as a new user meets it: in a terminal it asks for the column of each
required field the table lacks (offering the table's columns) and writes the file; without
a terminal the error names the `--map` flag. Its sample reads enough rows to show the bad
ones, every reason with its count, and masks contacts only."""

from __future__ import annotations

import os
import pty
import re
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cli.main import main

BIN = Path(sys.executable).parent


def _shop(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id TEXT, created TEXT, mail TEXT, mobile TEXT)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?)",
            [
                (f"c{i}", "2026-10-01T00:00:00Z", f"c{i}@example.com", f"+861380000{i:04d}")
                for i in range(40)
            ]
            + [(f"bad{i}", "yesterday", None, None) for i in range(4)]  # past the first rows
            + [("bad 9", "2026-10-01T00:00:00Z", None, None)],
        )
        db.execute("CREATE TABLE purchases (no TEXT, customer TEXT, total TEXT, at TEXT)")
        db.execute("INSERT INTO purchases VALUES ('p1', 'c1', '9.90', '2026-10-02T00:00:00Z')")


def _flags(config: Path, db: Path, orders_table: str | None = "purchases") -> list[str]:
    """Every answer as a flag; the orders' table asked when `orders_table` is None."""
    args = ["init", "--config", str(config), "--timezone", "America/New_York", "--locale", "en"]
    args += ["--currency", "USD", "--sql", f"sqlite:///{db}", "--events-table", ""]
    args += ["--users-table", "customers"]
    if orders_table is not None:
        args += ["--orders-table", orders_table]
    for name, days in (("new", 7), ("active", 7), ("churn", 30), ("returned", 7)):
        args += [f"--{name}-days", str(days)]
    return args


def test_in_a_terminal_init_asks_for_the_columns_it_cannot_find(tmp_path: Path) -> None:
    db, config = tmp_path / "shop.db", tmp_path / "yunying.toml"
    _shop(db)
    # A wrong table and a wrong column are asked again.
    answers = ["id", "created", *[""] * 6]  # no optional column: 4 contacts, timezone, locale
    answers += ["purchase", "purchases", "no", "customer", "totl", "total", "at"]
    leader, terminal = pty.openpty()
    try:
        os.write(leader, "".join(f"{a}\n" for a in answers).encode())
        done = subprocess.run(
            [str(BIN / "yunying"), *_flags(config, db, orders_table=None)],
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
    assert "Column of users.user_id in customers (id, created, mail, mobile)" in done.stdout
    assert "Table of orders (empty: none; its tables: customers, purchases)" in done.stdout
    assert "the database has no table 'purchase'" in done.stdout
    assert "purchases has no column 'totl'" in done.stdout
    written = tomllib.loads(config.read_text(encoding="utf-8"))
    users, orders = written["sources"]
    assert users["mapping"] == {"user_id": "id", "signup_at": "created"}
    assert orders["mapping"] == {
        "order_id": "no", "user_id": "customer", "amount": "total", "created_at": "at"
    }  # fmt: skip


def test_without_a_terminal_the_error_names_the_map_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = tmp_path / "shop.db", tmp_path / "yunying.toml"
    _shop(db)
    args = [*_flags(config, db), "--map", "users.user_id=id", "--map", "users.signup_at=created"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "orders.amount: table purchases has no column 'amount';"
        " pass --map orders.amount=<column> (its columns: no, customer, total, at)"
    ) in err
    assert "mapping = {" not in err  # no yunying.toml syntax for a file not written
    assert not config.exists()


def test_a_sqlite_url_to_no_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "yunying.toml"
    assert main(_flags(config, tmp_path / "nope.db")) == 2
    err = capsys.readouterr().err
    assert f"no such file: {tmp_path / 'nope.db'}" in err
    assert "yunying.toml" not in err
    assert not (tmp_path / "nope.db").exists() and not config.exists()


def test_the_sample_shows_every_reject_reason_and_masks_contacts_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = tmp_path / "shop.db", tmp_path / "yunying.toml"
    _shop(db)
    args = _flags(config, db, orders_table="")
    for mapping in ("user_id=id", "signup_at=created", "email=mail", "phone=mobile"):
        args += ["--map", f"users.{mapping}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "40 of 45 rows read are valid" in out
    assert "4 would be rejected: signup_at: " in out and "e.g. row bad0:" in out
    assert "1 would be rejected: user_id: … is not a valid key" in out
    assert "e.g. row bad 9: user_id: 'bad 9' is not a valid key" in out
    shown = [line for line in out.splitlines() if "a mapped record" in line]
    assert len(shown) == 3
    assert '"email": "***@example.com"' in shown[0] and '"phone": "***00"' in shown[0]
    assert re.search(r'"holdout_bucket": \d+,', shown[0])  # not personal data: not masked
    assert "example.com" in out and "c0@" not in out and "+86138" not in out
