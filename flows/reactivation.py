"""Reactivation (召回): plan a campaign's outbox for a business date, then send it in batches."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from typing import Any, cast

from prefect import flow
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.logging import get_run_logger
from prefect.states import Completed, Failed

from flows.alerts import ALERTS
from flows.common import default_business_date, run_name
from tasks.reactivation import (
    dry_run_outbox,
    load_campaign,
    outbox_status,
    plan_outbox,
    schedule_deferred,
    send,
    sending_off,
)
from tasks.secrets import load_settings
from yunying.config import Settings
from yunying.errors import PermanentError
from yunying.messaging.campaign import Campaign
from yunying.messaging.status import OutboxStatus
from yunying.store.engine import utcnow

MAX_SEND_TASKS = 200  # keeps a run to a few hundred task runs at any scale
MAX_RETRY_WAIT = dt.timedelta(seconds=60)


@flow(
    name="reactivation",
    flow_run_name=lambda: run_name("reactivation"),
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def reactivation(
    campaign: str = "winback",
    business_date: dt.date | None = None,
    resend_failed: bool = False,
    send_tasks: int = MAX_SEND_TASKS,
) -> dict[str, Any]:
    """Plan one campaign's outbox for the date, then send it in batches."""
    settings = load_settings()
    day = business_date or default_business_date(settings)
    summary, warning = reactivate(settings, campaign, day, resend_failed, send_tasks)
    return night_end(summary, [summary], [warning] if warning else [])  # type: ignore[no-any-return]


def reactivate(
    settings: Settings,
    campaign: str,
    day: dt.date,
    resend_failed: bool = False,
    send_tasks: int = MAX_SEND_TASKS,
) -> tuple[dict[str, Any], str]:
    """One campaign's night in the current flow run: its summary, and what a person must know
    about messages left unsettled (empty when none). `send_tasks` bounds the send batches
    (they grow past `batch_size` to fit): a night of several campaigns shares one budget."""
    chosen = load_campaign(settings, campaign)
    if chosen.dry_run:
        return _dry_run(settings, chosen, day), ""
    planned = plan_outbox(settings, chosen, day, resend_failed)
    to_send = sum(
        planned[s] for s in (OutboxStatus.QUEUED, OutboxStatus.DEFERRED, OutboxStatus.SENDING)
    )
    batch = max(settings.batch_size, math.ceil(to_send / max(1, send_tasks)))
    # A sync flow gets the id itself: Prefect returns a coroutine only to async callers.
    progress = cast(
        uuid.UUID,
        create_progress_artifact(progress=0.0, description=f"{chosen.name} {day} sending"),
    )
    worker = uuid.uuid4().hex[:12]
    handled = 0
    while True:
        result = send(settings, chosen, day, worker, batch)
        handled += result["claimed"]
        if to_send:
            update_progress_artifact(progress, progress=min(100.0, 100.0 * handled / to_send))
        if result["claimed"]:
            continue
        status = outbox_status(settings, chosen.name, day)
        retry_at = status["next_retry_at"]
        if retry_at is None or retry_at - utcnow() > MAX_RETRY_WAIT:
            break
        time.sleep(max(0.0, (retry_at - utcnow()).total_seconds()))
    update_progress_artifact(progress, progress=100.0)
    deferred = ""
    if status["deferred_until"] is not None:
        where = schedule_deferred(chosen.name, day, status["deferred_until"])
        deferred = (
            f"{status['counts'].get(OutboxStatus.DEFERRED, 0)} message(s) deferred by quiet"
            f" hours go out from {status['deferred_until']:%Y-%m-%d %H:%M} UTC: "
            + (f"scheduled {where}." if where else "by the next run of the campaign.")
        )
        get_run_logger().info(deferred)
    warning = " ".join(filter(None, [unfinished_warning(chosen.name, day, status), deferred]))
    create_table_artifact(
        key=f"send-summary-{_key(chosen.name)}",
        table=status["by_channel"],
        description=f"{sending_off_prefix(settings)}Outbox of {chosen.name} on {day}, per"
        f" channel and status. {warning}",
    )
    if warning:
        get_run_logger().warning(warning)
    summary = {"campaign": chosen.name, "business_date": day.isoformat(), **status["counts"]}
    return {**summary, "broken_channels": broken_channels(status["by_channel"])}, warning


