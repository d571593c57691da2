"""A PostgreSQL pull that leaves the events' direct COPY for the staging table says so."""

import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.builders import company_settings
from yunying.config import Settings
from yunying.sources.pull import pull_source


@pytest.mark.postgres
def test_a_batch_leaving_the_fast_path_is_counted_and_logged_once(
    engine: Engine, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's direct COPY")
    settings = company_settings(settings, tmp_path, users=30)
    with caplog.at_level(logging.WARNING, logger="yunying.sources"):
        first = pull_source(engine, settings.source("app-events"), settings.pull_rules, "r1")
        assert first.fast_path_fallbacks == 0
        assert not caplog.records
        # The incremental source reads its last row again: a known event id.
        again = pull_source(engine, settings.source("app-events"), settings.pull_rules, "r2")
    assert again.fast_path_fallbacks == 1
    assert [r.getMessage() for r in caplog.records] == [
        "source app-events: 1 of 1 batches took the staging table instead of the direct COPY"
        " (an event id already stored)"
    ]
