"""One error tree for Yunying. Tasks retry `TransientError` and never retry `PermanentError`.

YunyingError
├── TransientError            retry with backoff: timeouts, 5xx, 429, lost connections
│   └── RateLimited           429 with the provider's Retry-After
└── PermanentError            don't retry: the input or the request is wrong
    ├── ConfigError           a setting or campaign file is invalid (names the field)
    ├── TemplateError         a template is missing, invalid or needs a missing variable
    │   └── TemplateDataError one recipient's data breaks it (that message fails, not the run)
    └── ProviderRejected      a provider answered 4xx
"""

from __future__ import annotations


class YunyingError(Exception):
    """Base of every error Yunying raises on purpose."""


class TransientError(YunyingError):
    """A failure that may go away on retry."""


class RateLimited(TransientError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[RateLimited], tuple[str, float | None]]:
        # Whole across a process boundary (an HTTP source is read in a process of its own).
        return RateLimited, (str(self), self.retry_after)


class PermanentError(YunyingError):
    """A failure that retrying cannot fix."""


class ConfigError(PermanentError):
    """Invalid settings or campaign file; the message names the field and what to do."""


class TemplateError(PermanentError):
    """A template that cannot be rendered for the given context."""


class TemplateDataError(TemplateError):
    """The template raised for this context only (a division by zero, a message too long):
    the one message fails with this reason; the campaign goes on."""


class ProviderRejected(PermanentError):
    """A 4xx answer; `where` is the host, port and path asked (never the query: a token)."""

    def __init__(self, status: int, excerpt: str, where: str = "") -> None:
        super().__init__(
            f"{where} answered HTTP {status}: {excerpt}"
            if where
            else f"provider rejected the request: HTTP {status}: {excerpt}"
        )
        self.status = status
        self.excerpt = excerpt
        self.where = where

    def __reduce__(self) -> tuple[type[ProviderRejected], tuple[int, str, str]]:
        return ProviderRejected, (self.status, self.excerpt, self.where)
