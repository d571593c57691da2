"""Run every schedule of prefect.yaml on one machine, without a work pool or worker.

    make serve            (or: python deployments/serve.py)

Schedules stay active when this process stops, so a restart picks up where it left off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[1]


def deployments_of(config_path: Path = ROOT / "prefect.yaml") -> list[Any]:
    config = yaml.safe_load(config_path.read_text())
    runners = []
    for spec in config["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]))
        schedule = (spec.get("schedules") or [{}])[0]
        runners.append(
            flow.to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=spec.get("parameters") or {},
                cron=schedule.get("cron"),
                enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
            )
        )
    return runners


if __name__ == "__main__":
    serve(*deployments_of(), pause_on_shutdown=False)
