"""Runs started by the `yunying` command on its own temporary Prefect server.

That server stops with the command, so a link into its UI is dead by the time anyone reads
an alert: for such runs, alerts and chat messages carry no link and name the command that
runs it again instead. Runs on a lasting Prefect server (deployments, workers) keep their
links. The command sets this once per process, before its flow starts.
"""

from __future__ import annotations

_rerun: list[str] = []


def ran_from_the_command_line(rerun: str) -> None:
    """This process's runs use the command's temporary server; `rerun` runs them again."""
    _rerun[:] = [rerun]


def command_line_rerun() -> str | None:
    """The command that runs this process's runs again, when they have no lasting UI."""
    return _rerun[0] if _rerun else None
