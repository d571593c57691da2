"""Ctrl-C on a running `yunying run`: the command ends within seconds with one clear line, its
run is left Crashed rather than Running, and running it again completes correctly. The alerts
of a run on the command's temporary Prefect server link to no UI (it is gone) and name the
command to run again."""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tests.builders import load_records
from tests.conftest import REPO
from tests.integration.test_lifecycle_range import D, _users_and_events
from yunying.config import LifecycleSettings
from yunying.lifecycle.states import compute_lifecycle
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade
from yunying.store.models import LifecycleRun, LifecycleState, LifecycleTransition

MISTAKE = dt.date(2027, 6, 1)

FIRST = D - dt.timedelta(days=150)
COMMAND = ["run", "lifecycle", "--from", FIRST.isoformat(), "--date", D.isoformat()]


def _store(path: Path) -> str:
    url = f"sqlite:///{path}"
    upgrade(url)
    users, events = _users_and_events(300)
    engine = create_store_engine(url)
    with session_scope(engine) as session:
        zone = ZoneInfo("Asia/Shanghai")
        load_records(session, zone, "users", users)
        load_records(session, zone, "events", events)
    engine.dispose()
    return url


def _environment(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YUNYING_", "PREFECT_"))}
    env |= {  # Prefect's home defaults to var/prefect, in a var/ not made yet: as a new user's
        "YUNYING_HOME": str(tmp_path / "var"),
        "YUNYING_DATABASE_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    return env


def _yunying(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    """The command in its own session, to be signalled as a group: as a terminal's Ctrl-C
    reaches every process."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *COMMAND],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _alerts(tmp_path: Path) -> list[str]:
    """Subject and body of each alert the runs emailed (written as files: no SMTP here)."""
    alerts = []
    for path in sorted((tmp_path / "var" / "outbox" / "reports").glob("alert-*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        alerts.append(f"{message['Subject']}\n{message.get_content()}")
    return alerts


def _rows(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    engine = create_store_engine(url)
    with engine.connect() as connection:
        states = connection.execute(sa.select(LifecycleState.__table__)).all()
        moves = connection.execute(sa.select(LifecycleTransition.__table__)).all()
    engine.dispose()
    return sorted(tuple(r) for r in states), sorted(tuple(r) for r in moves)


def _latest(url: str) -> dt.date:
    engine = create_store_engine(url)
    with engine.connect() as connection:
        latest = connection.scalar(sa.select(sa.func.max(LifecycleRun.business_date)))
    engine.dispose()
    assert latest is not None and FIRST <= latest < D, latest
    return latest


def test_ctrl_c_ends_a_run_which_a_rerun_completes(tmp_path: Path) -> None:
    url = _store(tmp_path / "store.db")
    shutil.copy(tmp_path / "store.db", tmp_path / "reference.db")
    env = _environment(tmp_path, url)

    process = _start(env)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # mid-run: the first date is done
        seen.append(line)
        if f"Task run 'lifecycle-{FIRST}' - Finished" in line:
            break
    os.killpg(process.pid, signal.SIGINT)
    interrupted = time.monotonic()
    try:
        rest, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("the CLI did not end within 20 s of Ctrl-C") from None
    output = "".join(seen) + rest
    assert time.monotonic() - interrupted < 20
    assert process.returncode == 130, output
    assert "Unable to connect" not in output
    assert f"interrupted: `yunying {' '.join(COMMAND)}` stopped before it finished" in output
    # A recompute starts again from its first date: the line says where the store ends now.
    assert f"the store's lifecycle now ends at {_latest(url)}: run the same command again to " \
           "finish" in output, output  # fmt: skip
    assert "not repeated" not in output
    [alert] = _alerts(tmp_path)
    assert alert.startswith(f"Yunying: lifecycle-{FIRST}..{D} crashed\n"), alert
    assert f"Once the cause is fixed, run: yunying {' '.join(COMMAND)}" in alert
    assert "http" not in alert and "from the UI" not in alert

    runs = _yunying(env, "runs")
    assert runs.returncode == 0, runs.stderr
    assert "lifecycle-" in runs.stdout and "Running" not in runs.stdout, runs.stdout

    again = _yunying(env, *COMMAND)
    assert again.returncode == 0, again.stderr
    assert f"lifecycle computed for {FIRST} .. {D};" in again.stdout

    reference = create_store_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    day = FIRST
    while day <= D:
        with session_scope(reference) as session:
            compute_lifecycle(session, day, LifecycleSettings())
        day += dt.timedelta(days=1)
    reference.dispose()
    assert _rows(url) == _rows(f"sqlite:///{tmp_path / 'reference.db'}")


def test_a_run_whose_command_was_killed_is_marked_crashed_by_the_next_command(
    tmp_path: Path,
) -> None:
    """SIGKILL leaves no chance to mark the run, and the command's server dies with it: the
    next `yunying` command finds the run still Running, its process gone, and marks it
    Crashed, saying so; the same command run again then completes."""
    url = _store(tmp_path / "store.db")
    env = _environment(tmp_path, url)
    process = _start(env)
    assert process.stdout is not None
    for line in process.stdout:
        if f"Task run 'lifecycle-{FIRST}' - Finished" in line:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    name = f"lifecycle-{FIRST}..{D}"

    runs = _yunying(env, "runs")
    assert runs.returncode == 0, runs.stderr
    assert "run(s) left Running by a `yunying` command that was killed are now marked" \
        f" Crashed: {name}" in runs.stderr  # fmt: skip
    [listed] = [line for line in runs.stdout.splitlines() if line.startswith(name)]
    assert "Crashed" in listed and "Running" not in runs.stdout, runs.stdout
    again = _yunying(env, *COMMAND)
    assert again.returncode == 0, again.stderr
    assert "marked Crashed" not in again.stderr  # once
    assert f"lifecycle computed for {FIRST} .. {D};" in again.stdout


def test_a_failed_run_names_the_command_that_gets_out_and_alerts_without_a_dead_link(
    tmp_path: Path,
) -> None:
    """A store with a date computed by mistake: the nightly of the next real date fails, with
    one line naming the way out; its alert names the command, not the gone server's UI."""
    url = _store(tmp_path / "store.db")
    engine = create_store_engine(url)
    for day in (D - dt.timedelta(days=1), MISTAKE):
        with session_scope(engine) as session:
            compute_lifecycle(session, day, LifecycleSettings())
    engine.dispose()
    env = _environment(tmp_path, url)

    failed = _yunying(env, "run", "nightly", "--date", D.isoformat())
    assert failed.returncode == 2, failed.stderr
    way_out = f"yunying run lifecycle --date {D} --discard-later"
    assert (
        failed.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: lifecycle already computed for {MISTAKE}, after {D}: ")
    )
    assert f"`{way_out}`" in failed.stderr
    [alert] = _alerts(tmp_path)
    assert alert.startswith(f"Yunying: nightly-{D} failed\n"), alert
    assert way_out in alert  # the state's message
    assert f"Once the cause is fixed, run: yunying run nightly --date {D}" in alert
    assert "http" not in alert and "from the UI" not in alert

    out = _yunying(env, *way_out.split()[1:])
    assert out.returncode == 0, out.stderr
    assert f"forgotten: {D + dt.timedelta(days=1)} .. {MISTAKE}" in out.stdout
