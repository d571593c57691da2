"""Outbox statuses and send outcomes, named once (how a row moves between them: outbox.py).

`OutboxStatus` is what an outbox row's `status` column holds; queries compare with its
members. A channel answers each message with a `SendOutcome`: a status the row takes as is,
or `retry`, which puts the row back in the queue.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import ColumnElement, SQLColumnExpression, func, or_


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    DEFERRED = "deferred"  # by quiet hours; sent when due
    EXPIRED = "expired"  # deferred past the campaign's valid_hours
    UNKNOWN = "unknown"  # a crash hid the outcome on a channel that cannot reconcile
    HOLDOUT = "holdout"  # eligible, kept out on purpose to measure uplift
    SUPPRESSED = "suppressed"  # not eligible


# What the file outbox's channels record as a message's provider_ref (`<key>.eml`,
# `sms.jsonl`): a row so marked was written to a file, never handed to a provider.
FILE_OUTBOX_SUFFIXES = (".eml", ".jsonl")


# Begins the provider_ref of a message written to a file because sending was off: an
# evaluation's message, which reached no one (a file for a channel with no provider is the
# company's export, handed on).
SENDING_OFF_REF = "sending-off/"


def written_to_file(provider_ref: SQLColumnExpression[Any]) -> ColumnElement[bool]:
    """Whether a row's `provider_ref` says the file outbox wrote it."""
    ref = func.coalesce(provider_ref, "")
    return or_(*(ref.like(f"%{end}") for end in FILE_OUTBOX_SUFFIXES))


def written_while_sending_off(provider_ref: SQLColumnExpression[Any]) -> ColumnElement[bool]:
    return func.coalesce(provider_ref, "").like(f"{SENDING_OFF_REF}%")


# What a provider says of one message; `unknown` when the connection failed while a provider
# that takes no idempotency key may have taken it (never resent).
Verdict = Literal["sent", "retry", "failed", "bounced", "unknown"]
# What a send records for one message: a provider's verdict, or deferred by quiet hours.
SendOutcome = Literal[Verdict, "deferred"]


def status_after(outcome: SendOutcome) -> OutboxStatus:
    """The status a claimed row takes for a send outcome."""
    return OutboxStatus.QUEUED if outcome == "retry" else OutboxStatus(outcome)


class Suppressed(StrEnum):
    """Why the plan suppressed a row (its `reason`), named once: reports translate these."""

    UNREACHABLE = "opted out or unreachable on every channel"
    TOPIC_OFF = "turned this campaign's topic off"
    TAKEN_TONIGHT = "another campaign has this user tonight"
    PENDING = "an earlier message of this campaign is still pending"


HOLDOUT_REASON = "holdout group"


def contacted_within(days: int) -> str:
    """The frequency cap's reason: a sent or held-out message within `days` days."""
    return f"contacted within {days} days"


CONTACTED_PATTERN = r"contacted within (\d+) days"
