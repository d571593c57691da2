"""Contacts in free text are masked; dates, amounts and ids are left as they are."""

import pytest

from yunying.masking import mask_text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("550 5.1.1 <bob@example.com>: unknown", "550 5.1.1 <***@example.com>: unknown"),
        ("The 'To' number +15551234567 is invalid", "The 'To' number +***67 is invalid"),
        ("手机号 13812345678 无效", "手机号 ***78 无效"),
        ("on 2026-11-22 order 12345678 of 99.50", "on 2026-11-22 order 12345678 of 99.50"),
    ],
)
def test_contacts_in_text_are_masked(text: str, shown: str) -> None:
    assert mask_text(text) == shown
