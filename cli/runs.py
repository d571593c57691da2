"""`yunying runs`: recent flow runs from Prefect's API, newest first."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import FlowRunSort


def recent_runs(limit: int = 20) -> str:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=limit)
    lines = [f"{'run':48} {'state':12} {'started (UTC)':20} duration"]
    for run in runs:
        started = f"{run.start_time:%Y-%m-%d %H:%M:%S}" if run.start_time else "-"
        seconds = run.total_run_time.total_seconds() if run.total_run_time else 0.0
        lines.append(f"{run.name:48} {run.state_name or '-':12} {started:20} {seconds:.1f}s")
    return "\n".join(lines)
