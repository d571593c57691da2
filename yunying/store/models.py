"""SQLAlchemy 2.0 models of Yunying's store; one schema for SQLite and PostgreSQL.

Times are naive UTC; `day` columns are calendar dates in the company's time zone, computed
once at ingestion so that every later query compares plain dates on either database.
There are no foreign keys on purpose: events and orders may arrive before their user.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UserId = Annotated[str, mapped_column(String(64))]
Money = Annotated[Decimal, mapped_column(Numeric(14, 2))]
Key = Annotated[str, mapped_column(String(200))]
# SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = Annotated[
    int, mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: DateTime(), dt.date: Date()}


class User(Base):
    __tablename__ = "users"

    user_id: Mapped[UserId] = mapped_column(primary_key=True)
    signup_at: Mapped[dt.datetime]
    signup_day: Mapped[dt.date] = mapped_column(index=True)
    # Indexed so that segments find the few distinct zones without reading every user.
    timezone: Mapped[str] = mapped_column(String(64), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    push_token: Mapped[str | None] = mapped_column(String(255))
    email_opt_in: Mapped[bool] = mapped_column(default=True)
    sms_opt_in: Mapped[bool] = mapped_column(default=True)
    push_opt_in: Mapped[bool] = mapped_column(default=True)
    openid: Mapped[str | None] = mapped_column(String(64))  # WeChat, per official account/app
    wechat_opt_in: Mapped[bool] = mapped_column(default=False, server_default=false())
    device_hash: Mapped[str | None] = mapped_column(String(64))
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    referred_by: Mapped[str | None] = mapped_column(String(64))
    holdout_bucket: Mapped[int]  # a stable hash of user_id, 0 .. 2**31-1
    updated_at: Mapped[dt.datetime] = mapped_column(index=True)


class UserFacts(Base):
    """Per-user facts kept current at ingestion, so no later stage rescans the events."""

    __tablename__ = "user_facts"

    user_id: Mapped[UserId] = mapped_column(primary_key=True)
    last_active_at: Mapped[dt.datetime | None]
    last_active_day: Mapped[dt.date | None] = mapped_column(index=True)
    event_count: Mapped[int] = mapped_column(BigInteger, default=0)
    order_count: Mapped[int] = mapped_column(default=0)
    revenue: Mapped[Money] = mapped_column(default=Decimal(0))
    last_order_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(index=True)  # lets lifecycle skip the rest


class ActiveDay(Base):
    """One row per user per local day with an activity event: DAU/WAU/MAU and retention."""

    __tablename__ = "active_days"

    user_id: Mapped[UserId] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)

    __table_args__ = (Index("ix_active_days_day_user", "day", "user_id"),)


class Event(Base):
    __tablename__ = "events"

    event_id: Mapped[Key] = mapped_column(primary_key=True)
    user_id: Mapped[UserId]
    name: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime]
    day: Mapped[dt.date]

    # Events are read by campaign window (the reward planner). On PostgreSQL a BRIN index
    # serves that for next to nothing per insert: events arrive in about time order. No
    # b-tree on user_id: it slows every pull.
    __table_args__ = (
        Index("ix_events_occurred_at", "occurred_at", postgresql_using="brin").ddl_if(
            dialect="postgresql"
        ),
    )


class Order(Base):
    __tablename__ = "orders"

    order_id: Mapped[Key] = mapped_column(primary_key=True)
    user_id: Mapped[UserId] = mapped_column(index=True)
    amount: Mapped[Money]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    day: Mapped[dt.date] = mapped_column(index=True)
    load_id: Mapped[str] = mapped_column(String(32))  # the load that last wrote the order


class SourceWatermark(Base):
    __tablename__ = "source_watermarks"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    watermark: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime]


class SourceFile(Base):
    """A file a file source has loaded whole: a later pull skips it, whatever its name."""

    __tablename__ = "source_files"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    loaded_at: Mapped[dt.datetime]


class RejectedRecord(Base):
    """A record a source gave that did not validate, kept once per source (by `raw_hash`,
    SHA-256 of `raw`) however often it is read again."""

    __tablename__ = "rejected_records"
    __table_args__ = (
        Index("uq_rejected_records_source_raw_hash", "source", "raw_hash", unique=True),
    )

    id: Mapped[AutoId]
    source: Mapped[str] = mapped_column(String(100), index=True)
    run_id: Mapped[str] = mapped_column(String(64))
    raw: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]


class LifecycleRun(Base):
    """The business dates the lifecycle was computed for; the latest is what states show."""

    __tablename__ = "lifecycle_runs"

    business_date: Mapped[dt.date] = mapped_column(primary_key=True)
    computed_at: Mapped[dt.datetime]
    # The lifecycle settings the run used: a run under other settings recomputes every user.
    settings_fingerprint: Mapped[str | None] = mapped_column(String(64))


class StoreSwitch(Base):
    """A switch kept in the store, so it holds for every process: `sending` (off on a new
    store until the company turns it on)."""

    __tablename__ = "store_switches"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bool]
    changed_at: Mapped[dt.datetime]


class LifecycleColumns:
    """A user's lifecycle row: the stored state and the run's staged change share it."""

    user_id: Mapped[UserId] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[dt.date]
    prev_state: Mapped[str | None] = mapped_column(String(16))
    prev_since: Mapped[dt.date | None]
    recency_score: Mapped[int]
    frequency_score: Mapped[int]
    monetary_score: Mapped[int]
    tier: Mapped[str] = mapped_column(String(8))


class LifecycleState(LifecycleColumns, Base):
    """The state per user as of the latest run; `prev_*` is the state before `since`."""

    __tablename__ = "lifecycle_states"
    # No index beside the key: a run rewrites tens of thousands of rows in place, and on
    # PostgreSQL (fillfactor 80) without touching any index. Segments read the whole table.


class LifecycleCandidate(Base):
    """Working table of one lifecycle run: the users whose state can have changed."""

    __tablename__ = "lifecycle_candidates"

    user_id: Mapped[UserId] = mapped_column(primary_key=True)


class LifecycleCount(Base):
    """Users per state and tier in `lifecycle_states`, moved by each run's changes."""

    __tablename__ = "lifecycle_counts"

    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    tier: Mapped[str] = mapped_column(String(8), primary_key=True)
    users: Mapped[int]


