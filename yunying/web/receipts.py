"""What a provider's callback changes in the store, set-based and idempotent.

A message is found by the provider's id (`outbox.provider_ref`: Resend's email id, Twilio's
MessageSid) or by our key (the generic webhook echoes it). Delivery sets `delivered_at`;
a hard bounce or a complaint suppresses the user on that channel; a STOP/退订 reply
suppresses SMS for every user with that phone number. Nothing here sends or pays.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from sqlalchemy import and_, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from yunying.messaging.status import OutboxStatus
from yunying.store.engine import upsert_insert, utcnow
from yunying.store.models import CallbackEvent, OutboxMessage, Suppression, User

# Replies that mean "stop": Chinese carriers' T / TD / 退订 and the English keywords
# Twilio itself honours (https://help.twilio.com/articles/223134027).
STOP_WORDS = frozenset(
    {"t", "td", "退订", "stop", "stopall", "unsubscribe", "cancel", "end", "quit"}
)

Match = Literal["provider_ref", "key"]


def is_stop(text: str) -> bool:
    return text.strip().strip(".!。！").casefold() in STOP_WORDS


def first_time(session: Session, source: str, event_id: str) -> bool:
    """Record a callback event; False when it was processed before (a replay or a retry)."""
    inserted = session.execute(
        upsert_insert(session, CallbackEvent)
        .values(source=source, event_id=event_id[:200], received_at=utcnow())
        .on_conflict_do_nothing()
        .returning(CallbackEvent.event_id)
    ).first()
    return inserted is not None


def _message(match: Match, value: str) -> Any:
    column = OutboxMessage.provider_ref if match == "provider_ref" else OutboxMessage.key
    return column == value


def mark_delivered(session: Session, match: Match, value: str) -> int:
    result = session.execute(
        update(OutboxMessage)
        .where(_message(match, value), OutboxMessage.delivered_at.is_(None))
        .values(delivered_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def suppress_message_user(session: Session, match: Match, value: str, reason: str) -> int:
    """A hard bounce or complaint: the message is marked bounced and its user suppressed on
    its channel. Returns the suppressions added."""
    session.execute(
        update(OutboxMessage)
        .where(_message(match, value), OutboxMessage.status == OutboxStatus.SENT)
        .values(status=OutboxStatus.BOUNCED, reason=reason)
        .execution_options(synchronize_session=False)
    )
    rows = select(
        OutboxMessage.user_id, OutboxMessage.channel, literal(reason), literal(utcnow())
    ).where(_message(match, value), OutboxMessage.channel.is_not(None))
    table = Suppression.__table__
    added = session.execute(
        upsert_insert(session, table)
        .from_select(["user_id", "channel", "reason", "created_at"], rows)
        .on_conflict_do_nothing()
        .returning(table.c.user_id)
    )
    return len(added.all())


# Fewer digits than this say too little to find a number by.
MIN_PHONE_DIGITS = 7


def suppress_phone(session: Session, phone: str, reason: str) -> int:
    """An SMS STOP reply: every user with this number stops getting SMS. Gateways write a
    number with or without its country code, '+', spaces or a trunk 0, so the stored number
    and the sender's match when the digits of one end with those of the other (an opt-out
    errs towards suppressing)."""
    digits = re.sub(r"\D", "", phone).lstrip("0")
    if len(digits) < MIN_PHONE_DIGITS:
        return 0
    stored = func.ltrim(func.replace(User.phone, "+", ""), "0")
    same_number = or_(
        stored.like(f"%{digits}"),
        and_(func.length(stored) >= MIN_PHONE_DIGITS, literal(digits).like("%" + stored)),
    )
    rows = select(User.user_id, literal("sms"), literal(reason), literal(utcnow())).where(
        same_number
    )
    table = Suppression.__table__
    added = session.execute(
        upsert_insert(session, table)
        .from_select(["user_id", "channel", "reason", "created_at"], rows)
        .on_conflict_do_nothing()
        .returning(table.c.user_id)
    )
    return len(added.all())


def unsuppress(session: Session, user_id: str, channel: str, reasons: tuple[str, ...]) -> None:
    """Undo a recipient's own opt-out (only those `reasons`; never a bounce or complaint)."""
    session.execute(
        delete(Suppression).where(
            Suppression.user_id == user_id,
            Suppression.channel == channel,
            Suppression.reason.in_(reasons),
        )
    )
