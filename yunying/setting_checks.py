"""Checks of the addresses that settings hold — web URLs, database URLs, email addresses — so
that one that cannot work stops start-up naming its setting, instead of failing each message
or run later. Each check returns the value or raises ValueError; the message never repeats
the value, which may carry a password or a token.
"""

from __future__ import annotations

import re
from email.headerregistry import AddressHeader, HeaderRegistry
from typing import Annotated

import httpx
from pydantic import AfterValidator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from yunying.store.engine import normalise_url

# As the sources' email check: something@domain.tld, no spaces.
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
_HEADERS = HeaderRegistry()


def http_url(value: str) -> str:
    """An absolute http:// or https:// URL with a host (what an HTTP client can call)."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        raise ValueError("not a URL") from None
    if url.scheme not in ("http", "https") or not url.host or _SPACE.search(value):
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def database_url(value: str) -> str:
    """A SQLAlchemy URL whose dialect and driver are installed ('' is left to the caller)."""
    if not value:
        return value
    try:
        url = make_url(normalise_url(value))
    except (ArgumentError, ValueError):
        raise ValueError("not a database URL (dialect://user@host/database)") from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database dialect {url.drivername!r}") from None
    try:
        dialect.import_dbapi()
    except ImportError:
        raise ValueError(f"the driver for {url.drivername!r} is not installed") from None
    return value


def email_address(value: str) -> str:
    """One address, bare or with a display name ('运营 <ops@example.com>'), parsed as the
    To header it becomes."""
    header = _HEADERS("To", value)
    addresses = header.addresses if isinstance(header, AddressHeader) else ()
    if len(addresses) != 1 or header.defects or not _ADDRESS.match(addresses[0].addr_spec):
        raise ValueError("not one email address (name@example.com or Name <name@example.com>)")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]
DatabaseUrl = Annotated[str, AfterValidator(database_url)]
EmailAddress = Annotated[str, AfterValidator(email_address)]
