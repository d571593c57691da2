"""Reactivation sends: plan the outbox for a campaign run, then send it batch by batch."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import task
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_run_logger
from prefect.states import Scheduled
from sqlalchemy import Select
from sqlalchemy.orm import Session

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.lifecycle.states import latest_date
from yunying.messaging.campaign import Campaign
from yunying.messaging.campaign_check import load_checked
from yunying.messaging.dry_run import dry_run
from yunying.messaging.outbox import (
    counts,
    counts_by_channel,
    in_flight,
    mark_held_out_while_sending_off,
    next_deferred_at,
    next_retry_at,
    plan,
    reasons,
    requeue_failed,
)
from yunying.messaging.preflight import preflight
from yunying.messaging.send import send_batch
from yunying.messaging.sending import campaign_channels, export_notice, off_notice
from yunying.messaging.status import OutboxStatus
from yunying.reports.kpis import money_for
from yunying.segments.compile import compile_segment
from yunying.segments.definition import SegmentLibrary
from yunying.store.engine import session_scope


@task(name="load-campaign", task_run_name="load-campaign-{name}", **RETRY_TRANSIENT)
def load_campaign(settings: Settings, name: str) -> Campaign:
    """Validate the campaign file, its templates and segments, and render every template
    before anything is sent."""
    campaign = load_checked(settings, name)
    with session_scope(engine_for(settings.store_url)) as session:
        checked = preflight(settings, campaign, session)
    for warning in checked.warnings:
        get_run_logger().warning("template check: %s", warning)
    return campaign


@task(name="plan-outbox", task_run_name="plan-{campaign.name}-{business_date}", **RETRY_TRANSIENT)
def plan_outbox(
    settings: Settings, campaign: Campaign, business_date: dt.date, resend_failed: bool = False
) -> dict[str, int]:
    with session_scope(engine_for(settings.store_url)) as session:
        if resend_failed:
            requeued = requeue_failed(session, campaign, business_date)
            get_run_logger().info("requeued %d failed messages", requeued)
        planned = counts(session, campaign.name, business_date)
        moved_on = latest_date(session) != business_date
        # Once the states have moved on, a date already planned sends what it left (failed,
        # deferred by quiet hours) and plans no one new.
        if not (moved_on and (resend_failed or any(planned.values()))):
            audience = _audience(session, settings, campaign, business_date)
            planned = plan(session, campaign, business_date, audience=audience)
    logger = get_run_logger()
    logger.info("outbox for %s on %s: %s", campaign.name, business_date, planned)
    engine = engine_for(settings.store_url)
    off = off_notice(engine, settings)
    if off:
        with session_scope(engine) as session:
            mark_held_out_while_sending_off(session, campaign.name, business_date)
    for notice in (off, export_notice(engine, settings, campaign.channels)):
        if notice:
            logger.warning(notice)
    return planned


@task(name="dry-run", task_run_name="dry-run-{campaign.name}-{business_date}", **RETRY_TRANSIENT)
def dry_run_outbox(
    settings: Settings, campaign: Campaign, business_date: dt.date
) -> dict[str, Any]:
    """What a run would send, per variant and channel, and why the rest would not; the
    outbox is left untouched (yunying/messaging/dry_run.py)."""
    with session_scope(engine_for(settings.store_url)) as session:
        audience = _audience(session, settings, campaign, business_date)
        report = dry_run(session, campaign, business_date, audience=audience)
    lines = report.lines()
    get_run_logger().info("\n".join(lines))
    return {"lines": lines, "summary": report.as_dict()}


def _audience(
    session: Session, settings: Settings, campaign: Campaign, business_date: dt.date
) -> Select[tuple[str]] | None:
    library = SegmentLibrary(settings.segment_dir)
    segment = campaign.audience_segment(library)
    if segment is None:
        return None
    return compile_segment(
        session, library, segment, business_date, settings.zone, money_for(settings)
    )


@task(name="send-batch", **RETRY_TRANSIENT)
def send(
    settings: Settings, campaign: Campaign, business_date: dt.date, worker: str, limit: int
) -> dict[str, Any]:
    result = send_batch(
        engine_for(settings.store_url),
        settings,
        campaign,
        business_date,
        worker,
        campaign_channels(engine_for(settings.store_url), settings),
        limit,
        pace=provider_pace if settings.providers.rate_limits else None,
    )
    logger = get_run_logger()
    if result.claimed:
        logger.info("batch of %d: %s", result.claimed, dict(result.by_status))
    for reason, count in result.failures.items():
        logger.warning("%d message(s) not sent: %s", count, reason)
    if result.refused:
        logger.warning(
            "%d outcome(s) not recorded: this worker's claim had lapsed or was reclaimed",
            result.refused,
        )
    if result.expired:
        logger.warning("%d deferred message(s) expired (campaign valid_hours)", result.expired)
    if result.withdrawn:
        logger.info(
            "%d message(s) not sent: the user unsubscribed or opted out since they were planned",
            result.withdrawn,
        )
    return {
        "claimed": result.claimed,
        "refused": result.refused,
        "expired_now": result.expired,
        "withdrawn": result.withdrawn,
        **result.by_status,
    }


def provider_pace(channel: str, messages: int) -> None:
    """Take slots of the channel's Prefect rate limit (see `yunying setup`); one call per
    chunk, because Prefect's limits are coarse when taken per message."""
    rate_limit(f"provider-{channel}", occupy=messages)


def sending_off(settings: Settings) -> str:
    """The loud line for a run's summaries while sending is off ("sent" there means written
    to the file outbox), else ""."""
    return off_notice(engine_for(settings.store_url), settings) or ""


@task(name="outbox-status", **RETRY_TRANSIENT)
def outbox_status(settings: Settings, campaign: str, business_date: dt.date) -> dict[str, Any]:
    with session_scope(engine_for(settings.store_url)) as session:
        retry_at = next_retry_at(session, campaign, business_date)
        flying = in_flight(session, campaign, business_date)
        return {
            "deferred_until": next_deferred_at(session, campaign, business_date),
            "in_flight": flying.count,
            "reclaimed_at": flying.reclaimed_at,
            "counts": counts(session, campaign, business_date),
            "by_channel": counts_by_channel(session, campaign, business_date),
            "next_retry_at": retry_at,
            "failed_because": reasons(session, campaign, business_date, OutboxStatus.FAILED),
        }


DEPLOYMENT = (
    "reactivation/reactivation"  # prefect.yaml: flow `reactivation`, deployment `reactivation`
)


@task(name="schedule-deferred", **RETRY_TRANSIENT)
def schedule_deferred(campaign: str, business_date: dt.date, at: dt.datetime) -> str | None:
    """Schedule a run of the reactivation deployment at the moment deferred messages become
    sendable (their users' quiet hours end), so they go out then, not at the next fixed run.
    One run per campaign, date and moment (an idempotency key), however many runs ask.
    Returns where it was scheduled, or None when the deployment is not registered."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return None
        moment = at.replace(tzinfo=dt.UTC)
        client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"campaign": campaign, "business_date": business_date.isoformat()},
            state=Scheduled(scheduled_time=moment),
            idempotency_key=f"deferred:{campaign}:{business_date}:{moment.isoformat()}",
        )
    return f"{DEPLOYMENT} at {moment:%Y-%m-%d %H:%M} UTC"
