"""The money the per-user facts' spend (RFM monetary) is counted in: the company's currency
and the exchange rates orders in others are converted at. The pull converts as it folds
orders in; when the settings' money differs from what the facts were counted in, the next
lifecycle run recounts every user's spend from the orders, so tiers convert at today's rates
as the report and segments do."""

from __future__ import annotations

import json

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from yunying.reports.effects import Money
from yunying.sources.write.facts import spend_in
from yunying.store.engine import upsert_insert, utcnow
from yunying.store.models import StoreFact

SPEND_MONEY = "spend_money"


def recount_spend_if_money_changed(session: Session, money: Money) -> bool:
    """Recount every user's spend in `money` unless the facts are already counted in it;
    returns whether it recounted (a store's first run under this rule recounts once)."""
    key = json.dumps([money.currency, [[code, str(rate)] for code, rate in money.rates]])
    stored = session.scalar(select(StoreFact.value).where(StoreFact.name == SPEND_MONEY))
    if stored == key:
        return False
    spend = spend_in(money.currency, dict(money.rates), "o")
    session.execute(
        text(
            f"UPDATE user_facts SET revenue = COALESCE((SELECT SUM({spend}) FROM orders o"
            " WHERE o.user_id = user_facts.user_id AND o.status = 'paid'), 0)"
        )
    )
    statement = upsert_insert(session, StoreFact).values(
        name=SPEND_MONEY, value=key, recorded_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"], set_={"value": key, "recorded_at": utcnow()}
        )
    )
    return True
