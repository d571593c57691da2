"""Build test data through the real paths: the synthetic company's source database, pulled
into the store by the same code the nightly flow runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine

from yunying.config import Settings
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources
from yunying.sources.load import LoadStats
from yunying.sources.pull import pull_source

END = dt.date(2026, 11, 1)


def company_settings(settings: Settings, tmp_path: Path, users: int = 300, seed: int = 11,
                     end: dt.date = END, http_url: str | None = None) -> Settings:
    source_db = tmp_path / "source.db"
    if not source_db.exists():
        write_source_db(source_db, users, seed, end)
    return settings.model_copy(update={"sources": demo_sources(source_db, http_url)})


def pull_all(engine: Engine, settings: Settings) -> dict[str, LoadStats]:
    return {s.name: pull_source(engine, settings, s.name, "test") for s in settings.sources}
