"""`yunying run` mistakes a new user made (issue 21): each is refused in one line before any
flow starts, so nothing is computed and nobody is alerted; a store wedged by a date computed
by mistake is got out of with the command its error names; a store not set up says so."""

from __future__ import annotations

import datetime as dt
import re
import shlex
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, func, select

from cli.main import main
from tests.builders import load_records
from tests.integration.test_lifecycle_range import D, _users_and_events
from yunying.config import Settings
from yunying.lifecycle.states import compute_lifecycle
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import alembic_config
from yunying.store.models import LifecycleRun, LifecycleState, LifecycleTransition

pytestmark = pytest.mark.usefixtures("prefect")

MISTAKE = dt.date(2027, 6, 1)  # a mistyped 2026-06-01


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a refused command prints: no traceback, no run's log."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _last_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The command's own line, after the log of the run that failed."""
    return capsys.readouterr().err.strip().splitlines()[-1]


def _alerts(settings: Settings) -> list[Path]:
    return sorted((settings.outbox_path / "reports").glob("alert-*.eml"))


def _today(settings: Settings) -> dt.date:
    return dt.datetime.now(settings.zone).date()


@pytest.mark.parametrize(
    "args",
    [
        ["nightly", "--date", "{future}"],
        ["lifecycle", "--date", "{future}"],
        ["lifecycle", "--from", "{future}", "--date", "{future}"],
        ["reactivation", "--date", "{future}"],
        ["report", "--date", "{future}"],
    ],
    ids=["nightly", "lifecycle", "lifecycle-from", "reactivation", "report"],
)
def test_a_business_date_after_today_is_refused_naming_it_and_today(
    engine: Engine, settings: Settings, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    today = _today(settings)
    future = today + dt.timedelta(days=1)
    assert main(["run", *(a.format(future=future) for a in args)]) == 2
    err = _error(capsys)
    assert err.endswith(f"{future} is after today ({today} in Asia/Shanghai): a business date "
                        f"must be a day that has begun (the default is yesterday, "
                        f"{today - dt.timedelta(days=1)})"), err  # fmt: skip
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(LifecycleRun)) == 0
    assert _alerts(settings) == []


def test_today_is_a_business_date(engine: Engine, settings: Settings) -> None:
    assert main(["run", "lifecycle", "--date", str(_today(settings))]) == 0


@pytest.mark.parametrize("flow", ["report", "nightly"])
def test_today_has_no_report_yet(
    engine: Engine, settings: Settings, flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its report would show a part of the day as the whole, flagged as a drop, recorded
    as sent so that tomorrow's real one needs --force."""
    today = _today(settings)
    assert main(["run", flow, "--date", str(today)]) == 2
    assert _error(capsys) == (
        f"error: --date {today} is today in Asia/Shanghai: its report would cover part of a"
        f" day; report a day that has ended (the default is yesterday,"
        f" {today - dt.timedelta(days=1)})"
    )
    assert list((settings.outbox_path / "reports").glob("*.eml")) == []
    from flows.report import report

    state = report(business_date=today, return_state=True)
    assert state.is_failed() and "is today in Asia/Shanghai" in (state.message or "")


def test_a_range_ending_before_it_begins_is_refused_without_alerting(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "lifecycle", "--from", "2026-10-20", "--date", "2026-10-10"]) == 2
    assert _error(capsys) == (
        "error: --from 2026-10-20 is after --date 2026-10-10: a range runs forward"
    )
    assert _alerts(settings) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["pull", "--date", "2026-10-10"], "`run pull` takes no --date (it is for `run` n"),
        (["report", "--from", "2026-10-10"], "takes no --from (it is for `run` lifecycle only)"),
        (["nightly", "--discard-later"], "`run nightly` takes no --discard-later"),
        (["lifecycle", "--resend-failed"], "takes no --resend-failed (it is for `run` react"),
    ],
    ids=["pull-date", "report-from", "nightly-discard", "lifecycle-resend"],
)
def test_a_flag_the_flow_does_not_take_is_refused(
    settings: Settings, args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *args]) == 2
    assert said in _error(capsys)


@pytest.mark.parametrize("flow", ["nightly", "reactivation"])
def test_a_misspelt_campaign_is_refused_before_anything_runs(
    engine: Engine, settings: Settings, flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", flow, "--campaign", "winbak", "--date", "2026-10-10"]) == 2
    assert "winbak.toml does not exist: did you mean 'winback'?" in _error(capsys)
    with session_scope(engine) as session:  # the nightly pulled and computed nothing
        assert session.scalar(select(func.count()).select_from(LifecycleRun)) == 0
    assert _alerts(settings) == []


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("winback.toml", "campaign name 'winback.toml' is not a campaign's name: give its name, "
         "'winback'"),
        ("campaigns/winback", "give its name, 'winback'"),
        ("", "campaign name '' is not a campaign's name: the campaigns are ["),
    ],
    ids=["file-name", "path", "empty"],
)  # fmt: skip
def test_a_campaign_given_as_a_file_path_or_nothing_is_refused(
    engine: Engine, settings: Settings, given: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "reactivation", "--campaign", given, "--date", "2026-10-10"]) == 2
    assert said in _error(capsys)
    assert _alerts(settings) == []


