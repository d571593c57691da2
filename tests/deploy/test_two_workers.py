"""The README's "Scale" recipe with real processes: a Prefect server on PostgreSQL, the store on
PostgreSQL, one process work pool, `prefect deploy` of the reactivation deployment, two
`prefect worker start` processes, and two runs of the same campaign and date started at once.
Each worker takes one run; both runs claim outbox batches with FOR UPDATE SKIP LOCKED, so the
sends split across the workers and the local provider still sees every message once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.builders import DAY, silent_users
from tests.rig import free_port, wait_until
from yunying.config import load_settings
from yunying.demo.local_server import LocalServer
from yunying.store.engine import create_store_engine
from yunying.store.migrate import upgrade
from yunying.store.models import OutboxMessage

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
USERS = 600
BATCH = re.compile(r"batch of \d+: .*'sent': (?P<sent>\d+)")
CAMPAIGN = """
name = "scale-test"
segment = ["silent"]
channels = ["push"]
template = "winback"
holdout_percent = 0
quiet_hours = false  # the test runs at any hour
"""


def _database(admin: sa.Engine, statement: str) -> None:
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(statement))


@pytest.fixture
def postgres_both(postgres_server: str) -> Iterator[tuple[str, str]]:
    """A fresh schema for the store and a fresh database for the Prefect server; both
    dropped at the end. Gives (store URL, Prefect's database URL)."""
    suffix = uuid.uuid4().hex[:12]
    schema, database = f"t_{suffix}", f"prefect_{suffix}"
    admin = sa.create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    _database(admin, f"CREATE DATABASE {database}")
    server = sa.engine.make_url(postgres_server)
    prefect_db = server.set(drivername="postgresql+asyncpg", database=database)
    try:
        yield (
            f"{postgres_server}?options=-csearch_path%3D{schema}",
            prefect_db.render_as_string(hide_password=False),
        )
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        _database(admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.dispose()


def test_two_workers_split_the_sends_and_nobody_gets_two_messages(
    postgres_both: tuple[str, str],
    tmp_path: Path,
    local_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store_url, prefect_db = postgres_both
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "scale-test.toml").write_text(CAMPAIGN)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    yunying = {
        "YUNYING_HOME": str(tmp_path / "var"),
        "YUNYING_DATABASE_URL": store_url,
        "YUNYING_CAMPAIGN_DIR": str(campaigns),
        "YUNYING_SENDING": "true",
        "YUNYING_BATCH_SIZE": "25",  # many small batches, so both runs get some
        "YUNYING_PROVIDERS__PUSH_URL": f"{local_server.url}/v1/push",
        "YUNYING_PROVIDERS__CONCURRENCY": "4",
    }
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("YUNYING_", "PREFECT_"))},
        **yunying,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_UI_API_URL": api,
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
    }
    for name, value in yunying.items():
        monkeypatch.setenv(name, value)
    upgrade(store_url)
    engine = create_store_engine(store_url)
    silent_users(engine, load_settings(), USERS)
    # Sends crawl until both runs are running, so neither finishes before the other starts.
    local_server.faults.latency_seconds = 1.0

    def start(log: Path, *args: str) -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            process = subprocess.Popen(
                [BIN / "prefect", *args], env=environment, cwd=ROOT,
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(process)
        return process

    def finish(*processes: subprocess.Popen[bytes]) -> None:
        for process in processes:
            assert process.wait(timeout=120) == 0, cli_log.read_text()

    started: list[subprocess.Popen[bytes]] = []
    logs = {name: tmp_path / f"{name}.log" for name in ("server", "worker-a", "worker-b")}
    cli_log = tmp_path / "cli.log"
    try:
        start(logs["server"], "server", "start", "--host", "127.0.0.1", "--port", str(port))
        wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, "the Prefect server")
        finish(start(cli_log, "work-pool", "create", "yunying", "--type", "process"))
        # The workers start while the deployment registers: both only need the pool.
        deploy = start(cli_log, "--no-prompt", "deploy", "--name", "reactivation")
        for worker in ("worker-a", "worker-b"):
            start(logs[worker], "worker", "start", "--pool", "yunying", "--name", worker,
                  "--limit", "1")  # fmt: skip
        finish(deploy)
        wait_until(lambda: len(_workers(api)) == 2, "both workers to poll the pool")
        trigger = ("deployment", "run", "reactivation/reactivation",
                   "--param", "campaign=scale-test", "--param", f"business_date={DAY}")  # fmt: skip
        finish(start(cli_log, *trigger), start(cli_log, *trigger))
        wait_until(lambda: _started(_states(api)), "both runs to start", seconds=150)
        local_server.faults.latency_seconds = 0.005
        states = wait_until(lambda: _finished(_states(api)), "both runs to finish")
        assert states == ["COMPLETED", "COMPLETED"], logs["worker-a"].read_text()
        run_ids = [run["id"] for run in _runs(api)]
        # A run's last log lines reach the API shortly after its final state.
        sent_by_run = wait_until(
            lambda: _sent_by_run(api, run_ids), "the runs' send logs", seconds=30
        )
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    picked = {name: logs[name].read_text() for name in ("worker-a", "worker-b")}
    with engine.connect() as connection:
        sent = connection.scalar(sa.select(sa.func.count()).where(OutboxMessage.status == "sent"))
    engine.dispose()
    # Each worker submitted one of the two runs, and each run sent part of the campaign.
    assert sorted(_submitted(text) for text in picked.values()) == sorted([r] for r in run_ids)
    assert min(sent_by_run.values()) > 0, sent_by_run
    assert sum(sent_by_run.values()) == sent == USERS, sent_by_run
    # Nobody got two messages: one request per recipient at the provider.
    recipients = Counter(body["to"] for body in local_server.recorder.deliveries.values())
    assert len(recipients) == USERS and set(recipients.values()) == {1}
    assert local_server.recorder.requests == USERS


def _workers(api: str) -> list[dict[str, Any]]:
    return list(httpx.post(f"{api}/work_pools/yunying/workers/filter", json={}).json())


def _runs(api: str) -> list[dict[str, Any]]:
    return list(
        httpx.post(
            f"{api}/flow_runs/filter",
            json={"flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}}},
        ).json()
    )


def _submitted(log: str) -> list[str]:
    """The runs a worker's log says it submitted, less those the server took back because the
    other worker got there first."""
    submitted = re.findall(r"submitting flow run '([0-9a-f-]+)'", log)
    aborted = set(re.findall(r"Aborted submission of flow run '([0-9a-f-]+)'", log))
    return [run for run in submitted if run not in aborted]


def _started(states: list[str]) -> bool:
    return len(states) == 2 and not {"SCHEDULED", "PENDING"} & set(states)


def _finished(states: list[str]) -> list[str] | None:
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
    return states if len(states) == 2 and set(states) <= final else None


def _sent_by_run(api: str, run_ids: list[str]) -> dict[str, int] | None:
    sent = {run: _sent(api, run) for run in run_ids}
    return sent if sum(sent.values()) == USERS else None


def _sent(api: str, run_id: str) -> int:
    """Messages the run reports sent in its send-batch log lines, as the UI shows them."""
    logs = httpx.post(
        f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}
    ).json()
    found = (BATCH.search(log["message"]) for log in logs)
    return sum(int(match["sent"]) for match in found if match)


def _states(api: str) -> list[str]:
    return sorted(run["state"]["type"] for run in _runs(api))
