"""A run whose process is killed under `make serve` ends Crashed, not Running for ever: the
serve script sets up the automation that marks a run Crashed once its heartbeats stop. The
run is a payout waiting for approval, killed with its serve process (`kill -9`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx

from tests.deploy.test_operations import (
    BIN,
    DEPLOYMENTS,
    ROOT,
    _served,
    environment,
    paused_payout,
)
from tests.rig import wait_until

__all__ = ["environment"]  # the fixture, shared with the operations tests

HEARTBEAT_SECONDS = 30  # Prefect's least; the automation waits three of them


def test_a_killed_payout_run_ends_crashed(environment: dict[str, str]) -> None:
    env = {**environment, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
    api = env["PREFECT_API_URL"]
    with open(env["LOG"], "wb") as log:
        server = subprocess.Popen(
            [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", env["PORT"]],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        serving = None
        try:
            wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, "the server")
            # A session of its own: killing it takes the flow run's process with it.
            serving = subprocess.Popen(
                [sys.executable, "deployments/serve.py"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            names = {spec["name"] for spec in DEPLOYMENTS}
            wait_until(lambda: _served(api).keys() == names, "the served deployments")
            subprocess.run(
                [BIN / "prefect", "deployment", "run", "reward-payout/reward-payout",
                 "--param", "campaign=ops-test"],
                env=env, cwd=ROOT, check=True, capture_output=True, timeout=120,
            )  # fmt: skip

            run_id = wait_until(lambda: paused_payout(api), "the payout to pause for approval")
            os.killpg(serving.pid, signal.SIGKILL)
            serving.wait()

            def state() -> dict[str, str] | None:
                found = httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]
                return found if found["type"] != "PAUSED" else None

            ended = wait_until(state, "the run to be marked", seconds=6 * HEARTBEAT_SECONDS)
            assert ended["type"] == "CRASHED", ended
            assert "no heartbeat" in ended["message"]
        finally:
            if serving is not None and serving.poll() is None:
                os.killpg(serving.pid, signal.SIGKILL)
            server.terminate()
            server.wait(timeout=30)
