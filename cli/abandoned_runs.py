"""Runs a killed `yunying` command left Running.

A command tags its runs with this host, its process id and that process's start time. A
command killed outright (SIGKILL, a closed laptop, the OOM killer) cannot mark its runs, and
its temporary server dies with it: the runs stayed Running for good in `yunying runs` and
the UI. The next command marks Crashed those whose process is gone; a run of a command still
working (another terminal) is left alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState
from prefect.client.schemas.filters import FlowRunFilterStateType as StateTypes
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

PREFIX = "yunying-command:"


def command_tag() -> str:
    """The tag of this process's runs."""
    return f"{PREFIX}{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def crash_abandoned_runs() -> list[str]:
    """Mark Crashed the Running or Pending runs of commands on this host whose process is
    gone; returns their names."""
    unfinished = FlowRunFilterState(type=StateTypes(any_=[StateType.RUNNING, StateType.PENDING]))
    crashed = []
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(state=unfinished)):
            pid = _abandoned_by(run.tags)
            if pid is None:
                continue
            message = (
                f"the `yunying` command that ran it (process {pid}) ended without finishing"
                " it (killed?): running the same command again is safe"
            )
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            crashed.append(run.name)
    return crashed


def _abandoned_by(tags: list[str]) -> int | None:
    """The process id in a command's tag among `tags` when that process is gone."""
    for tag in tags:
        if not tag.startswith(PREFIX):
            continue
        host, pid, started = tag.removeprefix(PREFIX).rsplit(":", 2)
        if host == socket.gethostname() and _started(int(pid)) != started:
            return int(pid)
    return None


def _started(pid: int) -> str:
    """When process `pid` started (Linux: clock ticks since boot, so that a recycled process
    id reads as another process), "alive" elsewhere, "" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if Path("/proc/self/stat").exists():
            return ""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""
        except PermissionError:
            pass
        return "alive"
    # The command name, in parentheses, may hold spaces: the fields after it are plain.
    return stat.rpartition(")")[2].split()[19]
