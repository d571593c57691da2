"""Secret settings that name a Prefect Secret block, read from a real block saved on the
Prefect test server: by a flow (the report emailed over SMTP with the block's password, as
the server's authenticator sees it) and by the `yunying` command."""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cli.main import main
from tests.integration.test_smtp_tls import (
    USER,
    Certificate,
    TlsSmtpServer,
    self_signed,
)
from yunying.config import Settings, load_settings
from yunying.errors import ConfigError

pytestmark = pytest.mark.usefixtures("prefect")

# Digits only: Prefect's Secret.get() would turn it into the number 20261104.
BLOCK_PASSWORD = "20261104"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: what these tests check is where the password comes from."""
    from yunying.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    return url


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TlsSmtpServer]:
    certificate: Certificate = self_signed(tmp_path, ["127.0.0.1"])
    server = TlsSmtpServer("starttls", certificate, password=BLOCK_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_by_block(
    settings: Settings, server: TlsSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> TlsSmtpServer:
    """SMTP settings whose password names the Secret block `smtp-password`."""
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(server.port))
    monkeypatch.setenv("YUNYING_SMTP__SECURITY", "starttls")
    monkeypatch.setenv("YUNYING_SMTP__CA_FILE", str(server.certificate.cert))
    monkeypatch.setenv("YUNYING_SMTP__USERNAME", USER)
    monkeypatch.setenv("YUNYING_SMTP__PASSWORD", "prefect-secret:smtp-password")
    return server


def save_block(name: str, value: str) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(name, overwrite=True)


def test_a_flow_reads_the_smtp_password_from_a_secret_block(
    engine: Engine, smtp_by_block: TlsSmtpServer
) -> None:
    from flows.report import report

    save_block("smtp-password", BLOCK_PASSWORD)
    result = report(business_date=dt.date(2026, 11, 1))
    assert result["sent"]
    assert smtp_by_block.logins == [(USER, BLOCK_PASSWORD, True)]
    [message] = smtp_by_block.sink.messages
    assert message["To"] == "ops@example.com"  # the report, to its recipients


def test_the_yunying_command_reads_the_block_too(
    engine: Engine, smtp_by_block: TlsSmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    save_block("smtp-password", BLOCK_PASSWORD)
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "en"]) == 0
    assert "test message sent" in capsys.readouterr().out
    assert smtp_by_block.logins == [(USER, BLOCK_PASSWORD, True)]


def test_a_missing_block_stops_the_flow_naming_the_setting_and_the_block(
    engine: Engine, smtp_by_block: TlsSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.report import report

    monkeypatch.setenv("YUNYING_SMTP__PASSWORD", "prefect-secret:no-such-block")
    with pytest.raises(ConfigError, match=r"'smtp\.password'.*no Prefect Secret block named"):
        report(business_date=dt.date(2026, 11, 1))
    assert not smtp_by_block.sink.messages and not smtp_by_block.logins


def test_without_prefect_a_block_reference_is_refused_not_used_as_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("YUNYING_UNSUBSCRIBE_SECRET", "prefect-secret:unsubscribe-key")
    with pytest.raises(ConfigError, match=r"'unsubscribe_secret'.*YUNYING_UNSUBSCRIBE_SECRET"):
        load_settings()
    monkeypatch.setenv("YUNYING_UNSUBSCRIBE_SECRET", "prefect-secret:Not A Name")
    with pytest.raises(ConfigError, match="not a Secret block name"):
        load_settings(resolve_secret=lambda name: "unused")
