"""Reactivation sends: plan the outbox for a campaign run, then send it batch by batch."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import task
from prefect.concurrency.sync import rate_limit
from prefect.logging import get_run_logger

from tasks.policy import RETRY_TRANSIENT, engine_for
from yunying.config import Settings
from yunying.messaging.campaign import Campaign, find_campaign
from yunying.messaging.channels import channels_for
from yunying.messaging.outbox import counts, counts_by_channel, next_retry_at, plan, requeue_failed
from yunying.messaging.preflight import preflight
from yunying.messaging.send import send_batch
from yunying.segments.compile import compile_segment
from yunying.segments.definition import SegmentLibrary
from yunying.store.engine import session_scope


@task(name="load-campaign", task_run_name="load-campaign-{name}", **RETRY_TRANSIENT)
def load_campaign(settings: Settings, name: str) -> Campaign:
    """Validate the campaign file and render every template before anything is sent."""
    campaign = find_campaign(settings.campaign_dir, name)
    preflight(settings, campaign)
    library = SegmentLibrary(settings.segment_dir)
    audience = campaign.audience_segment(library)
    if audience is not None:
        library.check(audience)  # a missing or looping segment stops the run here
    return campaign


@task(name="plan-outbox", task_run_name="plan-{campaign.name}-{business_date}", **RETRY_TRANSIENT)
def plan_outbox(
    settings: Settings, campaign: Campaign, business_date: dt.date, resend_failed: bool = False
) -> dict[str, int]:
    with session_scope(engine_for(settings.store_url)) as session:
        if resend_failed:
            requeued = requeue_failed(session, campaign.name, business_date)
            get_run_logger().info("requeued %d failed messages", requeued)
        library = SegmentLibrary(settings.segment_dir)
        segment = campaign.audience_segment(library)
        audience = (
            None
            if segment is None
            else compile_segment(session, library, segment, business_date, settings.zone)
        )
        planned = plan(session, campaign, business_date, audience=audience)
    get_run_logger().info("outbox for %s on %s: %s", campaign.name, business_date, planned)
    return planned


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
        channels_for(settings),
        limit,
        pace=provider_pace if settings.providers.rate_limits else None,
    )
    logger = get_run_logger()
    if result.claimed:
        logger.info("batch of %d: %s", result.claimed, dict(result.by_status))
    for reason, count in result.failures.items():
        logger.warning("%d message(s) not sent: %s", count, reason)
    return {"claimed": result.claimed, **result.by_status}


def provider_pace(channel: str, messages: int) -> None:
    """Take slots of the channel's Prefect rate limit (see `yunying setup`); one call per
    chunk, because Prefect's limits are coarse when taken per message."""
    rate_limit(f"provider-{channel}", occupy=messages)


@task(name="outbox-status", **RETRY_TRANSIENT)
def outbox_status(settings: Settings, campaign: str, business_date: dt.date) -> dict[str, Any]:
    with session_scope(engine_for(settings.store_url)) as session:
        retry_at = next_retry_at(session, campaign, business_date)
        return {
            "counts": counts(session, campaign, business_date),
            "by_channel": counts_by_channel(session, campaign, business_date),
            "next_retry_at": retry_at,
        }
