"""`segments show --date` for an earlier lifecycle date: states from the recorded history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.builders import load_records
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.segments.compile import compile_segment
from yunying.segments.definition import SegmentLibrary
from yunying.store.engine import session_scope

LATEST = dt.date(2026, 11, 1)
EARLIER = dt.date(2026, 10, 31)
SEGMENTS = {
    # lapsed in the last three days: state and days in it both move day by day
    "lapsed-recently": '{ all = [ { state = ["silent"] }, { days_in_state = { max = 2 } } ] }',
    "not-active": '{ not = { state = ["active", "new"] } }',
    "lapsed-en": '{ all = [ { segment = "lapsed-recently" }, { locale = ["en"] } ] }',
    "lapsed-spenders": '{ all = [ { state = ["silent"] }, { tier = ["low"] } ] }',
}


def _library(folder: Path) -> SegmentLibrary:
    folder.mkdir()
    for name, where in SEGMENTS.items():
        (folder / f"{name}.toml").write_text(f'name = "{name}"\nwhere = {where}\n')
    return SegmentLibrary(folder)


def _store(engine: Engine, settings: Settings) -> None:
    """Users last seen on each day of October: one turns silent every day."""
    users, events = [], []
    for i in range(60):
        seen = dt.datetime(2026, 10, 1, 6) + dt.timedelta(days=i % 31, hours=i % 5)
        users.append(
            {
                "user_id": f"h{i:03d}",
                "signup_at": "2026-06-01T00:00:00Z",
                "locale": "en" if i % 3 else "zh-CN",
                "timezone": "Asia/Shanghai",
            }
        )
        events.append(
            {"event_id": f"h{i}", "user_id": f"h{i:03d}", "name": "app_open",
             "occurred_at": seen.isoformat() + "Z"}
        )  # fmt: skip
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)


def _members(engine: Engine, settings: Settings, library: SegmentLibrary, name: str) -> set[str]:
    with session_scope(engine) as session:
        statement = compile_segment(session, library, library.get(name), EARLIER, settings.zone)
        return set(session.scalars(statement))


def test_an_earlier_dates_segment_is_what_that_dates_run_gave(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    _store(engine, settings)
    library = _library(tmp_path / "segments")
    for offset in range(10, -1, -1):  # nightly runs up to 10-31
        with session_scope(engine) as session:
            day = EARLIER - dt.timedelta(days=offset)
            compute_lifecycle(session, day, settings.lifecycle)
    history = [n for n in SEGMENTS if n != "lapsed-spenders"]
    expected = {name: _members(engine, settings, library, name) for name in history}
    with session_scope(engine) as session:
        compute_lifecycle(session, LATEST, settings.lifecycle)
    assert all(expected.values())  # each segment has members on 10-31 ...
    assert expected["lapsed-recently"] != _latest(engine, settings, library)  # ... and moved

    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(library.folder))
    for name in history:
        assert _members(engine, settings, library, name) == expected[name]
        assert main(["segments", "show", name, "--date", EARLIER.isoformat()]) == 0
        out = capsys.readouterr().out
        assert f"segment {name} on {EARLIER}: {len(expected[name])} users" in out

    # Tiers are kept for the latest date only: the error says so, and which dates work.
    assert main(["segments", "show", "lapsed-spenders", "--date", EARLIER.isoformat()]) == 2
    err = capsys.readouterr().err
    assert f"latest lifecycle date only ({LATEST})" in err
    assert f"from {EARLIER - dt.timedelta(days=10)} to {LATEST}" in err
    assert main(["segments", "show", "lapsed-spenders", "--date", LATEST.isoformat()]) == 0


def _latest(engine: Engine, settings: Settings, library: SegmentLibrary) -> set[str]:
    with session_scope(engine) as session:
        segment = library.get("lapsed-recently")
        return set(
            session.scalars(compile_segment(session, library, segment, LATEST, settings.zone))
        )
