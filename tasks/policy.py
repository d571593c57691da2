"""The retry policy every task shares, and the store engine a task process reuses."""

from __future__ import annotations

from functools import cache
from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task, exponential_backoff
from sqlalchemy import Engine

from yunying.errors import TransientError
from yunying.store.engine import create_store_engine, store_error_is_transient


def retry_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only failures that may go away: timeouts, 5xx, 429, lost connections (to a
    source or to the store)."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as exc:
            error = exc
    return isinstance(error, TransientError) or (
        error is not None and store_error_is_transient(error)
    )


RETRY_TRANSIENT: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
    # Tasks are idempotent over the store; Prefect's result cache would only add I/O.
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


@cache
def engine_for(url: str) -> Engine:
    """One engine (and connection pool) per store URL per process."""
    return create_store_engine(url)
