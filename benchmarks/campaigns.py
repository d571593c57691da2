"""A nightly with five campaigns on overlapping segments: how many task runs it makes.

The store is filled like the lifecycle benchmark's (users in Asia/Shanghai with an email
address and consent, app_open events going back 150 days) and its lifecycle computed for the
day before. Then the nightly flow runs on Prefect's local API (its own PREFECT_HOME, so the
count is this run's alone) with five `nightly = true` campaign files, in priority order under
the cross-campaign cap: nearly every user gets one message from one of them.

Figures:
- task_runs: every task run of the nightly (one flow run), read from the Prefect API,
  against the naive flow's one task per user (ratio = users / task runs, higher is better);
- largest_flow_run: the most task runs in any one flow run (plain number), and
  flow_runs, messages per status, wall_seconds of the flow.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.lifecycle import DAY, fill_store_schema
from yunying.config import LifecycleSettings
from yunying.lifecycle.states import compute_lifecycle
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
EVERY_STATE = '["new", "active", "returned", "silent", "churned"]'
COMMON = (
    f'segment = {EVERY_STATE}\nchannels = ["email"]\ntemplate = "winback"\nnightly = true\n'
    "quiet_hours = false\nholdout_percent = 10\n"
)
CAMPAIGNS = {
    "vip": 'priority = 10\naudience = { all = [{ state = ["silent", "churned"] },'
    ' { tier = ["high", "mid"] }] }\n[[variants]]\nname = "news"\ntemplate = "winback"\n'
    '[[variants]]\nname = "gift"\ntemplate = "winback_gift"\n',
    "silent": 'priority = 20\naudience = { state = ["silent"] }\n',
    "no-open-in-30": "priority = 30\n"
    'audience = { events = { names = ["app_open"], within_days = 30, max = 0 } }\n',
    "recent-signups": "priority = 40\naudience = { signed_up = { within_days = 60 } }\n",
    "everyone": "priority = 50\n",
}


def run(users: int, seed: int, events_per_user: int = 5) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="yunying-bench-"))
    home = work / "var"
    home.mkdir()
    url = f"sqlite:///{home / 'yunying.db'}"
    started = time.perf_counter()
    _prepare(url, users, events_per_user)
    print(f"filled {users} users in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    folder = work / "campaigns"
    folder.mkdir()
    for name, body in CAMPAIGNS.items():
        (folder / f"{name}.toml").write_text(f'name = "{name}"\n' + COMMON + body)
    env = {
        **os.environ,
        "YUNYING_HOME": str(home),
        "YUNYING_DATABASE_URL": url,
        "YUNYING_CAMPAIGN_DIR": str(folder),
        "YUNYING_SOURCES": "[]",
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # On a loaded machine the local API took more than the default 20 s to start.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.campaigns"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if output.returncode:
        raise RuntimeError(f"the nightly failed:\n{output.stderr[-3000:]}")
    flow: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"flow: {flow}", file=sys.stderr)
    task_runs = flow["task_runs"]
    return {
        "benchmark": "campaigns",
        "users": users,
        "events": users * events_per_user,
        "campaigns": len(CAMPAIGNS),
        "task_runs": {
            "value": task_runs,
            "baseline": users,
            "ratio": round(users / max(1, task_runs), 1),
        },
        "largest_flow_run": flow["largest_flow_run"],
        "flow_runs": flow["flow_runs"],
        "sent": flow["messages"].get("sent", 0),
        "held_out": flow["messages"].get("holdout", 0),
        "messages": ", ".join(f"{status} {n}" for status, n in flow["messages"].items()),
        "wall_seconds": round(flow["wall"], 1),
    }


def _prepare(url: str, users: int, per_user: int) -> None:
    upgrade(url)
    engine = create_store_engine(url)
    fill_store_schema(engine, users, per_user)
    with session_scope(engine) as session:  # the night before: the nightly computes DAY only
        compute_lifecycle(session, DAY - dt.timedelta(days=1), LifecycleSettings())
    engine.dispose()


def _nightly() -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    from flows.nightly import nightly

    started = time.perf_counter()
    summary = nightly(business_date=DAY)
    wall = time.perf_counter() - started
    with get_client(sync_client=True) as client:
        task_runs: list[Any] = []
        while page := client.read_task_runs(limit=200, offset=len(task_runs)):
            task_runs += page
        flow_runs: list[Any] = []
        while page := client.read_flow_runs(limit=200, offset=len(flow_runs)):
            flow_runs += page
    per_flow_run = Counter(run.flow_run_id for run in task_runs)
    return {
        "wall": wall,
        "task_runs": len(task_runs),
        "largest_flow_run": max(per_flow_run.values(), default=0),
        "flow_runs": len(flow_runs),
        "messages": summary["messages"],
    }


if __name__ == "__main__":
    print(json.dumps(_nightly()))
