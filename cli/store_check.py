"""What to say when the store cannot serve a command: one line naming the setting or the
command to run, not a traceback. Every command asks here (`main` after a database error,
`run` before its flow starts)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from yunying.config import Settings
from yunying.lifecycle.states import latest_date, not_computed_for
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.migrate import alembic_config

UPGRADE = "run `yunying db upgrade`"


def store_problem(settings: Settings, schema: bool = True) -> str | None:
    """None when the store answers (and, with `schema`, has this Yunying's schema), else the
    line to print, with the URL's password masked."""
    url = make_url(settings.store_url)
    shown = url.render_as_string(hide_password=True)
    # Connecting would leave an empty SQLite file behind, which is no more set up.
    file = url.database if url.get_backend_name() == "sqlite" else None
    if schema and file not in (None, "", ":memory:") and not Path(str(file)).exists():
        return f"there is no store at {shown} yet: {UPGRADE} to create it" + _no_settings_file()
    engine = create_store_engine(settings.store_url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except sa.exc.DBAPIError as exc:
        cause = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
        setting = "database_url" if settings.database_url else "home (no database_url)"
        return f"cannot reach the store at {shown} (setting {setting}): {cause}"
    finally:
        engine.dispose()
    return _schema_problem(settings.store_url, shown, current) if schema else None


def _no_settings_file() -> str:
    """When no settings file is read, the likely cause of a missing store: a command run
    outside the folder holding yunying.toml, on the defaults."""
    if "YUNYING_CONFIG" in os.environ or Path("yunying.toml").is_file():
        return ""
    return (
        f" (no yunying.toml in {Path.cwd()}, nor YUNYING_CONFIG: this runs on the defaults;"
        " if your settings are elsewhere, run from their folder)"
    )


def _schema_problem(store_url: str, shown: str, current: set[str]) -> str | None:
    scripts = ScriptDirectory.from_config(alembic_config(store_url))
    if current == set(scripts.get_heads()):
        return None
    if not current:
        return f"the store at {shown} is not set up: {UPGRADE} to create it"
    known = {script.revision for script in scripts.walk_revisions()}
    if current <= known:
        return f"the store at {shown} is behind this Yunying: {UPGRADE} to migrate it"
    return (
        f"the store at {shown} was migrated by a newer Yunying (revision "
        f"{', '.join(sorted(current - known))}): run that version, or upgrade this one"
    )


def unplannable(settings: Settings, day: dt.date) -> str | None:
    """Why a campaign cannot plan on `day` (its lifecycle states are for another date), as
    the line to print; None when it can."""
    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            computed = latest_date(session)
    finally:
        engine.dispose()
    return None if computed == day else not_computed_for(computed, day)