@pytest.mark.parametrize("flow", ["reactivation", "campaigns"])
def test_a_campaign_run_for_a_date_without_states_is_refused_before_it_starts(
    engine: Engine, settings: Settings, flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    users, events = _users_and_events(50)
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        compute_lifecycle(session, D, settings.lifecycle)
    for day, said in (
        (D - dt.timedelta(days=1), f"run the campaign with `--date {D}`"),
        (D + dt.timedelta(days=1), f"run `yunying run lifecycle --date {D + dt.timedelta(1)}`"),
    ):
        assert main(["run", flow, "--date", str(day)]) == 2
        assert said in _error(capsys)
    assert _alerts(settings) == []


def test_a_missing_default_campaign_or_campaign_folder_is_refused_before_any_run(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "campaigns"
    empty.mkdir()
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(empty))
    assert main(["run", "reactivation", "--date", "2026-10-10"]) == 2  # its default: winback
    assert f"{empty}/winback.toml does not exist" in _error(capsys)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(tmp_path / "campaignz"))
    assert main(["run", "campaigns", "--date", "2026-10-10"]) == 2
    assert f"campaign_dir {tmp_path / 'campaignz'} is not a folder" in _error(capsys)
    assert _alerts(settings) == []


def test_review_and_preview_refuse_a_future_date(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    future = str(_today(settings) + dt.timedelta(days=2))
    for command_line in (
        ["review", "winback", "--date", future],
        ["review", "winback", "--as-of", future],
        ["preview", "winback", "--user", "u1", "--date", future],
    ):
        assert main(command_line) == 2
        assert f"{future} is after today" in _error(capsys)


def _wedged(engine: Engine, settings: Settings) -> None:
    """Dates up to D computed, then (as before this was refused) a mistyped future date."""
    users, events = _users_and_events(200)
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
    for day in (D - dt.timedelta(days=2), D - dt.timedelta(days=1), MISTAKE):
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle)


def _rows(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with session_scope(engine) as session:
        states = session.execute(select(LifecycleState.__table__)).all()
        moves = session.execute(select(LifecycleTransition.__table__)).all()
        return sorted(tuple(r) for r in states), sorted(tuple(r) for r in moves)


def test_a_store_with_a_date_computed_by_mistake_is_got_out_of_by_the_named_command(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _wedged(engine, settings)
    # The reactivation of an earlier date, and the lifecycle of the day after the last real
    # one, each name the way out; following the first of them gets out.
    assert main(["run", "reactivation", "--date", str(D - dt.timedelta(days=1))]) == 2
    assert "--discard-later" in _last_line(capsys)
    assert main(["run", "nightly", "--date", str(D)]) == 2
    named = re.findall(r"`(yunying run lifecycle [^`]*--discard-later)`", _last_line(capsys))
    assert named == [f"yunying run lifecycle --date {D} --discard-later"]
    assert main(shlex.split(named[0])[1:]) == 0
    out = capsys.readouterr().out
    assert f"forgotten: {D + dt.timedelta(days=1)} .. {MISTAKE}" in out
    with session_scope(engine) as session:
        computed = session.scalars(select(LifecycleRun.business_date)).all()
        assert max(computed) == D
        assert session.scalar(select(func.max(LifecycleTransition.business_date))) <= D

    # Everything for D works again, as on a store that never saw the mistake.
    assert main(["run", "nightly", "--date", str(D)]) == 0
    reference = create_store_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    command.upgrade(alembic_config(str(reference.url)), "head")
    users, events = _users_and_events(200)
    with session_scope(reference) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
    for day in (D - dt.timedelta(days=2), D - dt.timedelta(days=1), D):
        with session_scope(reference) as session:
            compute_lifecycle(session, day, settings.lifecycle)
    assert _rows(engine) == _rows(reference)
    reference.dispose()


@pytest.mark.parametrize(
    "args", [["run", "pull"], ["payouts", "show", "checkin-demo"]], ids=["run", "payouts"]
)
def test_a_store_not_set_up_says_to_run_db_upgrade(
    store_url: str,
    settings: Settings,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    command.downgrade(alembic_config(store_url), "base")
    assert main(args) == 2
    assert _error(capsys).endswith("is not set up: run `yunying db upgrade` to create it")
    assert main(["db", "upgrade"]) == 0
    assert main(args) == 0


def test_a_store_behind_says_to_run_db_upgrade_before_a_run_starts(
    store_url: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    command.downgrade(alembic_config(store_url), "-1")
    assert main(["run", "report", "--date", "2026-11-01"]) == 2
    assert _error(capsys).endswith("is behind this Yunying: run `yunying db upgrade` to migrate it")
    assert main(["db", "upgrade"]) == 0
    assert main(["run", "report", "--date", "2026-11-01"]) == 0


def test_a_new_home_without_a_store_says_to_create_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    assert main(["run", "pull"]) == 2
    store = tmp_path / "var" / "yunying.db"
    assert _error(capsys).startswith(
        f"error: there is no store at sqlite:///{store} yet: run `yunying db upgrade` to create it"
    )
    assert not store.exists()


def test_a_command_run_away_from_its_settings_file_says_it_found_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run outside the folder holding yunying.toml, a command sees the defaults: its store
    is missing because its settings are, and creating one would only hide that."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YUNYING_CONFIG", raising=False)
    monkeypatch.delenv("YUNYING_DATABASE_URL", raising=False)
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    assert main(["run", "pull"]) == 2
    assert _error(capsys).endswith(
        f"to create it (no yunying.toml in {tmp_path}, nor YUNYING_CONFIG: this runs on the"
        " defaults; if your settings are elsewhere, run from their folder)"
    )


def test_the_lifecycle_flow_itself_refuses_a_date_after_today(
    engine: Engine, settings: Settings
) -> None:
    """As a deployment's parameter from the Prefect UI: the run fails, computing nothing."""
    from flows.lifecycle import lifecycle_range

    state = lifecycle_range(
        business_date=_today(settings) + dt.timedelta(days=1), return_state=True
    )
    assert state.is_failed() and "is after today" in str(state.message)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(LifecycleRun)) == 0
