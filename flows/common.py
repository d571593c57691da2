"""What several flows share: the business date and a run name that carries it."""

from __future__ import annotations

import datetime as dt

from prefect.runtime import flow_run

from yunying.config import Settings
from yunying.lifecycle.business_dates import yesterday


def default_business_date(settings: Settings) -> dt.date:
    """Yesterday in the company's time zone: the last complete day."""
    return yesterday(settings.zone)


def run_name(prefix: str) -> str:
    parameters = flow_run.get_parameters() or {}
    day = parameters.get("business_date") or "yesterday"
    extra = parameters.get("campaign")
    return f"{prefix}-{extra}-{day}" if extra else f"{prefix}-{day}"
