"""Compute lifecycle states and RFM tiers for a business date."""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.lifecycle.business_dates import refuse_future
from yunying.lifecycle.states import (
    TIERS,
    DatePlan,
    LifecycleSummary,
    compute_lifecycle,
    dates_to_compute,
    plan_dates,
)
from yunying.reports.kpis import money_for
from yunying.store.days_zone import check_days_zone
from yunying.store.engine import session_scope


@task(name="lifecycle-dates", **RETRY_TRANSIENT)
def lifecycle_dates(settings: Settings, business_date: dt.date) -> list[dt.date]:
    refuse_future(business_date, settings.zone, "business_date")
    with session_scope(engine_for(settings.store_url)) as session:
        check_days_zone(session, settings.zone.key)
        return dates_to_compute(session, business_date, settings.lifecycle.catch_up_days)


@task(name="lifecycle-plan", **RETRY_TRANSIENT)
def lifecycle_plan(
    settings: Settings, business_date: dt.date, first: dt.date | None, discard_later: bool = False
) -> DatePlan:
    refuse_future(business_date, settings.zone, "business_date")
    with session_scope(engine_for(settings.store_url)) as session:
        check_days_zone(session, settings.zone.key)
        return plan_dates(
            session, business_date, first, settings.lifecycle.catch_up_days, discard_later
        )


@task(name="lifecycle", task_run_name="lifecycle-{business_date}", **RETRY_TRANSIENT)
def lifecycle(
    settings: Settings, business_date: dt.date, recompute: bool = False
) -> LifecycleSummary:
    # The rewind and the first recomputed date commit together: a retry starts again cleanly.
    with session_scope(engine_for(settings.store_url)) as session:
        summary = compute_lifecycle(
            session, business_date, settings.lifecycle, recompute, money_for(settings)
        )
    logger = get_run_logger()
    if summary.recomputed_all:
        logger.warning("%s: %s", business_date, summary.recomputed_all)
    logger.info("users per state on %s: %s", business_date, summary.by_state)
    create_table_artifact(
        key="lifecycle-states",
        table=[
            {"state": state, "users": users, **summary.by_tier[state]}
            for state, users in summary.by_state.items()
        ],
        description=f"Users per lifecycle state and RFM tier ({'/'.join(TIERS)}), {business_date}"
        + (f" ({summary.recomputed_all})" if summary.recomputed_all else ""),
    )
    create_table_artifact(
        key="lifecycle-transitions",
        table=[
            {"from": from_state or "(first seen)", "to": to_state, "users": users}
            for (from_state, to_state), users in sorted(
                summary.transitions.items(), key=lambda item: -item[1]
            )
        ],
        description=f"State changes on {business_date}",
    )
    return summary
