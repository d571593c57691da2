"""Which failures the tasks' retry policy retries, on real stores."""

import uuid

import pytest
import sqlalchemy as sa
from prefect.states import Failed
from sqlalchemy import Engine, text

from tasks.policy import retry_transient
from yunying.errors import ConfigError, TransientError
from yunying.sources.write.postgres import copy_to_stage
from yunying.store.engine import create_store_engine, session_scope


def _retried(error: BaseException) -> bool:
    return retry_transient(None, None, Failed(data=error))  # type: ignore[arg-type]


def test_yunying_errors_keep_their_kind() -> None:
    assert _retried(TransientError("timeout"))
    assert not _retried(ConfigError("source x: url: missing"))
    assert not _retried(ValueError("a bug"))


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_lost_postgresql_store_connection_is_retried(
    engine: Engine, postgres_server: str
) -> None:
    admin = sa.create_engine(postgres_server)

    def terminate(pid: int) -> None:
        with admin.begin() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    try:
        # Through SQLAlchemy, and through the driver (the pull's COPY), mid-transaction.
        with pytest.raises(Exception) as caught, session_scope(engine) as session:
            terminate(session.scalar(text("SELECT pg_backend_pid()")))
            session.execute(text("SELECT 1"))
        assert _retried(caught.value)
        with pytest.raises(Exception) as caught, session_scope(engine) as session:
            terminate(session.scalar(text("SELECT pg_backend_pid()")))
            copy_to_stage(session, "events", ["event_id"], "e1\n")
        assert _retried(caught.value)
        # The next session gets a live connection; an error in the data is not retried.
        with pytest.raises(Exception) as caught, session_scope(engine) as session:
            session.execute(text("INSERT INTO source_watermarks VALUES (NULL, NULL, NULL)"))
        assert not _retried(caught.value)
    finally:
        admin.dispose()


def test_a_locked_sqlite_store_is_retried_and_a_missing_table_is_not(tmp_path: object) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path}/store-{uuid.uuid4().hex}.db")
    try:
        with engine.begin() as holder:
            holder.execute(text("CREATE TABLE t (n INTEGER)"))
        with engine.connect() as holder, engine.connect() as waiter:
            holder.execute(text("BEGIN IMMEDIATE"))
            waiter.execute(text("PRAGMA busy_timeout=0"))
            with pytest.raises(Exception) as caught:
                waiter.execute(text("INSERT INTO t VALUES (1)"))
            assert _retried(caught.value)
            holder.rollback()
        with pytest.raises(Exception) as caught, engine.begin() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
        assert not _retried(caught.value)
    finally:
        engine.dispose()
