"""The README's operations path with real processes: a local Prefect server (`make ui`), the
serve script (`make serve`), a manual `prefect deployment run` of reward-payout with
parameters, approval through Prefect's REST API, and the payout in the ledger."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from tests.builders import load_records
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade
from yunying.store.models import PointsEntry, RewardApproval

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CAMPAIGN = """
name = "ops-test"
start = 2026-11-02T00:00:00Z
end = 2026-11-09T00:00:00Z
budget = 100
per_user_cap = 50
[rule]
kind = "min_actions"
event = "checkin"
count = 1
[reward]
kind = "points"
amounts = [25]
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(check: Any, what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    rewards = tmp_path / "rewards"
    rewards.mkdir()
    (rewards / "ops-test.toml").write_text(CAMPAIGN)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(store)
    engine = create_store_engine(store)
    users = [{"user_id": f"o{i}", "signup_at": "2026-10-01T00:00:00Z"} for i in range(3)]
    events = [
        {
            "event_id": f"o{i}",
            "user_id": f"o{i}",
            "name": "checkin",
            "occurred_at": "2026-11-03T03:00:00Z",
        }
        for i in range(3)
    ]
    zone = ZoneInfo("Asia/Shanghai")
    with session_scope(engine) as session:
        load_records(session, zone, "users", users)
        load_records(session, zone, "events", events)
    engine.dispose()
    port = _free_port()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("YUNYING_", "PREFECT_"))},
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "YUNYING_HOME": str(tmp_path / "var"),
        "YUNYING_DATABASE_URL": store,
        "YUNYING_REWARD_DIR": str(rewards),
        "PORT": str(port),
    }


@pytest.fixture
def processes(environment: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in reversed(started):
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_manual_payout_through_server_serve_and_cli(
    environment: dict[str, str], processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    api = environment["PREFECT_API_URL"]
    log = (tmp_path / "processes.log").open("wb")
    processes.append(
        subprocess.Popen(
            [
                BIN / "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                environment["PORT"],
            ],
            env=environment,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    _wait(lambda: httpx.get(f"{api}/health").status_code == 200, "the Prefect server")
    processes.append(
        subprocess.Popen(
            [sys.executable, "deployments/serve.py"],
            env=environment,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    _wait(
        lambda: httpx.get(f"{api}/deployments/name/reward-payout/reward-payout").status_code == 200,
        "the served deployments",
    )

    subprocess.run(
        [
            BIN / "prefect",
            "deployment",
            "run",
            "reward-payout/reward-payout",
            "--param",
            "campaign=ops-test",
            "--param",
            "poll_interval_seconds=1",
        ],
        env=environment,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )

    def paused_run() -> str | None:
        runs = httpx.post(
            f"{api}/flow_runs/filter",
            json={"flow_runs": {"name": {"any_": ["reward-payout-ops-test"]}}},
        ).json()
        return runs[0]["id"] if runs and runs[0]["state"]["type"] == "PAUSED" else None

    run_id = _wait(paused_run, "the payout to pause for approval")
    response = httpx.post(
        f"{api}/flow_runs/{run_id}/resume",
        json={
            "run_input": {
                "approve": True,
                "approver": "ops-lead",
                "note": "looks right",
                "include_flagged": [],
            }
        },
    )
    assert response.status_code in (200, 201), response.text

    def finished() -> str | None:
        state = httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]["type"]
        return state if state in ("COMPLETED", "FAILED", "CRASHED") else None

    assert _wait(finished, "the payout to finish") == "COMPLETED", (
        tmp_path / "processes.log"
    ).read_text()
    engine = create_store_engine(environment["YUNYING_DATABASE_URL"])
    with session_scope(engine) as session:
        paid = session.scalar(select(func.sum(PointsEntry.points)))
        approver = session.scalar(select(RewardApproval.approver))
    engine.dispose()
    assert (paid, approver) == (75, "ops-lead")
