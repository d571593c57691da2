"""The demo's customers answering its campaigns: a message brings some recipients back.

The synthetic company (company.py) is generated before any campaign exists, so on its own every
campaign's uplift would be noise around zero. After the demo sends its campaigns, each user
whose message was sent comes back within the next five days with the chance its template earns
(RESPONSE), and some of those who come back order (ORDER_SHARE); held-out users get no message
and so no answer. The gift message is planted to work better than the news one, so the demo's
variant test has a true answer for the review to find. Answers are written to the company's own
app database, like any other activity, for the next pull to bring in.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from yunying.messaging.campaign import Campaign
from yunying.messaging.status import OutboxStatus
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage, User

# The chance that a recipient comes back because of the message, by template.
RESPONSE = {"winback": 0.05, "winback_gift": 0.25}
ORDER_SHARE = 0.3  # of those who come back, the share who also order
LATEST_DAY = 5  # answers fall on days 1..5 after the send, inside any 7-day window


@dataclass(frozen=True)
class Answers:
    recipients: int
    returned: int
    orders: int


def template_of(campaign: Campaign, variant: str | None) -> str:
    by_name = {v.name: v.template for v in campaign.variants}
    return by_name.get(variant or "", campaign.template)


def answer_campaigns(
    engine: Engine, source_db: Path, campaigns: list[Campaign], day: dt.date, seed: int
) -> Answers:
    """Write the answers to the messages the campaigns sent on `day` into the source database."""
    by_name = {c.name: c for c in campaigns}
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                OutboxMessage.campaign, OutboxMessage.user_id, OutboxMessage.variant, User.timezone
            )
            .join(User, User.user_id == OutboxMessage.user_id)
            .where(
                OutboxMessage.campaign.in_(by_name),
                OutboxMessage.business_date == day,
                OutboxMessage.status == OutboxStatus.SENT,
            )
            .order_by(OutboxMessage.campaign, OutboxMessage.user_id)
        ).all()
    events: list[tuple[str, str, str, str]] = []
    orders: list[tuple[str, str, str, str, str, str]] = []
    returned = 0
    for campaign, user_id, variant, zone in rows:
        rng = random.Random(f"{seed}:{campaign}:{user_id}")
        if rng.random() >= RESPONSE.get(template_of(by_name[campaign], variant), 0.0):
            continue
        returned += 1
        local = dt.datetime.combine(day + dt.timedelta(days=rng.randint(1, LATEST_DAY)), dt.time(9))
        moment = local.replace(tzinfo=ZoneInfo(zone or "UTC")) + dt.timedelta(
            seconds=rng.randrange(12 * 3600)
        )
        names = ["app_open", "view_item"]
        if rng.random() < ORDER_SHARE:
            names.append("purchase")
            amount = round(math.exp(rng.gauss(4.0, 0.8)), 2)  # as company.py draws orders
            paid_at = _iso(moment, 60 * len(names))  # the purchase event's moment
            orders.append((f"{user_id}-{campaign}", user_id, str(amount), "CNY", "paid", paid_at))
        for index, name in enumerate(names):
            key = f"{user_id}-{campaign}-{index}"
            events.append((key, user_id, name, _iso(moment, 60 * (index + 1))))
    with sqlite3.connect(source_db) as connection:
        next_seq = connection.execute("SELECT COALESCE(MAX(updated_seq), -1) + 1 FROM src_orders")
        first = int(next_seq.fetchone()[0])
        connection.executemany(
            "INSERT INTO src_events (event_uuid, uid, type, ts) VALUES (?,?,?,?)", events
        )
        connection.executemany(
            "INSERT INTO src_orders VALUES (?,?,?,?,?,?,?)",
            [(*order, first + i) for i, order in enumerate(orders)],
        )
    connection.close()
    return Answers(recipients=len(rows), returned=returned, orders=len(orders))


def _iso(moment: dt.datetime, after_seconds: int) -> str:
    return (moment + dt.timedelta(seconds=after_seconds)).astimezone(dt.UTC).isoformat()
