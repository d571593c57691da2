"""`yunying init`'s optional user fields: the ones a source holds under Yunying's own names,
the ones offered in a terminal (contacts, consent, time zone, locale), and the warning for a
channel with a contact but no consent column, on which nobody will get marketing messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from yunying.sources.config import FIELDS, Entity
from yunying.sources.mapping import REQUIRED

# channel, the field that reaches a person on it, the field recording their consent to it
CHANNELS = (
    ("email", "email", "email_opt_in"),
    ("sms", "phone", "sms_opt_in"),
    ("push", "push_token", "push_opt_in"),
    ("wechat", "openid", "wechat_opt_in"),
)
# what `consent.assume_opt_in_when_missing` does not cover
ALWAYS_ASKS_CONSENT = ("wechat_opt_in",)


def by_name(entity: Entity, mapping: Mapping[str, str], columns: Sequence[str]) -> list[str]:
    """The optional fields read from a column of their own name (no mapping needed)."""
    optional = [field for field in FIELDS[entity] if field not in REQUIRED[entity]]
    return [field for field in optional if field not in mapping and field in columns]


def offer_optional(
    table: str,
    mapping: dict[str, str],
    columns: Sequence[str],
    ask: Callable[[str, str], str],
) -> None:
    """Asks for the column of each user contact, then the consent of each channel with a
    contact, then time zone and locale, unless a column of that name exists; empty skips."""
    contacts = [contact for _, contact, _ in CHANNELS]
    for field in contacts:
        _offer(field, table, mapping, columns, ask)
    for _, contact, consent in CHANNELS:
        if _column(mapping, contact, columns):
            _offer(consent, table, mapping, columns, ask)
    for field in ("timezone", "locale"):
        _offer(field, table, mapping, columns, ask)


def _offer(
    field: str,
    table: str,
    mapping: dict[str, str],
    columns: Sequence[str],
    ask: Callable[[str, str], str],
) -> None:
    if _column(mapping, field, columns):
        return
    question = f"Column of users.{field} in {table}, optional (empty: none; {', '.join(columns)})"
    answer = ask(question, "")
    while answer and answer not in columns:
        print(f"  {table} has no column {answer!r}")
        answer = ask(question, "")
    if answer:
        mapping[field] = answer


def _column(mapping: Mapping[str, str], field: str, columns: Sequence[str]) -> str | None:
    column = mapping.get(field, field)
    return column if column in columns else None


def consent_warnings(
    mapping: Mapping[str, str], columns: Sequence[str], assume_opt_in: bool
) -> list[str]:
    """One warning per channel whose contact is mapped and whose consent is not (a missing
    flag is no consent), and one when no contact is mapped at all."""
    if not columns:
        return []  # nothing read: nothing known
    warnings = []
    reachable = False
    for channel, contact, consent in CHANNELS:
        if not _column(mapping, contact, columns):
            continue
        reachable = True
        if _column(mapping, consent, columns):
            continue
        if assume_opt_in and consent not in ALWAYS_ASKS_CONSENT:
            continue
        warnings.append(
            f"WARNING: {contact} is mapped but no consent column ({consent}) is: nobody will"
            f" get marketing messages by {channel}. Map the column recording it:"
            f" --map users.{consent}=<column> (in yunying.toml: mapping = {{ {consent} ="
            ' "<column>" }).'
        )
    if not reachable:
        contacts = ", ".join(contact for _, contact, _ in CHANNELS)
        warnings.append(
            f"WARNING: no contact column ({contacts}) is mapped: nobody can be reached. Map"
            " one: --map users.email=<column>."
        )
    return warnings


def status_warning(mapping: Mapping[str, str], columns: Sequence[str]) -> list[str]:
    """The warning for orders without a status column: every order then counts as paid,
    refunds and cancellations in the revenue too. Names the columns that look like one."""
    if not columns or _column(mapping, "status", columns):
        return []
    likely = [c for c in columns if any(word in c.lower() for word in ("status", "state"))]
    hint = f" (perhaps {', '.join(likely)})" if likely else ""
    return [
        "WARNING: no status column is mapped: every order counts as paid, refunds and"
        f" cancellations too, in revenue and paying users. Map the one{hint} whose values"
        " are paid, refunded or cancelled: --map orders.status=<column>."
    ]
