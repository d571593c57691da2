"""Who may approve a payout: the rules the flow applies to the Resume form's answer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from yunying.rewards.approval import Decision, refusal
from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.plan import PayoutPlan, PlanEntry

PLAN = PayoutPlan(
    "nov",
    [
        PlanEntry("u1", 1, Decimal(10), public_id="p1"),
        PlanEntry("u2", 2, Decimal(10), ["same device"], public_id="p2"),
    ],
    eligible=2,
)


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
    found = refusal(_campaign(**changes), Decision(True, approver), started_by, PLAN)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


def test_a_blank_name_in_approvers_is_a_file_error() -> None:
    with pytest.raises(ValidationError, match="approvers: a name is blank"):
        _campaign(approvers=["lead", " "])


@pytest.mark.parametrize(
    ("included", "expected"),
    [
        (["p2"], None),
        (["u2"], None),
        (["p1"], "include_flagged: 'p1' is no flagged winner of this plan"),
        (["deadbeef00000000"], "(its flagged winners' public ids: p2)"),
    ],
)
def test_only_a_flagged_winner_of_the_plan_can_be_included(
    included: list[str], expected: str | None
) -> None:
    found = refusal(_campaign(), Decision(True, "lead", include_flagged=included), None, PLAN)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found