def broken_channels(by_channel: list[dict[str, Any]]) -> list[str]:
    """The channels whose every message of the run failed: a provider or setting broken."""
    return [
        str(row["channel"])
        for row in by_channel
        if row[OutboxStatus.FAILED] and not row[OutboxStatus.SENT] and not row[OutboxStatus.BOUNCED]
    ]


def sending_off_prefix(settings: Settings) -> str:
    """An artifact description's first sentence while sending is off."""
    notice = sending_off(settings)
    return f"{notice}. " if notice else ""


def _dry_run(settings: Settings, chosen: Campaign, day: dt.date) -> dict[str, Any]:
    """`dry_run = true`: report what the run would send; write and send nothing."""
    report = dry_run_outbox(settings, chosen, day)
    create_markdown_artifact(
        key=f"dry-run-{_key(chosen.name)}",
        markdown="\n".join(
            f"  - {line.strip()}" if line.startswith(" ") else f"- {line}"
            for line in report["lines"]
        ),
        description=f"Dry run of {chosen.name} on {day}: nothing written or sent",
    )
    return {
        "campaign": chosen.name,
        "business_date": day.isoformat(),
        "dry_run": report["summary"],
    }


def night_end(data: Any, summaries: list[dict[str, Any]], warnings: list[str]) -> Any:
    """What a flow that sent campaigns returns: `data`; with the warnings as the message of a
    Completed state; Failed (ops are alerted) when every message of a campaign, or of one of
    its channels, failed, which is a provider or setting broken, not a few bad addresses (the
    summary is then in the send-summary artifacts and the message)."""
    broken = [
        f"every message of {s['campaign']}"
        if not s.get(OutboxStatus.SENT)
        else f"every {' and '.join(s['broken_channels'])} message of {s['campaign']}"
        for s in summaries
        if s.get("broken_channels")
    ]
    message = " ".join(warnings)
    if broken:
        failed = f"{'; '.join(broken)} failed. {message}"
        # A failed state's data is what calling the flow raises: the CLI prints its one line.
        return Failed(message=failed, data=PermanentError(failed))
    return Completed(message=message, data=data) if message else data


def _key(campaign: str) -> str:
    """An artifact key of the campaign's own (keys take no underscores): several campaigns
    in one nightly run each keep their latest summary."""
    return campaign.replace("_", "-")


def unfinished_warning(campaign: str, day: dt.date, status: dict[str, Any]) -> str:
    """What a person must know about a run that ends with messages neither sent nor settled."""
    parts = []
    if status["in_flight"]:
        parts.append(
            f"{status['in_flight']} message(s) still in flight (claimed by another worker, or "
            f"left by one that crashed): reclaimed after their lease, from "
            f"{status['reclaimed_at']:%Y-%m-%d %H:%M} UTC, by the next run; after a confirmed "
            f"crash, at once with `yunying outbox reclaim {campaign} --date {day}`."
        )
    failed = status["counts"].get(OutboxStatus.FAILED, 0)
    if failed:
        top = list(status["failed_because"].items())[:3]
        why = "; ".join(f"{count} x {reason or 'no reason given'}" for reason, count in top)
        parts.append(
            f"{failed} message(s) of {campaign} failed for good ({why});"
            f" once the cause is fixed, `yunying run reactivation --campaign {campaign} --date"
            f" {day} --resend-failed` sends them again."
        )
    unknown = status["counts"].get(OutboxStatus.UNKNOWN, 0)
    if unknown:
        parts.append(
            f"{unknown} message(s) with an unknown outcome after a crash (the provider takes "
            "no idempotency key): check its log; they are not resent."
        )
    return " ".join(parts)


if __name__ == "__main__":
    reactivation()
