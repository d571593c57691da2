"""Opening an SMTP connection the way the settings say: plain, STARTTLS or SSL, with login."""

from __future__ import annotations

import smtplib

from yunying.config import SmtpSettings
from yunying.errors import ConfigError


def open_smtp(smtp: SmtpSettings) -> smtplib.SMTP:
    if smtp.host is None:
        raise ConfigError("no SMTP host: set smtp.host (YUNYING_SMTP__HOST)")
    factory = smtplib.SMTP_SSL if smtp.security == "ssl" else smtplib.SMTP
    connection = factory(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    if smtp.security == "starttls":
        connection.starttls()
    if smtp.username and smtp.password:
        connection.login(smtp.username, smtp.password.get_secret_value())
    return connection
