"""The whole nightly flow, against the same stages called directly as plain library calls.

Two stores:
- sqlite: the synthetic company (its app database as the source) pulled into a new store;
- postgresql: a store already holding the company's history and yesterday's lifecycle, with
  the day's increment waiting in the sources (see big_store.py); `--reuse-store` keeps the
  filled database for the next benchmark run.

The Prefect API is up before the timer starts, as it is for a served deployment; the flow
and the plain chain run in their own processes on their own copy of the store.

Figures (higher ratio is better for Yunying):
- wall_seconds: the flow on Prefect's local API vs the same library calls without Prefect;
- peak_rss_mb: the two processes' peak resident memory (and the Prefect server's);
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

from benchmarks.big_store import (
    BigStore,
    clone,
    database_size_mb,
    drop,
    ensure_filled,
    server_settings,
)
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources
from yunying.messaging.campaign import find_campaign

ROOT = Path(__file__).resolve().parents[1]
END = dt.date(2026, 11, 1)
CAMPAIGN = "winback-demo"
# Which runs first on PostgreSQL: at 1M users the second ran 10-40% faster either way.
MODES = tuple(os.environ.get("YUNYING_BENCH_ORDER", "flow,plain").split(","))
POSTGRES = os.environ.get(
    "YUNYING_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
).replace("postgresql://", "postgresql+psycopg://")


def run(users: int, seed: int, store: str = "both", reuse_store: bool = False) -> dict[str, Any]:
    figures: dict[str, Any] = {"benchmark": "nightly", "users": users}
    if store in ("both", "sqlite"):
        figures |= _on_sqlite(users, seed)
    if store in ("both", "postgresql"):
        measured = _on_postgresql(users, reuse_store)
        prefix = "postgresql_" if store == "both" else ""
        figures |= {f"{prefix}{k}": v for k, v in measured.items()}
    return figures


def _on_sqlite(users: int, seed: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="yunying-bench-"))
    source_db = work / "source.db"
    started = time.perf_counter()
    counts = write_source_db(source_db, users, seed, END)
    print(f"generated {counts} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    sources = [s.model_dump() for s in demo_sources(source_db, None)]
    flow = _measure("flow", work, sources, None)
    plain = _measure("plain", work, sources, None)
    return {"events": counts.events, **_compare(flow, plain)}


def _on_postgresql(users: int, reuse_store: bool) -> dict[str, Any]:
    campaign = find_campaign(ROOT / "deployments" / "campaigns", CAMPAIGN)
    store = BigStore(POSTGRES, users, END, (campaign,))
    started = time.perf_counter()
    fill = ensure_filled(store, reuse_store)
    filled = time.perf_counter() - started
    work = Path(tempfile.mkdtemp(prefix="yunying-bench-"))
    runs = {}
    try:
        for mode in MODES:
            url = clone(store, f"{store.template}_{mode}")
            runs[mode] = _measure(mode, work, _pg_sources(url), url)
            runs[mode]["store_mb"] = database_size_mb(url)
            drop(store, f"{store.template}_{mode}")
    finally:
        for mode in ("flow", "plain"):
            drop(store, f"{store.template}_{mode}")
        if not reuse_store:
            drop(store, store.template)
    return {
        "server_settings": ", ".join(
            f"{k} {v}" for k, v in server_settings(store.admin_url).items()
        ),
        "fill_seconds": round(filled, 1),
        "fill_steps": _seconds(fill),
        "store_mb": round(runs["flow"]["store_mb"]),
        **_compare(runs["flow"], runs["plain"]),
    }


def _pg_sources(url: str) -> list[dict[str, Any]]:
    """The demo's source declarations, reading the company's tables in the schema `src`."""
    sources = []
    for source in demo_sources(Path("unused.db"), None):
        declared = source.model_dump()
        declared["url"] = url
        declared["table"] = f"src.{declared['table']}"
        sources.append(declared)
    return sources


def _compare(flow: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
    share = library_share(plain["library"], flow["wall"])
    return {
        "wall_seconds": _figure(flow["wall"], plain["wall"], plain["wall"] / flow["wall"]),
        "peak_rss_mb": _figure(flow["rss_mb"], plain["rss_mb"], plain["rss_mb"] / flow["rss_mb"]),
        "prefect_server_rss_mb": round(flow["children_rss_mb"]),
        "prefect_server_cpu_seconds": round(flow["server_cpu"], 1),
        "task_runs": _figure(flow["task_runs"], flow["users"], flow["users"] / flow["task_runs"]),
        "library_share": _figure(share, 1.0, share),
        "prefect_share": round(1.0 - share, 3),
        "flow_stages": _seconds(flow["stages"]),
        "plain_stages": _seconds(plain["stages"]),
        "messages": f"flow {flow['messages']}, plain {plain['messages']}",
        "load_average": [flow["load"], plain["load"]],
    }


def _seconds(stages: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stages.items())


def library_share(library_seconds: float, flow_wall_seconds: float) -> float:
    """The library's time over the flow's wall time, at most 1: a flow that overlaps stages
    can beat the plain sequential calls, and then Prefect's share is 0, not negative."""
    return min(1.0, library_seconds / flow_wall_seconds)


def _figure(value: float, baseline: float, ratio: float) -> dict[str, float]:
    return {"value": round(value, 3), "baseline": round(baseline, 3), "ratio": round(ratio, 3)}


