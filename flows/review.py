"""The review (复盘) of one campaign: objective vs result, funnel, variants, cost, slices."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.alerts import ALERTS
from flows.common import default_business_date, run_name
from tasks.review import campaign_review, closing_campaigns
from tasks.secrets import load_settings


@flow(
    name="review",
    flow_run_name=lambda: run_name("review"),
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def review(
    campaign: str | None = None,
    as_of: dt.date | None = None,
    only_date: dt.date | None = None,
    send_email: bool = True,
) -> dict[str, Any]:
    """`as_of` defaults to yesterday; `only_date` reviews one send date instead of all.
    Without `campaign` (the daily schedule), every campaign whose measurement window closed
    on `as_of` is reviewed, each under its name in the result."""
    settings = load_settings()
    day = as_of or default_business_date(settings)
    if campaign is not None:
        return campaign_review(settings, campaign, day, only_date, send_email)
    return {
        name: campaign_review(settings, name, day, only_date, send_email)
        for name in closing_campaigns(settings, day)
    }


if __name__ == "__main__":
    review("winback")
