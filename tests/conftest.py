"""The test rig: stores on SQLite and PostgreSQL, a real SMTP server, a real local HTTP server,
and one Prefect test harness per session. Nothing under test is patched."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

_PREFECT_HOME = tempfile.mkdtemp(prefix="yunying-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy import Engine  # noqa: E402

from tests.rig import SmtpSink  # noqa: E402
from yunying.config import Settings, load_settings  # noqa: E402
from yunying.demo.local_server import LocalServer  # noqa: E402
from yunying.store.engine import create_store_engine  # noqa: E402
from yunying.store.migrate import upgrade  # noqa: E402

POSTGRES_URL = os.environ.get(
    "YUNYING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REPO = Path(__file__).resolve().parents[1]


def _postgres_reachable() -> str | None:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _postgres_reachable()
    if problem:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: PostgreSQL is required)")
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("YUNYING_") and name != "YUNYING_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(REPO)


def _postgres_schema_url(base: str, schema: str) -> str:
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty store: a SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        upgrade(url)
        yield url
        return
    base = request.getfixturevalue("postgres_server")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = _postgres_schema_url(base, schema)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for one test, also exported as env vars so flows build the same ones."""
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("YUNYING_DATABASE_URL", store_url)
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(REPO / "deployments" / "campaigns"))
    monkeypatch.setenv("YUNYING_REWARD_DIR", str(REPO / "deployments" / "rewards"))
    # The suite drives real (local) channels; a new store's default, sending off, is tested
    # with the variable removed (tests/integration/test_first_run.py).
    monkeypatch.setenv("YUNYING_SENDING", "true")
    return load_settings()


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="session")
def prefect() -> Iterator[None]:
    """One Prefect test server for the whole session (a new one per test costs ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
