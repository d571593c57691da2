"""Pull one configured source into the store."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from tasks.policy import RETRY_TRANSIENT, engine_for
from tasks.pull_process import pull_process
from yunying.config import Settings
from yunying.lifecycle.activity import describe_activity, stored_entities
from yunying.sources.pull import pull_source
from yunying.store.days_zone import check_days_zone
from yunying.store.engine import session_scope


@task(name="pull-source", task_run_name="pull-{name}", **RETRY_TRANSIENT)
def pull(settings: Settings, name: str) -> dict[str, Any]:
    logger = get_run_logger()
    with pull_process():
        stats = pull_source(
            engine_for(settings.store_url),
            settings.source(name),
            settings.pull_rules,
            run_id=str(flow_run.get_id() or "local"),
            on_batch=lambda total: logger.info(
                "source %s: %d pulled, %d rejected so far", name, total.pulled, total.rejected
            ),
        )
    logger.info(
        "source %s: %d pulled, %d inserted, %d updated, %d rejected %s",
        name,
        stats.pulled,
        stats.inserted,
        stats.updated,
        stats.rejected,
        stats.reasons or "",
    )
    for file in stats.set_aside:
        logger.warning("source %s: set aside %s", name, file)
    return {"source": name, **asdict(stats)}


@task(name="days-zone", **RETRY_TRANSIENT)
def days_zone(settings: Settings) -> None:
    """Before any source: the store's days must be in the configured zone (check_days_zone)."""
    with session_scope(engine_for(settings.store_url)) as session:
        check_days_zone(session, settings.zone.key)


@task(name="activity-basis", **RETRY_TRANSIENT)
def activity_basis(settings: Settings) -> str | None:
    """How activity is derived when the store has users but no events, else None."""
    with session_scope(engine_for(settings.store_url)) as session:
        entities = stored_entities(session)
    note = describe_activity(entities, settings.lifecycle)
    if note:
        get_run_logger().warning(note)
    return note
