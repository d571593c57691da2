"""The README's operations path with real processes: a local Prefect server (`make ui`), the
serve script (`make serve`) with every deployment's schedules, time zones and limits as
prefect.yaml declares them, a manual `prefect deployment run` of reward-payout with
parameters, approval through Prefect's REST API, and the payout in the ledger. One server and
one serve process for the module: each costs ~15 s to start."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from tests.builders import load_records
from tests.rig import free_port, wait_until
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade
from yunying.store.models import PointsEntry, RewardApproval

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load((ROOT / "prefect.yaml").read_text())[
    "deployments"
]
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


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp_path = tmp_path_factory.mktemp("operations")
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
    port = free_port()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("YUNYING_", "PREFECT_"))},
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # The server's scheduler creates the upcoming runs every second, not every minute.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        "YUNYING_HOME": str(tmp_path / "var"),
        "YUNYING_DATABASE_URL": store,
        "YUNYING_REWARD_DIR": str(rewards),
        "PORT": str(port),
        "LOG": str(tmp_path / "processes.log"),
    }


@pytest.fixture(scope="module")
def served(environment: dict[str, str]) -> Iterator[str]:
    """`make ui` and `make serve`: a Prefect server and deployments/serve.py run against it,
    as the Makefile runs them; both stopped at the end. Gives the API's URL."""
    api = environment["PREFECT_API_URL"]
    started: list[subprocess.Popen[bytes]] = []
    with Path(environment["LOG"]).open("wb") as log:
        try:
            started.append(
                subprocess.Popen(
                    [BIN / "prefect", "server", "start", "--host", "127.0.0.1",
                     "--port", environment["PORT"]],
                    env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
            wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, "the Prefect server")
            started.append(
                subprocess.Popen(
                    [sys.executable, "deployments/serve.py"],
                    env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
            names = {spec["name"] for spec in DEPLOYMENTS}
            wait_until(lambda: _served(api).keys() == names, "the served deployments")
            yield api
        finally:
            for process in reversed(started):
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _served(api: str) -> dict[str, dict[str, Any]]:
    found = httpx.post(f"{api}/deployments/filter", json={}).json()
    return {deployment["name"]: deployment for deployment in found}


def paused_payout(api: str) -> str | None:
    """The id of the ops-test payout run once it waits for approval."""
    runs = httpx.post(
        f"{api}/flow_runs/filter",
        json={"flow_runs": {"name": {"any_": ["reward-payout-ops-test"]}}},
    ).json()
    return runs[0]["id"] if runs and runs[0]["state"]["type"] == "PAUSED" else None


def _scheduled_runs(api: str, deployment_id: str, at_least: int) -> list[dict[str, Any]]:
    """The deployment's scheduled runs, soonest first, once there are `at_least` of them."""
    runs = list(
        httpx.post(
            f"{api}/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [deployment_id]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
                "sort": "EXPECTED_START_TIME_ASC",
            },
        ).json()
    )
    return runs if len(runs) >= at_least else []


# When each scheduled deployment's runs fall, in UTC (Asia/Shanghai is UTC+8 all year):
# (period, UTC hour or None for every hour, minute).
UTC_TIMES = {
    "nightly": (dt.timedelta(days=1), 18, 0),  # 02:00 in Shanghai, the day before in UTC
    "pull": (dt.timedelta(hours=1), None, 15),
    "reactivation": (dt.timedelta(days=1), 2, 0),  # 10:00
    "daily-report": (dt.timedelta(days=1), 0, 0),  # 08:00
    "segments": (dt.timedelta(days=1), 23, 0),  # 07:00, after the nightly's lifecycle
    "review": (dt.timedelta(days=1), 1, 0),  # 09:00, reviews windows closed yesterday
}


def test_served_deployments_keep_every_setting_of_prefect_yaml(served: str) -> None:
    served_now = dt.datetime.now(dt.UTC)
    deployments = _served(served)
    assert {spec["name"] for spec in DEPLOYMENTS if spec.get("schedules")} == UTC_TIMES.keys()
    for spec in DEPLOYMENTS:
        deployment = deployments[spec["name"]]
        assert deployment["description"] == spec["description"]
        assert deployment["tags"] == spec["tags"]
        assert deployment["parameters"] == (spec.get("parameters") or {})
        assert deployment["enforce_parameter_schema"] is spec["enforce_parameter_schema"]
        limit = deployment["global_concurrency_limit"]
        assert (limit and limit["limit"]) == spec.get("concurrency_limit"), spec["name"]
        schedules = [
            (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"])
            for s in deployment["schedules"]
        ]
        assert schedules == [(s["cron"], s["timezone"], True) for s in spec.get("schedules", [])]
        if spec["name"] not in UTC_TIMES:
            continue
        period, hour, minute = UTC_TIMES[spec["name"]]
        runs = wait_until(
            lambda d=deployment: _scheduled_runs(served, d["id"], at_least=3),
            f"the scheduled runs of {spec['name']}",
            seconds=30,
        )
        starts = [dt.datetime.fromisoformat(run["expected_start_time"]) for run in runs]
        assert starts[0] - served_now < period + dt.timedelta(minutes=1), spec["name"]
        for earlier, later in itertools.pairwise(starts):
            assert later - earlier == period, spec["name"]
        for start, run in zip(starts, runs, strict=True):
            assert (start.minute, start.second) == (minute, 0), (spec["name"], start)
            assert hour is None or start.hour == hour, (spec["name"], start)
            assert run["parameters"] == deployment["parameters"]


def test_manual_payout_through_server_serve_and_cli(
    environment: dict[str, str], served: str
) -> None:
    api = served
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

    run_id = wait_until(lambda: paused_payout(api), "the payout to pause for approval")

    def resumed() -> httpx.Response | None:
        # Prefect's server on SQLite answers 503 "retry" while its database is busy.
        answer = httpx.post(
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
        return None if answer.status_code == 503 else answer

    response = wait_until(resumed, "the server to take the approval")
    assert response.status_code in (200, 201), response.text

    def finished() -> str | None:
        state = httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]["type"]
        return state if state in ("COMPLETED", "FAILED", "CRASHED") else None

    assert wait_until(finished, "the payout to finish") == "COMPLETED", Path(
        environment["LOG"]
    ).read_text()
    engine = create_store_engine(environment["YUNYING_DATABASE_URL"])
    with session_scope(engine) as session:
        paid = session.scalar(select(func.sum(PointsEntry.points)))
        approver = session.scalar(select(RewardApproval.approver))
    engine.dispose()
    assert (paid, approver) == (75, "ops-lead")
