"""Run every deployment of prefect.yaml on one machine, without a work pool or worker.

    make serve            (or: python deployments/serve.py)

Each deployment is served with everything prefect.yaml says of it: all its schedules (with
their time zones, parameters, slugs and `active` flags), its concurrency limit, parameters,
tags, description, version and `enforce_parameter_schema`. Schedules are read by the code
`prefect deploy` reads them with, so a cron means the same here as under a worker (a cron
without its time zone would run in UTC: the nightly chain at 10:00 Shanghai, not 02:00).
A deployment key this script cannot apply stops it at start-up rather than being dropped.

Schedules stay active when this process stops, so a restart picks up where it left off.
A run whose process is killed (or whose machine is lost) is marked Crashed once its
heartbeats stop: serving (re)creates the automation that does it (cli/setup.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint

from cli.setup import ensure_zombie_automation

ROOT = Path(__file__).resolve().parents[1]

# Keys of a prefect.yaml deployment that serving applies, and those that only matter to a
# worker (where and how a work pool runs the flow): this process runs every flow itself.
APPLIED = {
    "name", "entrypoint", "description", "tags", "parameters", "schedules",
    "concurrency_limit", "enforce_parameter_schema", "version",
}  # fmt: skip
WORKER_ONLY = {"work_pool", "build", "push", "pull", "job_variables"}


def deployments_of(config_path: Path = ROOT / "prefect.yaml") -> list[RunnerDeployment]:
    config = yaml.safe_load(config_path.read_text())
    return [deployment_of(spec) for spec in config["deployments"]]


def deployment_of(spec: dict[str, Any]) -> RunnerDeployment:
    unknown = set(spec) - APPLIED - WORKER_ONLY
    if unknown:
        raise ValueError(
            f"prefect.yaml deployment {spec.get('name')!r} sets {', '.join(sorted(unknown))},"
            " which deployments/serve.py does not apply: use a work pool (prefect deploy)"
            " or teach serve.py the key"
        )
    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]))
    limit = spec.get("concurrency_limit")
    return flow.to_deployment(
        name=spec["name"],
        description=spec.get("description"),
        tags=spec.get("tags"),
        version=spec.get("version"),
        parameters=spec.get("parameters") or {},
        schedules=[
            # The same translation `prefect deploy` makes of each entry (prefect 3.8).
            DeploymentScheduleCreate(**_schedule_config_to_deployment_schedule(schedule))
            for schedule in spec.get("schedules") or []
        ],
        concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
        enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
    )


if __name__ == "__main__":
    print(ensure_zombie_automation())
    serve(*deployments_of(), pause_on_shutdown=False)
