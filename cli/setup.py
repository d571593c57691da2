"""`yunying setup`: the Prefect objects Yunying relies on across workers."""

from __future__ import annotations

from prefect.client.orchestration import get_client

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
