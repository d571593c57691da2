"""What every handler of `yunying web` shares: settings, the store, the signing key, pages.

Nothing here holds per-user state: every instance reads and writes only the store, so
several can run behind one proxy.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from yunying import templates
from yunying.config import Settings
from yunying.messaging.unsubscribe import unsubscribe_key

TEMPLATES = templates.TEMPLATES / "web"
T = TypeVar("T")

log = logging.getLogger("yunying.web")


def campaign_topics(campaign_dir: Path) -> list[str]:
    """The topics the campaign files name (the preference page lists each once)."""
    topics = {"general"}
    for path in sorted(campaign_dir.glob("*.toml")):
        try:
            topic = tomllib.loads(path.read_text(encoding="utf-8")).get("topic", "general")
        except (OSError, tomllib.TOMLDecodeError):
            continue  # a broken file is reported when its campaign runs, not here
        if isinstance(topic, str):
            topics.add(topic)
    return sorted(topics)


@dataclass
class Web:
    settings: Settings
    engine: Engine
    pages: Environment = field(default_factory=templates.web_pages)
    topics: list[str] = field(default_factory=list)
    _key: bytes | None = None

    def __post_init__(self) -> None:
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def key(self) -> bytes:
        # Read on first use, not at start-up: the service starts even while the store is
        # restarting, and answers 503 until it is back.
        if self._key is None:
            self._key = unsubscribe_key(self.settings)
        return self._key

    def render(self, name: str, **context: Any) -> str:
        return self.pages.get_template(name).render(**context)

    async def in_store(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction on a worker thread (the driver blocks)."""

        def run() -> T:
            with self.sessions.begin() as session:
                return work(session)

        return await run_in_threadpool(run)

    async def signing_key(self) -> bytes:
        if self._key is not None:  # no thread hop once known
            return self._key
        return await run_in_threadpool(self.key)
