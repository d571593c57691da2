"""Lifecycle dates from the command line, as a new user met them (issue 21, second trial):
each error's first suggestion works, a future date is refused before any advice, and a
changed setting is told apart from a plain rerun."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from cli.main import main
from tests.builders import load_records
from tests.integration.test_lifecycle_range import D, _users_and_events
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade
from yunying.store.models import LifecycleRun, LifecycleState, LifecycleTransition

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
    _loaded(engine, settings, D - dt.timedelta(days=4))
    assert main(["run", "lifecycle", "--date", str(D)]) == 0
    capsys.readouterr()
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
    # Recomputing earlier dates, still under the old settings, says so, though the latest
    # date's run is under the new ones.
    before = D - dt.timedelta(days=3)
    assert main(["run", "lifecycle", "--from", str(before), "--date", str(D)]) == 0
    assert (
        f"  {before}: lifecycle settings changed since the run for {before}: every user"
        f" recomputed from {before}\n"
    ) in capsys.readouterr().out


def test_catch_up_days_missed_dates_are_each_computed(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lifecycle left at D - 15: the 14 missed nights (catch_up_days) and D are computed,
    the first of them too (it was once skipped, its states read from the day before it)."""
    left = D - dt.timedelta(days=15)
    _loaded(engine, settings, left)
    assert main(["run", "lifecycle", "--date", str(D)]) == 0
    assert f"{left + dt.timedelta(days=1)} .. {D}" in capsys.readouterr().out
    with session_scope(engine) as session:
        computed = set(session.scalars(select(LifecycleRun.business_date)))
    assert computed == {left + dt.timedelta(days=n) for n in range(16)}


def test_missed_dates_beyond_catch_up_are_named_never_skipped(
    engine: Engine, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lifecycle left at D - 40 (an interrupted backfill, a month without nightly runs):
    `run lifecycle --date D` used to compute only D's last 14 dates, from the old states,
    its transitions wrong. It stops naming the `--from` command, as does a `--from` past the
    gap; that command then gives what computing every date in order gives."""
    left = D - dt.timedelta(days=40)
    _loaded(engine, settings, left)
    after = left + dt.timedelta(days=1)
    assert main(["run", "lifecycle", "--date", str(D)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: the lifecycle is computed up to {left}: the 39 nights missed after it are"
        f" more than catch_up_days (14) catches up on its own; compute them and {D} in order"
        f" with `yunying run lifecycle --from {after} --date {D}`"
    )
    late = D - dt.timedelta(days=5)
    assert main(["run", "lifecycle", "--from", str(late), "--date", str(D)]) == 2
    assert f"run `yunying run lifecycle --from {after} --date {D}`" in capsys.readouterr().err
    assert main(["run", "lifecycle", "--from", str(after), "--date", str(D)]) == 0

    got = _rows(engine)
    reference = create_store_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    upgrade(str(reference.url))
    _loaded(reference, settings, left)
    day = after
    while day <= D:  # every date in order, from the first missed
        with session_scope(reference) as session:
            compute_lifecycle(session, day, settings.lifecycle)
        day += dt.timedelta(days=1)
    assert got == _rows(reference)
    reference.dispose()


def _rows(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with session_scope(engine) as session:
        states = session.execute(select(LifecycleState.__table__)).all()
        moves = session.execute(select(LifecycleTransition.__table__)).all()
    return sorted(map(tuple, states)), sorted(map(tuple, moves))


def test_a_change_of_exchange_rates_recounts_every_users_spend(
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """RFM spend converts at today's rates, as the report and segments do: 20 USD is 142 at
    7.1 (monetary 2, from 100) and 20 at 1.0 (monetary 1). The rerun says why everyone
    was recomputed; the next one, at the same rates, recounts nothing."""
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", [
            {"user_id": "usd", "signup_at": "2026-09-01T00:00:00Z"}
        ])  # fmt: skip
        load_records(session, settings.zone, "orders", [
            {"order_id": "o1", "user_id": "usd", "amount": "20", "currency": "USD",
             "created_at": "2026-10-20T04:00:00Z"}
        ])  # fmt: skip

    def monetary(rate: str) -> int:
        monkeypatch.setenv("YUNYING_EXCHANGE_RATES", f'{{"USD": {rate}}}')
        assert main(["run", "lifecycle", "--date", str(D)]) == 0
        with session_scope(engine) as session:
            return int(session.scalars(select(LifecycleState.monetary_score)).one())

    assert monetary("7.1") == 2
    capsys.readouterr()
    assert monetary("1.0") == 1
    assert (
        f"currency or exchange_rates changed since the run for {D}: every user's spend"
        " recounted at today's rates" in capsys.readouterr().out
    )
    assert monetary("1.0") == 1
    assert "exchange_rates changed" not in capsys.readouterr().out
