"""Contacts masked wherever people read them (samples, reasons, logs, alerts): an email keeps
its domain, a number its last two digits, so a person can tell them apart, nobody can use them."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[^\s\"'@,{}<>()]+@")
# An international number (+ and 7 to 15 digits) or a mainland mobile: all but two digits.
_PHONE = re.compile(r"(\+\d{5,13}|(?<!\d)1[3-9]\d{7})(?=\d\d(?!\d))")


def mask_text(text: str) -> str:
    """Email addresses and phone numbers in free text (a raw line that is no JSON object, a
    reason, a provider's reply) masked."""
    return _PHONE.sub(
        lambda number: "+***" if number[0][0] == "+" else "***", _EMAIL.sub("***@", text)
    )


def mask_value(value: str) -> str:
    """A value that is a contact (an email, a phone number, a token), masked."""
    if "@" in value:
        return "***@" + value.rpartition("@")[2]
    return "***" + value[-2:] if len(value) > 4 else "***"
