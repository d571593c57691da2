"""Pull every configured source (or the named ones) into the store."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from tasks.pull import activity_basis, pull
from tasks.secrets import load_settings


def _run_name() -> str:
    return f"pull-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%MZ}"


@flow(name="pull", flow_run_name=_run_name)
def pull_sources(sources: list[str] | None = None) -> list[dict[str, Any]]:
    settings = load_settings()
    names = sources or [source.name for source in settings.sources]
    if not names:
        get_run_logger().warning("no sources configured: set `sources` in yunying.toml")
    # One source at a time: the store has one writer on SQLite, and each pull is bulk I/O.
    results = [pull(settings, name) for name in names]
    activity = activity_basis(settings)
    create_table_artifact(
        key="pull-summary",
        table=[
            {k: r[k] for k in ("source", "pulled", "inserted", "updated", "rejected", "watermark")}
            for r in results
        ],
        description="Rows per source in this run, and where the next run resumes"
        + (f". Activity: {activity}" if activity else ""),
    )
    return results


if __name__ == "__main__":
    pull_sources()
