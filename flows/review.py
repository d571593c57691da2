"""The review (复盘) of one campaign: objective vs result, funnel, variants, cost, slices."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.common import default_business_date, run_name
from tasks.review import campaign_review
from tasks.secrets import load_settings


@flow(name="review", flow_run_name=lambda: run_name("review"))
def review(
    campaign: str,
    as_of: dt.date | None = None,
    only_date: dt.date | None = None,
    send_email: bool = True,
) -> dict[str, Any]:
    """`as_of` defaults to yesterday; `only_date` reviews one send date instead of all."""
    settings = load_settings()
    return campaign_review(
        settings, campaign, as_of or default_business_date(settings), only_date, send_email
    )


if __name__ == "__main__":
    review("winback")
