"""Count every segment file for a business date and show how each grows or shrinks."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from tasks.secrets import load_settings
from tasks.segments import segment_sizes


@flow(name="segments", flow_run_name="segments-{business_date}")
def segments(business_date: dt.date) -> dict[str, int]:
    return segment_sizes(load_settings(), business_date)


if __name__ == "__main__":
    segments(dt.date.today() - dt.timedelta(days=1))
