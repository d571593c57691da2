"""Process environment for Prefect, set before Prefect is imported."""

from __future__ import annotations

import os
from pathlib import Path


def prepare_prefect(home: Path) -> None:
    # Telemetry would otherwise wait on a network that may not be there.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Prefect's local API starts in a subprocess; on a busy or small machine it needs longer
    # than Prefect's 20-second default.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # The demo's runs live beside its store, so `make ui` shows them.
    os.environ.setdefault("PREFECT_HOME", str((home / "prefect").resolve()))
