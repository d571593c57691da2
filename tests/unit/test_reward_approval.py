"""Who may approve a payout: the rules the flow applies to the Resume form's answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from yunying.rewards.approval import Decision, refusal
from yunying.rewards.campaign import RewardCampaign


def _campaign(**changes: Any) -> RewardCampaign:
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    return RewardCampaign.model_validate(
        {
            "name": "nov",
            "start": start,
            "end": start + dt.timedelta(days=7),
            "budget": 100,
            "per_user_cap": 10,
            "rule": {"kind": "min_actions", "event": "checkin"},
            "reward": {"kind": "points", "amounts": [10]},
            **changes,
        }
    )


@pytest.mark.parametrize(
    ("changes", "approver", "started_by", "expected"),
    [
        ({}, "lead", None, None),
        ({}, "  ", None, "no approver was named"),
        ({"approvers": ["Lead@Ops"]}, " lead@ops ", None, None),
        ({"approvers": ["lead@ops"]}, "intern", None, "'intern' may not approve nov"),
        ({"require_second_person": True}, "bob", "alice", None),
        ({"require_second_person": True}, "ALICE", "alice", "started this run"),
        ({"require_second_person": True}, "bob", None, "who started this run is unknown"),
    ],
    ids=[
        "anyone",
        "blank",
        "listed-any-case",
        "unlisted",
        "second-person",
        "same-person",
        "starter-unknown",
    ],
)
def test_approval_rules(
    changes: dict[str, Any], approver: str, started_by: str | None, expected: str | None
) -> None:
    found = refusal(_campaign(**changes), Decision(True, approver), started_by)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


def test_a_blank_name_in_approvers_is_a_file_error() -> None:
    with pytest.raises(ValidationError, match="approvers: a name is blank"):
        _campaign(approvers=["lead", " "])
