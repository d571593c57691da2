"""Opening an SMTP connection the way the settings say: plain, STARTTLS or SSL, with login.

TLS verifies the server's certificate and host name (`ssl.create_default_context`, as the
Python docs' "Security considerations" for smtplib advise): against the system's CAs, or
against `smtp.ca_file` for a private CA or a self-signed server. Without verification, anyone
between us and the server could read the SMTP password.
"""

from __future__ import annotations

import smtplib
import ssl

from yunying.config import SmtpSettings
from yunying.errors import ConfigError


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)


def open_smtp(smtp: SmtpSettings) -> smtplib.SMTP:
    """Raises ConfigError when the server's certificate does not verify (naming smtp.ca_file),
    smtplib's errors or OSError otherwise."""
    if smtp.host is None:
        raise ConfigError("no SMTP host: set smtp.host (YUNYING_SMTP__HOST)")
    context = tls_context(smtp) if smtp.security != "none" else None
    try:
        if smtp.security == "ssl":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context
            )
        else:
            connection = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    except ssl.SSLCertVerificationError as exc:
        raise _untrusted(smtp, exc) from None
    try:
        if smtp.security == "starttls":
            connection.starttls(context=context)
        if smtp.username and smtp.password:
            connection.login(smtp.username, smtp.password.get_secret_value())
    except ssl.SSLCertVerificationError as exc:
        connection.close()
        raise _untrusted(smtp, exc) from None
    except BaseException:
        connection.close()
        raise
    return connection


def _untrusted(smtp: SmtpSettings, exc: ssl.SSLCertVerificationError) -> ConfigError:
    return ConfigError(
        f"the SMTP server {smtp.host}:{smtp.port} presented a certificate that does not "
        f"verify ({exc.verify_message}): if it is signed by a private CA or is self-signed, "
        "set smtp.ca_file (YUNYING_SMTP__CA_FILE) to that CA's PEM file"
    )
