"""Runs started by the `yunying` command on its own temporary Prefect server.

That server stops with the command, so a link into its UI is dead by the time anyone reads
an alert: for such runs, alerts and chat messages carry no link and name the command that
runs it again instead. Runs on a lasting Prefect server (deployments, workers) keep their
links. The command sets this once per process, before its flow starts.
"""

from __future__ import annotations

# The temporary server's API URL, and the command that runs this process's runs again.
_marked: list[tuple[str, str]] = []
# Set when the command was interrupted (Ctrl-C, SIGTERM).
_interrupted: list[bool] = []

INTERRUPTED = "interrupted (Ctrl-C or a stop signal) before it finished"


def ran_from_the_command_line(api_url: str, rerun: str) -> None:
    """This process's runs on `api_url` (the command's temporary server) run again with
    `rerun`."""
    _marked[:] = [(api_url, rerun)]


def command_line_rerun(api_url: str | None) -> str | None:
    """The command that runs a run on `api_url` again, when that is the command's temporary
    server (so the run has no lasting UI), else None."""
    return next((rerun for url, rerun in _marked if url == api_url), None)


def interrupted() -> None:
    """The command was told to stop: its runs end because of that, whatever error Prefect
    turns the interrupt into on the way (it is sometimes not KeyboardInterrupt)."""
    _interrupted[:] = [True]


def was_interrupted() -> bool:
    return bool(_interrupted)


def ended_how(state_name: str, message: str) -> tuple[str, str]:
    """The state and message to tell people of a run that ended `state_name` with `message`:
    Crashed and interrupted, when the command was interrupted."""
    return ("Crashed", INTERRUPTED) if _interrupted else (state_name, message)
