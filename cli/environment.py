"""Process environment for Prefect, set before Prefect is imported."""

from __future__ import annotations

import os
from pathlib import Path


def prepare_prefect(home: Path) -> None:
    # Telemetry would otherwise wait on a network that may not be there.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The demo's runs live beside its store, so `make ui` shows them.
    os.environ.setdefault("PREFECT_HOME", str((home / "prefect").resolve()))
