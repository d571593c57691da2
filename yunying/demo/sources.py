"""How the demo points Yunying at the synthetic company's systems: the same source
declarations a user writes in yunying.toml (see README, "Point Yunying at your data")."""

from __future__ import annotations

from pathlib import Path

from yunying.sources.config import HttpSource, SourceConfig, SqlSource

USER_MAPPING = {
    "user_id": "id",
    "signup_at": "created",
    "timezone": "tz",
    "locale": "lang",
    "email_opt_in": "email_ok",
    "sms_opt_in": "sms_ok",
    "push_opt_in": "push_ok",
    "device_hash": "device",
    "ip_hash": "ip",
}
ORDER_MAPPING = {"order_id": "order_no", "user_id": "uid", "created_at": "paid_at"}
EVENT_MAPPING = {"event_id": "event_uuid", "user_id": "uid", "name": "type", "occurred_at": "ts"}


def demo_sources(source_db: Path, http_url: str | None) -> list[SourceConfig]:
    """Users and orders from the app database; events from its HTTP API (or the database)."""
    url = f"sqlite:///{source_db}"
    events: SourceConfig = (
        HttpSource(
            name="app-events", entity="events", url=f"{http_url}/events", mapping=EVENT_MAPPING
        )
        if http_url
        else SqlSource(
            name="app-events",
            entity="events",
            url=url,
            table="src_events",
            incremental_column="seq",
            mapping=EVENT_MAPPING,
        )
    )
    return [
        SqlSource(
            name="app-users",
            entity="users",
            url=url,
            table="src_users",
            incremental_column="updated_seq",
            mapping=USER_MAPPING,
        ),
        SqlSource(
            name="app-orders",
            entity="orders",
            url=url,
            table="src_orders",
            incremental_column="updated_seq",
            mapping=ORDER_MAPPING,
        ),
        events,
    ]
