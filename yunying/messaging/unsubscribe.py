"""Signed links a recipient follows: unsubscribe / preferences and tracked clicks.

A token is JSON [purpose, ...fields] sealed with AES-GCM under a key derived from the
store's key: nobody can read or change it, and the purpose is sealed with the fields, so a
click token never opens a preference page. The key is made once per store and kept in it
(`store_secrets`), so every worker and every `yunying web` instance agree;
`unsubscribe_secret` overrides it. No address and no readable id ever appears in a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import replace
from html import unescape
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.errors import PermanentError
from yunying.messaging.render import Rendered
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


def _cipher(key: bytes) -> AESGCM:
    return AESGCM(hashlib.sha256(b"yunying link token v2\0" + key).digest())


def sign(key: bytes, purpose: str, *fields: Any) -> str:
    """base64url(nonce + AES-GCM(JSON [purpose, *fields])): sealed, so the URL shows no user
    id (ids can be openids or phone-derived); authenticated, so any change is refused. The
    nonce is an HMAC of the content: the same message always gets the same link."""
    plain = json.dumps([purpose, *fields], separators=(",", ":")).encode()
    nonce = hmac.new(key, plain, hashlib.sha256).digest()[:12]
    return _b64(nonce + _cipher(key).encrypt(nonce, plain, None))


def unsign(key: bytes, purpose: str, token: str) -> list[Any]:
    """The fields of a token made by `sign` for `purpose`; InvalidToken otherwise."""
    if "." in token:
        return _unsign_before_v2(key, purpose, token)
    try:
        raw = _unb64(token)
        plain = _cipher(key).decrypt(raw[:12], raw[12:], None)
        fields = json.loads(plain)
    except (ValueError, InvalidTag):
        raise InvalidToken("the token was altered or is not ours") from None
    if not isinstance(fields, list) or not fields or fields[0] != purpose:
        raise InvalidToken("the token is not for this link")
    return fields[1:]


def _unsign_before_v2(key: bytes, purpose: str, token: str) -> list[Any]:
    """Links sent before tokens were sealed: base64url("user:channel") + "." + a 16-byte
    HMAC-SHA256 tag. They still unsubscribe, from the whole channel."""
    payload, _, tag = token.partition(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    try:
        given = _unb64(tag)
        decoded = _unb64(payload).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("the token is malformed") from None
    if not hmac.compare_digest(given, expected):
        raise InvalidToken("the token's signature does not match")
    if purpose != "unsubscribe":
        raise InvalidToken("the token is not for this link")
    user_id, _, channel = decoded.rpartition(":")
    return [user_id, channel, ANY_TOPIC]


def make_token(key: bytes, user_id: str, channel: str, topic: str = ANY_TOPIC) -> str:
    return sign(key, "unsubscribe", user_id, channel, topic)


def recipient_links(
    public_url: str, key: bytes, user_id: str, channel: str, topic: str = ANY_TOPIC
) -> dict[str, str]:
    """A message's unsubscribe and preference links (one token: the same recipient)."""
    token = make_token(key, user_id, channel, topic)
    return {
        "unsubscribe_url": f"{public_url}/unsubscribe?token={token}",
        "preferences_url": f"{public_url}/preferences?token={token}",
    }


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


def track_rendered(rendered: Rendered, key: bytes, public_url: str, outbox_id: int) -> Rendered:
    """The message with its HTML part's links tracked (`track_links`); text stays as is."""
    if not rendered.html:
        return rendered
    return replace(rendered, html=track_links(rendered.html, key, public_url, outbox_id))


def verify_click(key: bytes, token: str) -> tuple[int, str]:
    fields = unsign(key, "click", token)
    if len(fields) != 2 or not isinstance(fields[0], int) or not isinstance(fields[1], str):
        raise InvalidToken("the token is malformed")
    if not fields[1].startswith(("http://", "https://")):
        raise InvalidToken("the link is not a web address")
    return fields[0], fields[1]
