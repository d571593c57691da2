"""`yunying setup` (and `make serve`): the Prefect objects Yunying relies on across workers."""

from __future__ import annotations

import datetime as dt

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.settings import get_current_settings

from yunying.config import Settings


def create_rate_limits(settings: Settings) -> list[str]:
    """One Prefect rate limit per paced channel: `provider-<channel>`, N slots decaying at N/s."""
    created = []
    with get_client(sync_client=True) as client:
        for channel, per_second in sorted(settings.providers.rate_limits.items()):
            name = f"provider-{channel}"
            client.upsert_global_concurrency_limit_by_name(
                name, limit=per_second, slot_decay_per_second=float(per_second)
            )
            created.append(f"{name}: {per_second}/s")
    return created


# Prefect 3 marks a run Crashed when its process is killed only if an automation says so:
# https://docs.prefect.io/v3/advanced/detect-zombie-flows
ZOMBIE_AUTOMATION = "yunying: crash runs that stopped reporting"


def ensure_zombie_automation() -> str:
    """The automation marking a flow run Crashed once its heartbeats stop (its machine lost,
    its process killed) for three heartbeat periods, instead of Running for ever. Made again
    on each call, so a changed `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` takes effect."""
    every = get_current_settings().flows.heartbeat_frequency or 180
    with get_client(sync_client=True) as client:
        for old in client.read_automations_by_name(ZOMBIE_AUTOMATION):
            client.delete_automation(old.id)
    finished = ("Completed", "Failed", "Cancelled", "Crashed")
    Automation(
        name=ZOMBIE_AUTOMATION,
        description="Marks a flow run Crashed when its heartbeats stop (deployments/serve.py).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in finished)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=dt.timedelta(seconds=3 * every),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {3 * every} s: its process was lost or killed",
            )
        ],
    ).create()
    return f"{ZOMBIE_AUTOMATION}: after {3 * every} s without a heartbeat"
