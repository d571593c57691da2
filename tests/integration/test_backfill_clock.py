"""What the README says of `run nightly --date <past date>`: sends are stamped with the real
clock, and the frequency cap counts every send from the cap's start up to now."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select

from tests.builders import DAY, silent_users
from tests.integration.test_outbox import campaign
from yunying.config import Settings
from yunying.lifecycle.holdout import in_holdout
from yunying.messaging.outbox import plan
from yunying.sources.validate.rules import holdout_bucket
from yunying.store.engine import session_scope, utcnow
from yunying.store.models import OutboxMessage


def test_a_send_stamped_now_caps_a_backfilled_earlier_date(
    engine: Engine, settings: Settings
) -> None:
    users = silent_users(engine, settings, 50)
    contacted, plain = [u for u in users if not in_holdout(holdout_bucket(u), "winback", 10)][:2]
    with session_scope(engine) as session:  # sent today, weeks after DAY, by another backfill
        session.add(
            OutboxMessage(
                key="later:1",
                campaign="later",
                business_date=DAY + dt.timedelta(days=20),
                user_id=contacted,
                channel="email",
                status="sent",
                created_at=utcnow(),
                sent_at=utcnow(),
            )
        )
    with session_scope(engine) as session:
        plan(session, campaign(channels=["email"]), DAY)
        rows = {
            r.user_id: r
            for r in session.scalars(
                select(OutboxMessage).where(OutboxMessage.campaign == "winback")
            )
        }
    assert (rows[contacted].status, rows[contacted].reason) == (
        "suppressed",
        "contacted within 7 days",
    )
    assert rows[plain].status == "queued"
