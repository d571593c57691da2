"""What to say when the store cannot be reached: one line naming the setting, not a traceback."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from yunying.config import Settings
from yunying.store.engine import create_store_engine


def unreachable_store(settings: Settings) -> str | None:
    """None when the store answers (the error was something else), else the line to print,
    with the URL's password masked."""
    engine = create_store_engine(settings.store_url)
    try:
        with engine.connect():
            return None
    except sa.exc.DBAPIError as exc:
        cause = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
    finally:
        engine.dispose()
    url = make_url(settings.store_url).render_as_string(hide_password=True)
    setting = "database_url" if settings.database_url else "home (no database_url)"
    return f"cannot reach the store at {url} (setting {setting}): {cause}"
