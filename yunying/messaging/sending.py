"""Whether campaign messages go to the company's real channels, or to the file outbox.

A new store starts with sending off: a company evaluating Yunying on its own data sees every
message it would send as files under the outbox folder (`.eml`, JSON lines), never in a
customer's inbox. `yunying sending enable` turns it on (kept in the store, so it holds for
every worker); the setting `sending = true|false` overrides the store either way.
Messages to staff (`test-send`, the daily report, failure alerts) are not campaign messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.messaging.channels import Channel, EmlFileChannel, JsonLinesChannel, channels_for
from yunying.store.engine import session_scope, upsert_insert, utcnow
from yunying.store.models import StoreSwitch

SWITCH = "sending"
OFF_NOTICE = (
    "SENDING IS OFF: campaign messages are written to the file outbox ({folder}), not sent"
    " to customers. Turn it on with `yunying sending enable` (or the setting `sending = true`)."
)


def sending_enabled(session: Session, settings: Settings) -> bool:
    if settings.sending is not None:
        return settings.sending
    stored = session.scalar(select(StoreSwitch.value).where(StoreSwitch.name == SWITCH))
    return bool(stored)  # no row: a new store, off


def set_sending(session: Session, on: bool) -> None:
    statement = upsert_insert(session, StoreSwitch).values(
        name=SWITCH, value=on, changed_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": statement.excluded.value, "changed_at": statement.excluded.changed_at},
        )
    )


def file_channels(settings: Settings) -> dict[str, Channel]:
    folder = settings.outbox_path
    channels: dict[str, Channel] = {
        name: JsonLinesChannel(folder, name, sending_off=True)
        for name in ("sms", "push", "webhook", "wechat")
    }
    channels["email"] = EmlFileChannel(folder, settings.mail_from, sending_off=True)
    return channels


def campaign_channels(engine: Engine, settings: Settings) -> dict[str, Channel]:
    """The configured channels when sending is on, the file outbox's when it is off."""
    with session_scope(engine) as session:
        on = sending_enabled(session, settings)
    return channels_for(settings) if on else file_channels(settings)


def off_notice(engine: Engine, settings: Settings) -> str | None:
    """The loud line a run prints when sending is off, else None."""
    with session_scope(engine) as session:
        on = sending_enabled(session, settings)
    return None if on else OFF_NOTICE.format(folder=settings.outbox_path)


def export_notice(engine: Engine, settings: Settings, channels: Sequence[str]) -> str | None:
    """While sending is on, the line naming those of `channels` with no provider configured,
    whose messages go to the file outbox as an export (counted as sent), else None."""
    with session_scope(engine) as session:
        if not sending_enabled(session, settings):
            return None
    senders = channels_for(settings)
    to_files = EmlFileChannel | JsonLinesChannel
    files = [name for name in channels if isinstance(senders[name], to_files)]
    if not files:
        return None
    return (
        f"no provider configured for {', '.join(files)}: those messages are written to the file"
        f" outbox ({settings.outbox_path}) for you to hand on, and count as sent"
    )
