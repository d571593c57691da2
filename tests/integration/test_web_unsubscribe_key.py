"""One unsubscribe key per store (issue 19, item 10): every machine on a store signs and
verifies alike, and a validly signed token for an unknown user changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cli.main import main
from tests.builders import silent_users
from tests.conftest import REPO
from yunying.config import Settings
from yunying.messaging.unsubscribe import make_token, unsubscribe_key
from yunying.store.engine import session_scope
from yunying.store.models import Suppression


def _yunying(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as another machine runs it: its own process and its own home folder."""
    env = {**os.environ, "YUNYING_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _suppressions(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        return [
            tuple(row) for row in session.execute(select(Suppression.user_id, Suppression.channel))
        ]  # type: ignore[misc]


def test_a_token_signed_on_one_machine_is_honoured_on_another(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    [user] = silent_users(engine, settings, 1)
    preview = _yunying(tmp_path / "machine-a", "preview", "winback", "--user", user)
    assert preview.returncode == 0, preview.stderr
    token = re.search(r"/unsubscribe\?token=([\w.-]+)", preview.stdout)
    assert token is not None, preview.stdout

    applied = _yunying(tmp_path / "machine-b", "unsubscribe", token.group(1))

    assert applied.returncode == 0, applied.stderr
    assert _suppressions(engine) == [(user, "email")]
    # Neither machine keeps a key of its own: the store holds the one key.
    assert not (tmp_path / "machine-a" / "secret.key").exists()
    assert not (tmp_path / "machine-b" / "secret.key").exists()


def test_a_signed_token_for_an_unknown_user_is_refused(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    silent_users(engine, settings, 1)
    forged_user = make_token(unsubscribe_key(settings), "no-such-user", "email")

    assert main(["unsubscribe", forged_user]) == 2
    assert "no known user" in capsys.readouterr().err
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_a_store_upgraded_from_one_machine_keeps_its_key(
    engine: Engine, settings: Settings
) -> None:
    """Links sent before the store kept the key were signed with {home}/secret.key: the
    first machine to reach the store adopts that key, so they keep working."""
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "secret.key").write_text("an-old-machine-key\n")

    assert unsubscribe_key(settings) == b"an-old-machine-key"


def _token_as_before(key: bytes, user_id: str, channel: str) -> str:
    """How tokens were made before they named a topic (links in mailboxes today)."""
    import base64
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(f"{user_id}:{channel}".encode()).rstrip(b"=")
    tag = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return f"{payload.decode()}.{base64.urlsafe_b64encode(tag).rstrip(b'=').decode()}"


def test_a_link_sent_before_the_store_kept_the_key_still_unsubscribes(
    engine: Engine, settings: Settings
) -> None:
    [user] = silent_users(engine, settings, 1)
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "secret.key").write_text("the-old-machine-key\n")
    old_link = _token_as_before(b"the-old-machine-key", user, "sms")

    assert main(["unsubscribe", old_link]) == 0
    assert _suppressions(engine) == [(user, "sms")]
