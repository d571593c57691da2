"""Signed links a recipient follows: unsubscribe / preferences and tracked clicks.

A token is base64url(JSON [purpose, ...fields]) + "." + a 16-byte HMAC-SHA256 tag under the
store's key. The purpose is signed with the fields, so a click token never opens a
preference page. The key is made once per store and kept in it (`store_secrets`), so every
worker and every `yunying web` instance signs and verifies alike; `unsubscribe_secret`
overrides it. Tokens carry opaque ids only: no address ever appears in a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from html import unescape
from typing import Any, NamedTuple

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.errors import PermanentError
from yunying.store.engine import create_store_engine, session_scope, upsert_insert, utcnow
from yunying.store.models import StoreSecret, Suppression, TopicSuppression, User

KEY_NAME = "unsubscribe"
# Tokens without a topic (and links sent before topics existed) act on the whole channel.
ANY_TOPIC = ""

_KEYS: dict[str, bytes] = {}  # per store URL: the key never changes once made


class InvalidToken(PermanentError):
    """The token was altered, signed with another key, or names no known user."""


class Recipient(NamedTuple):
    user_id: str
    channel: str
    topic: str = ANY_TOPIC


def store_key(session: Session, adopt: bytes | None = None) -> bytes:
    """The store's signing key, made on first use; `adopt` seeds it (an older machine's key,
    so links it already sent keep working). Concurrent first uses agree: one insert wins."""
    value = (adopt or secrets.token_hex(32).encode()).decode()
    session.execute(
        upsert_insert(session, StoreSecret)
        .values(name=KEY_NAME, value=value, created_at=utcnow())
        .on_conflict_do_nothing()
    )
    stored = session.scalar(select(StoreSecret.value).where(StoreSecret.name == KEY_NAME))
    if stored is None:  # pragma: no cover - the insert above guarantees a row
        raise PermanentError("the store holds no unsubscribe key")
    return stored.encode()


def unsubscribe_key(settings: Settings) -> bytes:
    """`unsubscribe_secret` when set, else the store's own key (cached per store URL)."""
    if settings.unsubscribe_secret:
        return settings.unsubscribe_secret.get_secret_value().encode()
    cached = _KEYS.get(settings.store_url)
    if cached is None:
        legacy = settings.home / "secret.key"  # where keys lived before the store kept one
        adopt = legacy.read_text().strip().encode() if legacy.is_file() else None
        engine = create_store_engine(settings.store_url)
        try:
            with session_scope(engine) as session:
                cached = store_key(session, adopt)
        finally:
            engine.dispose()
        _KEYS[settings.store_url] = cached
    return cached


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, purpose: str, *fields: Any) -> str:
    payload = _b64(json.dumps([purpose, *fields], separators=(",", ":")).encode())
    tag = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return f"{payload}.{_b64(tag)}"


def unsign(key: bytes, purpose: str, token: str) -> list[Any]:
    """The fields of a token signed for `purpose`; InvalidToken otherwise."""
    payload, _, tag = token.partition(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    try:
        given = _unb64(tag)
        decoded = _unb64(payload).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("the token is malformed") from None
    if not hmac.compare_digest(given, expected):
        raise InvalidToken("the token's signature does not match")
    if not decoded.startswith("["):
        if purpose != "unsubscribe":
            raise InvalidToken("the token is not for this link")
        user_id, _, channel = decoded.rpartition(":")  # links sent before topics existed
        return [user_id, channel, ANY_TOPIC]
    fields = json.loads(decoded)
    if not isinstance(fields, list) or not fields or fields[0] != purpose:
        raise InvalidToken("the token is not for this link")
    return fields[1:]


def make_token(key: bytes, user_id: str, channel: str, topic: str = ANY_TOPIC) -> str:
    return sign(key, "unsubscribe", user_id, channel, topic)


def verify_token(key: bytes, token: str) -> Recipient:
    """The recipient a token names, signature checked (not yet that the user exists)."""
    fields = unsign(key, "unsubscribe", token)
    if len(fields) != 3 or not all(isinstance(field, str) for field in fields):
        raise InvalidToken("the token is malformed")
    return Recipient(*fields)


def known_recipient(session: Session, key: bytes, token: str) -> Recipient:
    """`verify_token`, and the user must exist: a validly signed token for a user the store
    does not know (deleted, or a key leaked) changes nothing."""
    recipient = verify_token(key, token)
    if session.get(User, recipient.user_id) is None:
        raise InvalidToken("the token names no known user")
    return recipient


def suppress(session: Session, user_id: str, channel: str, reason: str) -> None:
    """Idempotent, and safe when two requests for one user race (one insert wins)."""
    session.execute(
        upsert_insert(session, Suppression)
        .values(user_id=user_id, channel=channel, reason=reason, created_at=utcnow())
        .on_conflict_do_nothing()
    )


def unsubscribe_known(session: Session, recipient: Recipient, reason: str) -> None:
    """Suppress the recipient's channel in one statement (INSERT … SELECT from users), so a
    user the store does not know adds nothing; InvalidToken then. Repeats are no-ops."""
    rows = select(
        User.user_id, literal(recipient.channel), literal(reason), literal(utcnow())
    ).where(User.user_id == recipient.user_id)
    inserted = session.execute(
        upsert_insert(session, Suppression)
        .from_select(["user_id", "channel", "reason", "created_at"], rows)
        .on_conflict_do_nothing()
        .returning(Suppression.user_id)
    ).first()
    if inserted is None and session.get(User, recipient.user_id) is None:
        raise InvalidToken("the token names no known user")


def suppress_topic(session: Session, user_id: str, topic: str, reason: str) -> None:
    session.execute(
        upsert_insert(session, TopicSuppression)
        .values(user_id=user_id, topic=topic, reason=reason, created_at=utcnow())
        .on_conflict_do_nothing()
    )


# Absolute http(s) links in href attributes; unsubscribe and preference links stay direct
# (a recipient leaving must never depend on the tracker).
_HREF = re.compile(r"""href=(["'])(https?://[^"'\s>]+)\1""", re.IGNORECASE)


def link_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def track_links(html: str, key: bytes, public_url: str, outbox_id: int) -> str:
    """Rewrite a message's links to signed redirects through `{public_url}/c/<token>`; the
    token names the outbox row and the link, never the recipient."""

    def rewrite(match: re.Match[str]) -> str:
        quote, url = match.group(1), unescape(match.group(2))
        if url.startswith(public_url + "/unsubscribe") or url.startswith(
            public_url + "/preferences"
        ):
            return match.group(0)
        return f"href={quote}{public_url}/c/{sign(key, 'click', outbox_id, url)}{quote}"

    return _HREF.sub(rewrite, html)


def verify_click(key: bytes, token: str) -> tuple[int, str]:
    fields = unsign(key, "click", token)
    if len(fields) != 2 or not isinstance(fields[0], int) or not isinstance(fields[1], str):
        raise InvalidToken("the token is malformed")
    if not fields[1].startswith(("http://", "https://")):
        raise InvalidToken("the link is not a web address")
    return fields[0], fields[1]
