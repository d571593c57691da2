"""A file source whose `path` matches nothing is an error, not an empty source: `init --check`
stops naming the path, and a pull fails that source (the others still pull). A folder whose
files were all loaded already is a night with nothing new, not an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cli.main import main
from yunying.config import Settings
from yunying.store.engine import session_scope
from yunying.store.models import Order, User

pytestmark = pytest.mark.usefixtures("prefect")

USERS = "user_id,signup_at\nu1,2026-10-01T00:00:00Z\nu2,2026-10-02T00:00:00Z\n"


def _file_sources(monkeypatch: pytest.MonkeyPatch, **paths: str) -> None:
    sources = [
        {"kind": "file", "name": name, "entity": name, "path": path, "format": "csv"}
        for name, path in paths.items()
    ]
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps(sources))


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("exports/orders.csv", "no such file: {dir}/exports/orders.csv"),
        ("exports/orders-*.csv", "no file matches {dir}/exports/orders-*.csv"),
    ],
    ids=["a-file", "a-glob"],
)
def test_init_check_stops_on_a_path_that_matches_no_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: str,
    said: str,
) -> None:
    (tmp_path / "users.csv").write_text(USERS, encoding="utf-8")
    _file_sources(monkeypatch, users=str(tmp_path / "users.csv"), orders=str(tmp_path / given))
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    assert main(["init", "--check"]) == 2
    out = capsys.readouterr().out
    assert "PROBLEM: source orders: " + said.format(dir=tmp_path) in out
    assert "the folder" in out and "does not exist" in out  # exports/ is not there either
    assert "2 of 2 rows read are valid" in out  # the users source is read as usual
    assert "(no rows)" not in out
    # Activity is said from what was read: the orders were not.
    assert "activity is derived from orders" not in out
    assert "Activity, from the sources read (orders could not be): no events and no orders" in out


def test_a_pull_fails_the_source_that_matches_no_file_and_pulls_the_others(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "users.csv").write_text(USERS, encoding="utf-8")
    exports = tmp_path / "exports"
    exports.mkdir()
    _file_sources(
        monkeypatch, users=str(tmp_path / "users.csv"), orders=str(exports / "orders-*.csv")
    )
    assert main(["run", "pull"]) == 2
    err = capsys.readouterr().err
    assert "1 of 2 sources failed" in err
    assert f"source orders: no file matches {exports}/orders-*.csv" in err
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2

    (exports / "orders-1.csv").write_text(
        "order_id,user_id,amount,created_at\no1,u1,9.90,2026-10-03T00:00:00Z\n",
        encoding="utf-8",
    )
    assert main(["run", "pull"]) == 0
    # The next night nothing new is there: every file that matches is loaded already.
    assert main(["run", "pull"]) == 0
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_init_check_reads_on_past_the_first_file_a_glob_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bad rows are in the second of three exports: the sample reads them too."""
    head = "order_id,user_id,amount,created_at\n"
    for n, body in enumerate(
        [
            "a1,u1,5,2026-10-01T00:00:00Z\na2,u2,7,2026-10-01T00:00:00Z\n",
            "b1,u1,abc,2026-10-02T00:00:00Z\nb2,u2,3,2026-10-02T00:00:00Z\n",
            "c1,u1,2,2026-10-03T00:00:00Z\n",
        ]
    ):
        (tmp_path / f"orders-{n}.csv").write_text(head + body, encoding="utf-8")
    (tmp_path / "users.csv").write_text(USERS, encoding="utf-8")
    _file_sources(
        monkeypatch, users=str(tmp_path / "users.csv"), orders=str(tmp_path / "orders-*.csv")
    )
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    assert main(["init", "--check"]) == 0
    out = capsys.readouterr().out
    assert "4 of 5 rows read are valid" in out
    assert "1 would be rejected: amount:" in out and "e.g. row b1" in out
