"""SMTP over TLS against a real local server (aiosmtpd) with a self-signed certificate made
here: refused by default, accepted once its CA is configured (STARTTLS and implicit SSL), and
the login checked by the server's authenticator."""

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, select

from tests.builders import DAY, silent_users
from tests.integration.test_outbox import NOON_IN_SHANGHAI, campaign, send_all
from tests.rig import SmtpSink
from yunying.config import Settings, load_settings
from yunying.errors import ConfigError
from yunying.messaging.outbox import counts, plan
from yunying.messaging.smtp_connection import open_smtp
from yunying.reports.daily_email import send_alert
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage

USER, PASSWORD = "mailer", "s3cret-pass"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: what these tests check is the SMTP connection, not the store."""
    from yunying.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    return url


@dataclass
class Certificate:
    cert: Path
    key: Path


def self_signed(folder: Path, names: list[str]) -> Certificate:
    """A self-signed certificate (its own CA) for `names`: host names or IP addresses."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(folder / f"{names[0]}.pem", folder / f"{names[0]}.key")
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class TlsSmtpServer:
    """An SmtpSink behind STARTTLS (`starttls`) or implicit TLS (`ssl`), requiring login."""

    security: str
    certificate: Certificate
    password: str = PASSWORD  # the one the server accepts for USER
    sink: SmtpSink = field(default_factory=SmtpSink)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # (user, password, ok)

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        ok = (user, password) == (USER, self.password)
        self.logins.append((user, password, ok))
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate.cert, self.certificate.key)
        # aiosmtpd only counts STARTTLS as TLS for AUTH (an implicit-TLS socket is TLS
        # anyway), and warns when AUTH is required without it: the login is then optional.
        tls: dict[str, Any] = (
            {"ssl_context": context, "auth_require_tls": False}
            if self.security == "ssl"
            else {"tls_context": context, "require_starttls": True, "auth_required": True}
        )
        self._controller = Controller(
            self.sink,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.authenticate,
            **tls,
        )
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return self_signed(tmp_path, ["127.0.0.1", "localhost"])


@pytest.fixture(params=["starttls", "ssl"])
def tls_server(request: pytest.FixtureRequest, certificate: Certificate) -> Iterator[TlsSmtpServer]:
    server = TlsSmtpServer(request.param, certificate)
    server.start()
    yield server
    server.stop()


def smtp_settings(
    monkeypatch: pytest.MonkeyPatch,
    server: TlsSmtpServer,
    ca_file: Path | None = None,
    password: str = PASSWORD,
) -> Settings:
    """The settings a user writes: host, port, security, login, and maybe a CA bundle."""
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(server.port))
    monkeypatch.setenv("YUNYING_SMTP__SECURITY", server.security)
    monkeypatch.setenv("YUNYING_SMTP__USERNAME", USER)
    monkeypatch.setenv("YUNYING_SMTP__PASSWORD", password)
    monkeypatch.setenv("YUNYING_SMTP__TIMEOUT_SECONDS", "5")
    if ca_file is not None:
        monkeypatch.setenv("YUNYING_SMTP__CA_FILE", str(ca_file))
    return load_settings()


def test_an_unverified_server_is_refused_then_accepted_once_its_ca_is_configured(
    engine: Engine,
    settings: Settings,
    tls_server: TlsSmtpServer,
    certificate: Certificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silent_users(engine, settings, 4)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)

    untrusting = smtp_settings(monkeypatch, tls_server)
    assert send_all(engine, untrusting, chosen) == {"retry": 4}
    assert tls_server.sink.messages == [] and tls_server.logins == []  # no password sent
    with session_scope(engine) as session:
        reasons = set(session.scalars(select(OutboxMessage.reason)))
    [reason] = reasons
    assert "does not verify (self-signed certificate)" in reason and "smtp.ca_file" in reason

    trusting = smtp_settings(monkeypatch, tls_server, ca_file=certificate.cert)
    later = NOON_IN_SHANGHAI + dt.timedelta(minutes=5)  # after the retry backoff
    assert send_all(engine, trusting, chosen, now=later) == {"sent": 4}
    assert sorted(m["To"] for m in tls_server.sink.messages) == [
        f"s{i}@example.com" for i in range(4)
    ]
    assert tls_server.logins == [(USER, PASSWORD, True)]  # one connection per batch
    with session_scope(engine) as session:
        assert counts(session, "winback", DAY)["sent"] == 4


def test_a_wrong_password_is_refused_by_the_server_and_named(
    engine: Engine,
    settings: Settings,
    tls_server: TlsSmtpServer,
    certificate: Certificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silent_users(engine, settings, 2)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    wrong = smtp_settings(monkeypatch, tls_server, certificate.cert, password="rotated")
    assert send_all(engine, wrong, chosen) == {"retry": 2}
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN): both refused.
    assert set(tls_server.logins) == {(USER, "rotated", False)} and not tls_server.sink.messages
    with session_scope(engine) as session:
        [reason] = set(session.scalars(select(OutboxMessage.reason)))
    assert reason == "SMTP login refused (535): check smtp.username and smtp.password"


def test_a_certificate_for_another_host_is_refused_even_with_its_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = self_signed(tmp_path, ["mail.example.com"])
    server = TlsSmtpServer("starttls", other)
    server.start()
    try:
        settings = smtp_settings(monkeypatch, server, ca_file=other.cert)
        with pytest.raises(ConfigError, match="IP address mismatch"):
            open_smtp(settings.smtp)
    finally:
        server.stop()
    assert server.logins == []


def test_a_missing_ca_file_stops_start_up_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUNYING_SMTP__CA_FILE", str(tmp_path / "nowhere.pem"))
    with pytest.raises(ConfigError, match=r"'smtp\.ca_file'.*YUNYING_SMTP__CA_FILE"):
        load_settings()


def test_the_report_alert_refuses_an_unverified_server_as_a_setting_to_fix(
    tls_server: TlsSmtpServer,
    certificate: Certificate,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """The alert is kept in the outbox, and the log names the setting to fix."""
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    untrusting = smtp_settings(monkeypatch, tls_server)
    kept = send_alert(untrusting, "Yunying: nightly failed", "see the Prefect UI")
    assert kept == next((tmp_path / "var" / "outbox" / "reports").glob("alert-*.eml"))
    assert "Subject: Yunying: nightly failed" in kept.read_text()
    assert "smtp.ca_file" in caplog.text
    assert not tls_server.sink.messages and not tls_server.logins
    trusting = smtp_settings(monkeypatch, tls_server, ca_file=certificate.cert)
    send_alert(trusting, "Yunying: nightly failed", "see the Prefect UI")
    [alert] = tls_server.sink.messages
    assert alert["Subject"] == "Yunying: nightly failed"
    assert tls_server.logins == [(USER, PASSWORD, True)]
