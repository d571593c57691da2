"""Pull every configured source (or the named ones) into the store."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from flows.alerts import ALERTS
from tasks.pull import activity_basis, days_zone, pull
from tasks.secrets import load_settings
from yunying.config import Settings
from yunying.errors import PermanentError


def _run_name() -> str:
    return f"pull-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%MZ}"


@flow(
    name="pull",
    flow_run_name=_run_name,
    on_failure=ALERTS,
    on_crashed=ALERTS,
)
def pull_sources(sources: list[str] | None = None) -> list[dict[str, Any]]:
    return pull_all(load_settings(), sources)


def pull_all(settings: Settings, sources: list[str] | None = None) -> list[dict[str, Any]]:
    """Every source, or the named ones, in the current flow run: the pull flow's or the
    nightly's."""
    names = sources or [source.name for source in settings.sources]
    days_zone(settings)
    if not names:
        get_run_logger().warning("no sources configured: set `sources` in yunying.toml")
    # One source at a time: the store has one writer on SQLite, and each pull is bulk I/O.
    # A source that fails for good (after its retries) does not stop the ones after it.
    states = {name: pull(settings, name, return_state=True) for name in names}
    results = [state.result() for state in states.values() if state.is_completed()]
    failed = {name: state.message for name, state in states.items() if not state.is_completed()}
    activity = activity_basis(settings)
    columns = ("source", "pulled", "inserted", "updated", "rejected", "watermark")
    create_table_artifact(
        key="pull-summary",
        table=[
            {**{k: r[k] for k in columns}, "files set aside": len(r["set_aside"]), "failed": ""}
            for r in results
        ]
        + [
            {**dict.fromkeys(columns, ""), "source": name, "files set aside": "", "failed": why}
            for name, why in failed.items()
        ],
        description="Rows per source in this run, where the next run resumes, what failed"
        + (f". Activity: {activity}" if activity else ""),
    )
    if failed:
        pulled = "the others were pulled" if results else "none was pulled"
        raise PermanentError(
            f"{len(failed)} of {len(names)} sources failed ({pulled}): "
            + "; ".join(f"{name}: {message}" for name, message in failed.items())
        )
    return results


if __name__ == "__main__":
    pull_sources()