class LifecycleScratch(LifecycleColumns, Base):
    """Working table of one lifecycle run: the users whose state or scores change."""

    __tablename__ = "lifecycle_scratch"

    old_state: Mapped[str | None] = mapped_column(String(16))  # as stored before this run
    old_tier: Mapped[str | None] = mapped_column(String(8))


class LifecycleTransition(Base):
    __tablename__ = "lifecycle_transitions"

    # Date first: a run appends its date's rows at the end of the one index.
    business_date: Mapped[dt.date] = mapped_column(primary_key=True)
    user_id: Mapped[UserId] = mapped_column(primary_key=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))


class OutboxMessage(Base):
    """One message intent per (campaign, business date, user), written before any send."""

    __tablename__ = "outbox"

    id: Mapped[AutoId]
    key: Mapped[Key] = mapped_column(unique=True)  # also the provider's idempotency key
    campaign: Mapped[str] = mapped_column(String(100))
    business_date: Mapped[dt.date]
    user_id: Mapped[UserId]
    channel: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    not_before: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None]
    # Set when the claimed message is handed to a provider that takes no idempotency key
    # (SMTP): after a crash only those are `unknown`; the rest of the batch is sent again.
    handed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]  # the provider's delivery receipt (yunying web)
    variant: Mapped[str | None] = mapped_column(String(32))  # the message variant drawn
    # The RFM tier as of the row's business date: the review slices by it, since the outcome
    # (a return, an order) raises the tier stored in lifecycle_states afterwards.
    tier: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        UniqueConstraint("campaign", "business_date", "user_id"),
        Index("ix_outbox_campaign_status", "campaign", "business_date", "status"),
        Index("ix_outbox_user_sent", "user_id", "sent_at"),
    )


class Suppression(Base):
    """Users who must not be contacted on a channel ('any' for every channel)."""

    __tablename__ = "suppressions"

    user_id: Mapped[UserId] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]


class TopicSuppression(Base):
    """Users who opted out of a topic (a campaign's category) on every channel."""

    __tablename__ = "topic_suppressions"

    user_id: Mapped[UserId] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]


