"""Signed unsubscribe tokens: base64url("user_id:channel") + "." + HMAC-SHA256 tag."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.errors import PermanentError
from yunying.store.engine import utcnow
from yunying.store.models import Suppression


class InvalidToken(PermanentError):
    """The token was altered or signed with another secret."""


def unsubscribe_key(settings: Settings) -> bytes:
    """The configured secret, or a random one kept beside the embedded store."""
    if settings.unsubscribe_secret:
        return settings.unsubscribe_secret.get_secret_value().encode()
    path = settings.home / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def make_token(key: bytes, user_id: str, channel: str) -> str:
    payload = base64.urlsafe_b64encode(f"{user_id}:{channel}".encode()).rstrip(b"=")
    tag = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return f"{payload.decode()}.{base64.urlsafe_b64encode(tag).rstrip(b'=').decode()}"


def verify_token(key: bytes, token: str) -> tuple[str, str]:
    payload, _, tag = token.partition(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    try:
        given = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except ValueError:
        raise InvalidToken("unsubscribe token is malformed") from None
    if not hmac.compare_digest(given, expected):
        raise InvalidToken("unsubscribe token signature does not match")
    user_id, _, channel = decoded.rpartition(":")
    return user_id, channel


def suppress(session: Session, user_id: str, channel: str, reason: str) -> None:
    if session.get(Suppression, (user_id, channel)) is None:
        session.add(
            Suppression(user_id=user_id, channel=channel, reason=reason, created_at=utcnow())
        )
