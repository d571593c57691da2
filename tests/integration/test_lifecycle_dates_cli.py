"""Lifecycle dates from the command line, as a new user met them (issue 21, second trial):
each error's first suggestion works, a future date is refused before any advice, and a
changed setting is told apart from a plain rerun."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from cli.main import main
from tests.builders import load_records
from tests.integration.test_lifecycle_range import D, _users_and_events
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.store.engine import session_scope

pytestmark = pytest.mark.usefixtures("prefect")


def _loaded(engine: Engine, settings: Settings, *days: dt.date) -> None:
    users, events = _users_and_events(200)
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
    for day in days:
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle)


def test_a_campaign_for_an_earlier_date_names_the_latest_date_which_works(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = D - dt.timedelta(days=7)
    _loaded(engine, settings, earlier, D)
    assert main(["run", "reactivation", "--date", str(earlier)]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"campaigns plan on the latest computed date's states: run the campaign with " \
           f"`--date {D}`" in said, said  # fmt: skip
    # A recompute of the earlier date goes on to the latest: it would not help a campaign.
    assert "--from" not in said
    assert f"`yunying run lifecycle --date {earlier} --discard-later`" in said
    assert main(["run", "reactivation", "--date", str(D)]) == 0


def test_segments_show_refuses_a_future_date_before_suggesting_to_compute_it(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _loaded(engine, settings, D)
    today = dt.datetime.now(settings.zone).date()
    future = today + dt.timedelta(days=1)
    assert main(["segments", "show", "high-value-silent", "--date", str(future)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: --date {future} is after today ({today} in Asia/Shanghai): a business date "
        f"must be a day that has begun (the default is yesterday, {today - dt.timedelta(days=1)})"
    )


def test_a_changed_threshold_is_said_and_a_plain_rerun_is_not_called_one(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _loaded(engine, settings, D)
    assert main(["run", "lifecycle", "--date", str(D)]) == 0
    plain = capsys.readouterr().out
    assert f"  {D}: recomputed from {D}\n" in plain
    assert "settings changed" not in plain

    monkeypatch.setenv("YUNYING_LIFECYCLE__CHURN_DAYS", "45")
    assert main(["run", "lifecycle", "--date", str(D)]) == 0
    changed = capsys.readouterr().out
    assert (
        f"  {D}: lifecycle settings changed since the run for {D}: every user recomputed"
        f" from {D}\n" in changed
    ), changed
    # Once run under the new settings, a rerun is plain again.
    assert main(["run", "lifecycle", "--date", str(D)]) == 0
    assert "settings changed" not in capsys.readouterr().out
