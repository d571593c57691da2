"""One rule for an id repeated inside a batch, for users, orders and events alike: the last
record wins. Across pulls, users and orders are updated and an event is never changed."""

from __future__ import annotations

from sqlalchemy import Engine, select

from yunying.config import Settings
from yunying.sources.load import load_events, load_rows, validate
from yunying.sources.write.text import events_text
from yunying.store.engine import session_scope
from yunying.store.models import Event, Order, User


def test_the_last_record_of_a_repeated_id_in_a_batch_wins(
    engine: Engine, settings: Settings
) -> None:
    users, _ = validate(
        "users",
        [
            {"user_id": "u1", "signup_at": "2026-01-01T00:00:00Z", "locale": "zh-CN"},
            {"user_id": "u1", "signup_at": "2026-01-01T00:00:00Z", "locale": "en"},
        ],
        {},
        settings.zone,
    )
    orders, _ = validate(
        "orders",
        [
            {"order_id": "o1", "user_id": "u1", "amount": "1", "created_at": "2026-10-01T00:00Z"},
            {"order_id": "o1", "user_id": "u1", "amount": "2", "created_at": "2026-10-01T00:00Z"},
        ],
        {},
        settings.zone,
    )
    events, _ = validate(
        "events",
        [
            {
                "event_id": "e1",
                "user_id": "u1",
                "name": "first",
                "occurred_at": "2026-10-01T01:00Z",
            },
            {"event_id": "e1", "user_id": "u1", "name": "last", "occurred_at": "2026-10-01T01:00Z"},
        ],
        {},
        settings.zone,
    )
    with session_scope(engine) as session:
        postgres = engine.dialect.name == "postgresql"
        assert load_rows(session, "users", users, "l1") == (1, 0)
        assert load_rows(session, "orders", orders, "l2") == (1, 0)
        assert load_events(session, events_text(events, postgres), ()) == 1
    with session_scope(engine) as session:
        assert session.scalar(select(User.locale)) == "en"
        assert str(session.scalar(select(Order.amount))) == "2.00"
        assert session.scalar(select(Event.name)) == "last"
    # A later batch: the user and the order change, the stored event does not.
    later, _ = validate(
        "events",
        [{"event_id": "e1", "user_id": "u1", "name": "again", "occurred_at": "2026-10-01T01:00Z"}],
        {},
        settings.zone,
    )
    with session_scope(engine) as session:
        assert load_events(session, events_text(later, postgres), ()) == 0
        assert session.scalar(select(Event.name)) == "last"


def test_an_item_that_is_no_json_object_is_rejected_saying_so(settings: Settings) -> None:
    """An API's `items` may hold a string or a number among the objects: each is set aside
    as what it is, not as a record missing its fields."""
    good = {"order_id": "o1", "user_id": "u1", "amount": "5", "created_at": "2026-11-01T00:00Z"}
    rows, rejects = validate("orders", ["not an object", 7, good], {}, settings.zone)
    assert len(rows) == 1
    assert [(r.raw, r.field, r.reason) for r in rejects] == [
        ('"not an object"', "json", "json: not a JSON object"),
        ("7", "json", "json: not a JSON object"),
    ]
