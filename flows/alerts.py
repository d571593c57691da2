"""Flow hooks that tell ops when a scheduled run fails (the 2 a.m. problem)."""

from __future__ import annotations

from typing import Any

from tasks.secrets import load_settings
from yunying.reports.daily_email import send_alert


def email_ops_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Email the report recipients: which run failed, why, and where to look."""
    settings = load_settings()
    send_alert(
        settings,
        subject=f"Yunying: {flow_run.name} {state.type.value.lower()}",
        text=(
            f"The flow run {flow_run.name} ({flow.name}) ended {state.name}: {state.message}\n\n"
            f"Open it in the Prefect UI: runs/flow-run/{flow_run.id}\n"
            "Retrying it from the UI is safe: every task is idempotent (see README, Operations)."
        ),
    )