class StoreFact(Base):
    """What the store's data was made with: `days_timezone`, the zone of its stored days."""

    __tablename__ = "store_facts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime]


class StoreSecret(Base):
    """Keys made once per store, so every worker and web instance signs alike."""

    __tablename__ = "store_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime]


class CallbackEvent(Base):
    """A provider callback already processed: a replay or a provider's retry is a no-op."""

    __tablename__ = "callback_events"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[dt.datetime]


class Click(Base):
    """The first click per message and link (a hash of the link, never the URL's PII)."""

    __tablename__ = "clicks"

    outbox_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    link: Mapped[str] = mapped_column(String(64), primary_key=True)
    clicked_at: Mapped[dt.datetime]


class RewardBudget(Base):
    __tablename__ = "reward_budgets"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    total: Mapped[Money]
    reserved: Mapped[Money] = mapped_column(default=Decimal(0))


class RewardLedgerEntry(Base):
    """One payout per (campaign, user, reward): reserved -> paid / failed."""

    __tablename__ = "reward_ledger"

    id: Mapped[AutoId]
    key: Mapped[Key] = mapped_column(unique=True)
    campaign: Mapped[str] = mapped_column(String(100), index=True)
    user_id: Mapped[UserId]
    reward: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Money]
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    paid_at: Mapped[dt.datetime | None]
    # Payment attempts: a failed payout is retried by later runs up to the campaign's limit.
    attempts: Mapped[int] = mapped_column(default=1, server_default="1")


class RewardDraw(Base):
    """A lottery's seed, committed (its SHA-256 published) before the draw."""

    __tablename__ = "reward_draws"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    seed: Mapped[str] = mapped_column(String(64))
    commitment: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]


class RewardApproval(Base):
    """Who decided on a payout plan, when, and the hash of the plan they saw."""

    __tablename__ = "reward_approvals"

    id: Mapped[AutoId]
    campaign: Mapped[str] = mapped_column(String(100), index=True)
    plan_hash: Mapped[str] = mapped_column(String(64))
    approved: Mapped[bool]
    approver: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[dt.datetime]
    requested_by: Mapped[str | None] = mapped_column(String(200))  # who started the run
    refusal: Mapped[str | None] = mapped_column(Text)  # why an approval was not accepted


class RewardPlan(Base):
    """A campaign's approved plan, stored once: the only thing any run may pay."""

    __tablename__ = "reward_plans"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    plan_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)  # JSON: entries, participants, included
    approver: Mapped[str] = mapped_column(String(200))
    requested_by: Mapped[str | None] = mapped_column(String(200))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[dt.datetime]


class RewardPublication(Base):
    """What was published (公示), append-only: a correction is a new version."""

    __tablename__ = "reward_publications"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # commitment | winners
    version: Mapped[int] = mapped_column(primary_key=True)
    published_at: Mapped[dt.datetime]
    digest: Mapped[str] = mapped_column(String(64))  # of the data, not of the dated page
    content: Mapped[str] = mapped_column(Text)


class PointsEntry(Base):
    """The embedded points ledger: rewards of kind `points` land here, keyed like the payout."""

    __tablename__ = "points_ledger"

    key: Mapped[Key] = mapped_column(primary_key=True)
    user_id: Mapped[UserId] = mapped_column(index=True)
    campaign: Mapped[str] = mapped_column(String(100))
    points: Mapped[Money]
    created_at: Mapped[dt.datetime]


class ReportRecord(Base):
    __tablename__ = "report_history"

    business_date: Mapped[dt.date] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    kpis: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]


class ProviderToken(Base):
    """An access token every worker shares (WeChat's is rate-limited, and fetching a new one
    ends the old one), with when it expires."""

    __tablename__ = "provider_tokens"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[dt.datetime | None]
    fetches: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[dt.datetime]


class SegmentSize(Base):
    """How many users a segment file selected on a business date, so ops see it grow or shrink."""

    __tablename__ = "segment_sizes"

    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    business_date: Mapped[dt.date] = mapped_column(primary_key=True)
    users: Mapped[int]
    computed_at: Mapped[dt.datetime]
