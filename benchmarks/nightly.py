"""The whole nightly flow on the synthetic company, against the same stages called directly.

Figures (higher ratio is better for Yunying):
- wall_seconds: the flow on Prefect's local API vs the same library calls without Prefect;
- peak_rss_mb: the two processes' peak resident memory;
- task_runs: task runs the flow made vs one task per user (the naive flow);
- library_share: the library's time (the plain run's stages, measured in the same benchmark
  run) over the flow's wall time; at most 1, and 1 - it is Prefect's share of the night: the
  time the flow spends outside the library calls (task runs, state changes, logs, artifacts).
  The flow's own task-run durations can't be summed for this: its tasks overlap (concurrent
  pulls and sends), and the sum exceeded the wall time (it printed 1.415).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources

ROOT = Path(__file__).resolve().parents[1]
END = dt.date(2026, 11, 1)


def run(users: int, seed: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="yunying-bench-"))
    source_db = work / "source.db"
    started = time.perf_counter()
    counts = write_source_db(source_db, users, seed, END)
    print(f"generated {counts} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    flow = _measure("flow", work, source_db)
    plain = _measure("plain", work, source_db)
    share = library_share(plain["library"], flow["wall"])
    return {
        "benchmark": "nightly",
        "users": users,
        "events": counts.events,
        "wall_seconds": _figure(flow["wall"], plain["wall"], plain["wall"] / flow["wall"]),
        "peak_rss_mb": _figure(flow["rss_mb"], plain["rss_mb"], plain["rss_mb"] / flow["rss_mb"]),
        "task_runs": _figure(flow["task_runs"], users, users / max(1, flow["task_runs"])),
        "library_share": _figure(share, 1.0, share),
        "prefect_share": round(1.0 - share, 3),
    }


def library_share(library_seconds: float, flow_wall_seconds: float) -> float:
    """The library's time over the flow's wall time, at most 1: a flow that overlaps stages
    can beat the plain sequential calls, and then Prefect's share is 0, not negative."""
    return min(1.0, library_seconds / flow_wall_seconds)


def _figure(value: float, baseline: float, ratio: float) -> dict[str, float]:
    return {"value": round(value, 3), "baseline": round(baseline, 3), "ratio": round(ratio, 3)}


def _measure(mode: str, work: Path, source_db: Path) -> dict[str, Any]:
    home = work / mode
    env = {
        **os.environ,
        "YUNYING_HOME": str(home),
        "YUNYING_SOURCES": json.dumps([s.model_dump() for s in demo_sources(source_db, None)]),
        "YUNYING_CAMPAIGN_DIR": str(ROOT / "deployments" / "campaigns"),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.nightly", mode],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if output.returncode:
        raise RuntimeError(f"{mode} run failed:\n{output.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"{mode}: {result}", file=sys.stderr)
    return result


def _flow() -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    from flows.nightly import nightly
    from yunying.config import load_settings
    from yunying.store.migrate import upgrade

    upgrade(load_settings().store_url)
    started = time.perf_counter()
    nightly(business_date=END, campaign="winback-demo")
    wall = time.perf_counter() - started
    with get_client(sync_client=True) as client:
        task_runs: list[Any] = []
        while page := client.read_task_runs(limit=200, offset=len(task_runs)):
            task_runs += page
    return {"wall": wall, "task_runs": len(task_runs)}


def _plain() -> dict[str, Any]:
    """The same stages as plain library calls: what the work costs without Prefect."""
    from yunying.config import load_settings
    from yunying.lifecycle.states import compute_lifecycle
    from yunying.messaging.campaign import find_campaign
    from yunying.messaging.outbox import plan
    from yunying.messaging.send import send_all
    from yunying.reports.daily_email import publish_report
    from yunying.reports.kpis import compute_kpis
    from yunying.sources.pull import pull_source
    from yunying.store.engine import create_store_engine, session_scope
    from yunying.store.migrate import upgrade

    settings = load_settings()
    upgrade(settings.store_url)
    engine = create_store_engine(settings.store_url)
    started = time.perf_counter()
    stages = 0.0
    for source in settings.sources:
        t = time.perf_counter()
        pull_source(engine, settings, source.name, "bench")
        stages += time.perf_counter() - t
    t = time.perf_counter()
    with session_scope(engine) as session:
        compute_lifecycle(session, END, settings.lifecycle)
    campaign = find_campaign(settings.campaign_dir, "winback-demo")
    with session_scope(engine) as session:
        plan(session, campaign, END)
    send_all(engine, settings, campaign, END, "bench", settings.batch_size)
    with session_scope(engine) as session:
        publish_report(session, settings, compute_kpis(session, END, settings.zone))
    stages += time.perf_counter() - t
    wall = time.perf_counter() - started
    return {"wall": wall, "task_runs": 0, "library": stages}


if __name__ == "__main__":
    result = _flow() if sys.argv[1] == "flow" else _plain()
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
