"""What validation yields: a store row per good record, a `Rejected` per bad one.

Rows are plain tuples in the order of their entity's columns, in the stores' text formats:
moments as UTC 'YYYY-MM-DD HH:MM:SS.ffffff', days as 'YYYY-MM-DD' in the company's time zone,
an amount as its text in cents. An entity's fields are what a raw record gives; the columns
after them are derived by the rule (an event's `day`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from yunying.errors import PermanentError

Row = dict[str, Any]

# Per entity: the fields a raw record gives, in the order the column-at-a-time path takes
# them, and the columns of its row.
EVENT_FIELDS = ("event_id", "user_id", "name", "occurred_at")
EVENT_COLUMNS = (*EVENT_FIELDS, "day")
EventRow = tuple[str, str, str, str, str]

USER_FIELDS = (
    "user_id", "signup_at", "timezone", "locale", "email", "phone", "push_token",
    "email_opt_in", "sms_opt_in", "push_opt_in", "device_hash", "ip_hash", "referred_by",
    "openid", "wechat_opt_in",
)  # fmt: skip
USER_COLUMNS = (
    "user_id", "signup_at", "signup_day", "timezone", "locale", "email", "phone", "push_token",
    "email_opt_in", "sms_opt_in", "push_opt_in", "openid", "wechat_opt_in", "device_hash",
    "ip_hash", "referred_by", "holdout_bucket", "updated_at",
)  # fmt: skip
UserRow = tuple[
    str, str, str, str, str, str | None, str | None, str | None, bool, bool, bool, str | None,
    bool, str | None, str | None, str | None, int, str,
]  # fmt: skip

ORDER_FIELDS = ("order_id", "user_id", "amount", "currency", "status", "created_at")
ORDER_COLUMNS = ("order_id", "user_id", "amount", "currency", "status", "created_at", "day")
OrderRow = tuple[str, str, str, str, str, str, str]

StoreRow = EventRow | UserRow | OrderRow


class InvalidRecord(PermanentError):
    """A source record that cannot be loaded, for what is wrong with one field; the message
    ("<field>: <why>") is stored as the reason."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field, self.why = field, why


class Rejected(NamedTuple):
    """A record set aside: its raw form (JSON, or the text that could not be read), the field
    it failed on ("csv", "json" or "file" when it is no record at all) and the reason."""

    raw: str
    field: str
    why: str

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.why}"
