"""Reactivation uplift end to end: the holdout is drawn among users who would have been sent,
and the report compares assigned-to-send against held out (intent to treat), per campaign."""

import datetime as dt

from sqlalchemy import Engine, select, update

from tests.builders import DAY, load_records, silent_users
from yunying.config import Settings
from yunying.messaging.campaign import Campaign
from yunying.messaging.outbox import plan
from yunying.reports.kpis import compute_kpis
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage, User


def _campaign(name: str) -> Campaign:
    return Campaign.model_validate(
        {
            "name": name,
            "segment": ["silent"],
            "channels": ["email"],
            "template": "winback",
            "holdout_percent": 10,
            "frequency_cap_days": 0,
            # Both campaigns plan the same users the same night, on purpose.
            "cross_campaign_cap": False,
        }
    )


def test_unreachable_users_are_in_neither_arm_and_uplift_is_intent_to_treat(
    engine: Engine, settings: Settings
) -> None:
    users = silent_users(engine, settings, 600)
    unreachable, reachable = users[:400], users[400:]
    with session_scope(engine) as session:
        session.execute(update(User).where(User.user_id.in_(unreachable)).values(email=None))
        first = plan(session, _campaign("winback"), DAY)
        second = plan(session, _campaign("winback-b"), DAY)
        rows = {(m.campaign, m.user_id): m.status for m in session.scalars(select(OutboxMessage))}
    # 400 unreachable users give no holdout (they were 56 holdout and 0 queued before)
    assert {rows[("winback", u)] for u in unreachable} == {"suppressed"}
    assert first["suppressed"] == second["suppressed"] == 400
    assert first["holdout"] + first["queued"] == 200 and first["holdout"] > 0

    # What became of each send does not move a user between arms: one failed, one sent,
    # the rest still queued are all "assigned".
    assigned = sorted(u for u in reachable if rows[("winback", u)] == "queued")
    held = [u for u in reachable if rows[("winback", u)] == "holdout"]
    with session_scope(engine) as session:
        for user, status in ((assigned[0], "failed"), (assigned[1], "sent")):
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.campaign == "winback", OutboxMessage.user_id == user)
                .values(status=status)
            )
    back = assigned[: len(assigned) // 2] + held[:1]  # half the assigned, one held out
    events = [
        {
            "event_id": f"back-{u}",
            "user_id": u,
            "name": "app_open",
            "occurred_at": f"{DAY + dt.timedelta(days=2)}T04:00:00Z",
        }
        for u in back
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "events", events)
        uplifts = compute_kpis(session, DAY + dt.timedelta(days=7), settings.zone).uplifts
    by_campaign = {u.campaign: u for u in uplifts}
    assert set(by_campaign) == {"winback", "winback-b"}  # one row per campaign
    winback = by_campaign["winback"]
    assert (winback.assigned, winback.holdout, winback.sent) == (len(assigned), len(held), 1)
    assert winback.assigned_reactivated == len(assigned) // 2
    assert winback.holdout_reactivated == 1
    assert winback.uplift == (len(assigned) // 2) / len(assigned) - 1 / len(held)
