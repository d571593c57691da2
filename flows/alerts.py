"""Flow hooks that tell ops when a scheduled run fails (the 2 a.m. problem).

Every flow that runs on a schedule or from the command line takes `ALERTS` as its failure
and crash hooks. A subflow's failure fails its parent too, so only a top-level run alerts:
a campaign failing inside the nightly is one alert, the nightly's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tasks.notify import local_rerun, run_link
from tasks.secrets import load_settings
from yunying.notify.command_line import ended_how
from yunying.notify.messages import run_failed, what_to_do
from yunying.notify.post import post_to_targets
from yunying.reports.daily_email import send_alert

if TYPE_CHECKING:
    from prefect.flows import FlowStateHook


def _inside_another_run(flow_run: Any) -> bool:
    return flow_run.parent_task_run_id is not None


def email_ops_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Email the report recipients: which run failed, why, and where to look."""
    if _inside_another_run(flow_run):
        return
    settings = load_settings()
    link, rerun = run_link(flow_run.id), local_rerun()
    where = (
        "It ran from the command line, on a Prefect server that stopped with the command "
        "(`yunying runs` lists it)."
        if link is None and rerun is not None
        else f"Open it in the Prefect UI: {link}"
    )
    ended, message = ended_how(state.name, state.message or "")
    act = f"{where}\n{what_to_do(message, link, rerun)}"
    send_alert(
        settings,
        subject=f"Yunying: {flow_run.name} {ended.lower()}",
        text=f"The flow run {flow_run.name} ({flow.name}) ended {ended}: {message}\n\n" + act,
    )


def tell_ops_chat_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Post the same news to the group-chat robots of settings.notify (a hook of its own, so
    a mail server that is down does not keep the chat from hearing it)."""
    if _inside_another_run(flow_run):
        return
    settings = load_settings()
    message = run_failed(
        flow_run.name,
        flow.name,
        *ended_how(state.name, state.message or ""),
        run_link(flow_run.id),
        local_rerun(),
    )
    for delivery in post_to_targets(settings.notify, "failure", message):
        if not delivery.delivered:
            logging.getLogger(__name__).warning(
                "chat target %s was not told: %s", delivery.target, delivery.reason
            )


ALERTS: list[FlowStateHook[..., Any]] = [email_ops_on_failure, tell_ops_chat_on_failure]
