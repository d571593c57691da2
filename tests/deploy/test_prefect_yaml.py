"""Every prefect.yaml entrypoint loads, with the parameters and schedules it declares."""

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS = CONFIG["deployments"]


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_entrypoint_loads_and_parameters_match(spec: dict) -> None:  # type: ignore[type-arg]
    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]))
    schema = parameter_schema(flow.fn)
    assert set(spec.get("parameters") or {}) <= set(schema.properties)
    assert spec["description"] and spec["enforce_parameter_schema"] is True
    assert "yunying" in spec["tags"]
    for schedule in spec.get("schedules") or []:
        ZoneInfo(schedule["timezone"])  # an explicit, real time zone


# `yunying run lifecycle` runs this flow, which no deployment names.
COMMAND_ONLY = ["flows/lifecycle.py:lifecycle_range"]


@pytest.mark.parametrize("entrypoint", [d["entrypoint"] for d in DEPLOYMENTS] + COMMAND_ONLY)
def test_every_flow_a_schedule_or_the_command_runs_alerts_ops(entrypoint: str) -> None:
    from flows.alerts import ALERTS

    flow = load_flow_from_entrypoint(str(ROOT / entrypoint))
    assert flow.on_failure_hooks == ALERTS
    assert flow.on_crashed_hooks == ALERTS


SCHEDULED = [d for d in DEPLOYMENTS if d.get("schedules")]


@pytest.mark.parametrize("spec", SCHEDULED, ids=[d["name"] for d in SCHEDULED])
def test_a_scheduled_run_gets_every_parameter_its_flow_requires(spec: dict) -> None:  # type: ignore[type-arg]
    # A scheduled run carries only the deployment's parameters: a required one missing from
    # them fails every run at its parameter validation.
    flow = load_flow_from_entrypoint(str(ROOT / spec["entrypoint"]))
    required = set(parameter_schema(flow.fn).required or [])
    assert required <= set(spec.get("parameters") or {}), spec["name"]


def test_nightly_runs_at_two_in_shanghai_which_is_six_pm_utc() -> None:
    # The server's own schedule code decides when runs are created.
    from prefect.server.schemas.schedules import CronSchedule

    spec = next(d for d in DEPLOYMENTS if d["name"] == "nightly")
    schedule = CronSchedule(**spec["schedules"][0])
    start = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    upcoming = sorted(schedule._get_dates_generator(n=2, start=start))
    assert [d.astimezone(dt.UTC) for d in upcoming] == [
        dt.datetime(2026, 11, 23, 18, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 24, 18, 0, tzinfo=dt.UTC),
    ]


def test_serve_script_builds_every_deployment() -> None:
    import runpy

    module = runpy.run_path(str(ROOT / "deployments" / "serve.py"), run_name="not_main")
    runners = module["deployments_of"]()
    assert [r.name for r in runners] == [d["name"] for d in DEPLOYMENTS]


def test_serve_script_refuses_a_deployment_key_it_would_drop() -> None:
    # A key serve.py does not apply (here: triggers) would be silently lost on one machine.
    import runpy

    module = runpy.run_path(str(ROOT / "deployments" / "serve.py"), run_name="not_main")
    spec = {**DEPLOYMENTS[0], "triggers": [{"expect": ["external.thing"]}]}
    with pytest.raises(ValueError, match="'nightly' sets triggers, which deployments/serve.py"):
        module["deployment_of"](spec)