def _measure(
    mode: str, work: Path, sources: list[dict[str, Any]], store_url: str | None
) -> dict[str, Any]:
    home = work / mode
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "YUNYING_HOME": str(home),
        "YUNYING_SOURCES": json.dumps(sources),
        "YUNYING_CAMPAIGN_DIR": str(ROOT / "deployments" / "campaigns"),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    if store_url:
        env["YUNYING_DATABASE_URL"] = store_url
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
    with get_client(sync_client=True) as client:
        client.hello()  # starts Prefect's local API: a served deployment has it running
    server_cpu = _children_cpu_seconds()
    started = time.perf_counter()
    summary = nightly(business_date=END, campaign=CAMPAIGN)
    wall = time.perf_counter() - started
    server_cpu = _children_cpu_seconds() - server_cpu
    with get_client(sync_client=True) as client:
        task_runs: list[Any] = []
        while page := client.read_task_runs(limit=200, offset=len(task_runs)):
            task_runs += page
    stages: dict[str, float] = {}
    for task_run in task_runs:
        stage = next((s for s in _STAGES if task_run.name.startswith(s)), "other")
        seconds = task_run.total_run_time.total_seconds()
        stages[stage] = round(stages.get(stage, 0.0) + seconds, 2)
    return {
        "wall": wall,
        "task_runs": len(task_runs),
        "stages": stages,
        "messages": summary["messages"],
        "server_cpu": server_cpu,
    }


# The nightly's stages, by the names of their task runs (e.g. pull-app-users, send-batch-1a2).
_STAGES = ("pull", "lifecycle", "plan", "send", "daily-report")


def _plain() -> dict[str, Any]:
    """The same stages as plain library calls: what the work costs without Prefect."""
    from yunying.config import load_settings
    from yunying.lifecycle.states import compute_lifecycle, dates_to_compute
    from yunying.messaging.campaign import find_campaign
    from yunying.messaging.outbox import counts, plan
    from yunying.messaging.send import send_all
    from yunying.reports.daily_email import publish_report
    from yunying.reports.kpis import compute_kpis, money_for
    from yunying.reports.review_run import build_review
    from yunying.reports.running import RunningCampaign, running_campaigns
    from yunying.sources.pull import pull_source
    from yunying.store.engine import create_store_engine, session_scope
    from yunying.store.migrate import upgrade

    settings = load_settings()
    upgrade(settings.store_url)
    engine = create_store_engine(settings.store_url)
    stages: dict[str, float] = {}

    def timed(stage: str, started: float) -> None:
        stages[stage] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    for source in settings.sources:
        t = time.perf_counter()
        pull_source(engine, source, settings.pull_rules, "bench")
        timed(f"pull {source.name}", t)
    with session_scope(engine) as session:
        days = dates_to_compute(session, END, settings.lifecycle.catch_up_days)
    t = time.perf_counter()
    for day in days:  # as the flow does: a new store starts catch_up_days back
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle, money=money_for(settings))
    timed(f"lifecycle ({len(days)} dates)", t)
    t = time.perf_counter()
    campaign = find_campaign(settings.campaign_dir, CAMPAIGN)
    with session_scope(engine) as session:
        plan(session, campaign, END)
    timed("plan", t)
    t = time.perf_counter()
    send_all(engine, settings, campaign, END, "bench", settings.batch_size)
    timed("send", t)
    t = time.perf_counter()
    with session_scope(engine) as session:  # as tasks/report.py does, without the artifacts
        kpis = compute_kpis(session, END, settings.zone, money_for(settings))
        running = running_campaigns(session, settings.campaign_dir, END)
    linked = []
    for chosen in running:
        built = build_review(settings, engine, chosen.name, END)
        last = built.review.last_date or END
        key = RunningCampaign.artifact_key(chosen.name)
        linked.append(RunningCampaign(chosen.name, last, built.page.lines, built.path.name, key))
    with session_scope(engine) as session:
        publish_report(session, settings, kpis, running=linked)
    timed("report", t)
    wall = time.perf_counter() - started
    with session_scope(engine) as session:
        messages = {k: v for k, v in counts(session, CAMPAIGN, END).items() if v}
    return {
        "wall": wall,
        "task_runs": 0,
        "library": sum(stages.values()),
        "stages": stages,
        "messages": messages,
    }


def _users() -> int:
    from sqlalchemy import func, select

    from yunying.config import load_settings
    from yunying.store.engine import create_store_engine, session_scope
    from yunying.store.models import User

    with session_scope(create_store_engine(load_settings().store_url)) as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def _children() -> list[dict[str, str]]:
    """/proc/PID/status fields, plus `stat`, of this process's running children."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            fields["stat"] = (status.parent / "stat").read_text()
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == os.getpid():
            found.append(fields)
    return found


def _children_cpu_seconds() -> float:
    """CPU time used so far by the running children (Prefect's local API server)."""
    ticks = 0
    for child in _children():
        after_name = child["stat"].rsplit(")", 1)[1].split()
        ticks += int(after_name[11]) + int(after_name[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_peak_rss_mb() -> float:
    """The largest peak RSS among the running children (Prefect's local API server, which
    getrusage counts only once it has exited)."""
    peaks = [int(c["VmHWM"].split()[0]) for c in _children() if "VmHWM" in c]
    return max(peaks, default=0) / 1024


if __name__ == "__main__":
    load_before = os.getloadavg()[0]
    result = _flow() if sys.argv[1] == "flow" else _plain()
    result["users"] = _users()
    result["load"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["children_rss_mb"] = _children_peak_rss_mb()
    print(json.dumps(result))
