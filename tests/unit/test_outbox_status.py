"""Send outcomes and outbox statuses: one vocabulary, named in yunying/messaging/status.py."""

from typing import get_args

import pytest

from yunying.messaging.outbox import STATUSES
from yunying.messaging.status import OutboxStatus, SendOutcome, Verdict, status_after


def _outcomes() -> list[str]:
    return list(get_args(SendOutcome))


@pytest.mark.parametrize("outcome", _outcomes())
def test_every_send_outcome_but_retry_is_the_status_the_row_takes(outcome: SendOutcome) -> None:
    expected = OutboxStatus.QUEUED if outcome == "retry" else outcome
    assert status_after(outcome) == expected


def test_a_provider_verdict_is_a_send_outcome_and_deferred_is_not_a_verdict() -> None:
    assert set(get_args(Verdict)) < set(_outcomes())
    assert "deferred" in _outcomes()


def test_counts_list_every_outbox_status_as_plain_text() -> None:
    assert list(STATUSES) == [status.value for status in OutboxStatus]
    assert all(type(status) is str for status in STATUSES)
