"""Settings: one typed object, built once at start-up and passed down.

Values come from, highest first: keyword arguments, environment variables prefixed
`YUNYING_` (nested fields with `__`, e.g. `YUNYING_SMTP__HOST`), then the TOML file named by
`YUNYING_CONFIG` (default `yunying.toml` in the working directory, when it exists).
Every default is embedded: a SQLite store and an outbox folder under `var/`.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from yunying.errors import ConfigError
from yunying.sources.config import SourceConfig

PositiveInt = Annotated[int, Field(gt=0)]
REPORT_LOCALES = ("zh-CN", "en")


def _currency_code(value: str) -> str:
    from babel.numbers import list_currencies

    code = value.upper()
    if code not in list_currencies():
        raise ValueError(f"unknown currency {value!r}; use an ISO 4217 code such as CNY or USD")
    return code


class SmtpSettings(BaseModel):
    model_config = {"extra": "forbid"}

    host: str | None = None  # None: write .eml files to the outbox folder instead
    port: int = Field(default=25, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["none", "starttls", "ssl"] = "none"
    timeout_seconds: float = Field(default=30.0, gt=0)


class ProviderSettings(BaseModel):
    """HTTP endpoints of the message providers; None writes JSON lines to the outbox folder."""

    model_config = {"extra": "forbid"}

    sms_url: str | None = None
    # The API spoken at sms_url: our signed JSON webhook, or Twilio's Messages API (then
    # sms_url is Twilio's base URL, https://api.twilio.com).
    sms_api: Literal["webhook", "twilio"] = "webhook"
    sms_from: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    push_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # An email API used instead of SMTP: Resend's (https://api.resend.com/emails).
    email_url: str | None = None
    email_api_key: SecretStr | None = None
    rewards_url: str | None = None  # None: rewards go to the embedded points ledger
    timeout_seconds: float = Field(default=10.0, gt=0)
    concurrency: PositiveInt = 16
    # Messages per second per channel, held across all workers (`yunying setup` creates the
    # matching Prefect rate limits); a channel not listed is not paced.
    rate_limits: dict[str, PositiveInt] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _credentials_present(self) -> ProviderSettings:
        needed = []
        if self.sms_url and self.sms_api == "twilio":
            needed += ["twilio_account_sid", "twilio_auth_token", "sms_from"]
        if self.email_url:
            needed.append("email_api_key")
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} for the configured provider")
        return self


class LifecycleSettings(BaseModel):
    """Thresholds in days, counted in the company's time zone. See README, "Lifecycle"."""

    model_config = {"extra": "forbid"}

    new_days: PositiveInt = 7
    active_days: PositiveInt = 7
    churn_days: PositiveInt = 30
    returned_days: PositiveInt = 7
    catch_up_days: PositiveInt = 14  # how far back a new store (or missed nights) start
    # RFM cut points, each [score 2 from, score 3 from]; recency counts inactive days, lower is
    # better: score 3 under the first, 2 under the second.
    recency_days: tuple[PositiveInt, PositiveInt] = (7, 30)
    frequency_orders: tuple[PositiveInt, PositiveInt] = (2, 5)
    monetary_spend: tuple[PositiveInt, PositiveInt] = (100, 500)
    tier_points: tuple[PositiveInt, PositiveInt] = (5, 8)  # total for `mid`, for `high`
    activity_events: list[str] = Field(default_factory=list)  # empty: every event counts

    @model_validator(mode="after")
    def _churn_after_active(self) -> LifecycleSettings:
        if self.churn_days <= self.active_days:
            raise ValueError("churn_days must be greater than active_days")
        for name in ("recency_days", "frequency_orders", "monetary_spend", "tier_points"):
            low, high = getattr(self, name)
            if low >= high:
                raise ValueError(f"{name}: the first cut point must be below the second")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YUNYING_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Path("var")
    database_url: str = ""  # empty: SQLite at {home}/yunying.db
    timezone: str = "Asia/Shanghai"
    # Messages per send task: each task run costs Prefect ~0.1 s of bookkeeping, which a
    # batch of a few thousand messages (a second or two of sending) makes small.
    batch_size: PositiveInt = 4000
    outbox_dir: Path | None = None  # None: {home}/outbox
    report_dir: Path | None = None  # None: {home}/reports
    campaign_dir: Path = Path("deployments/campaigns")
    reward_dir: Path = Path("deployments/rewards")
    segment_dir: Path = Path("deployments/segments")
    mail_from: str = "Yunying <ops@example.com>"
    report_recipients: list[str] = Field(default_factory=lambda: ["ops@example.com"])
    public_url: str = "http://127.0.0.1:8000"
    unsubscribe_secret: SecretStr | None = None  # None: a random key kept in {home}/secret.key
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    providers: ProviderSettings = Field(default_factory=ProviderSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    sources: list[SourceConfig] = Field(default_factory=list)
    # The company's money and language (the daily report): ISO 4217 code and a locale
    # (zh-CN or en). Orders in another currency are converted at `exchange_rates` (company
    # currency per unit, e.g. {USD = 7.1}) or else reported apart, never summed in.
    currency: str = "CNY"
    default_locale: str = "zh-CN"
    exchange_rates: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(default_factory=dict)
    # The cash value of one reward point in `currency`; unset, points have no cash cost or ROI.
    point_value: Annotated[Decimal, Field(gt=0)] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from exc
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        return _currency_code(value)

    @field_validator("exchange_rates")
    @classmethod
    def _known_rate_currencies(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {_currency_code(code): rate for code, rate in value.items()}

    @field_validator("default_locale")
    @classmethod
    def _supported_locale(cls, value: str) -> str:
        if value not in REPORT_LOCALES:
            raise ValueError(
                f"unsupported locale {value!r}; use one of {', '.join(REPORT_LOCALES)}"
            )
        return value

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, value: list[SourceConfig]) -> list[SourceConfig]:
        names = [source.name for source in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique, repeated: {', '.join(duplicates)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("YUNYING_CONFIG", "yunying.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_path))

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'yunying.db'}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def outbox_path(self) -> Path:
        return self.outbox_dir or self.home / "outbox"

    @property
    def report_path(self) -> Path:
        return self.report_dir or self.home / "reports"

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"no source named {name!r} in settings.sources")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one ConfigError naming each field."""
    if "YUNYING_CONFIG" in os.environ and not Path(os.environ["YUNYING_CONFIG"]).is_file():
        raise ConfigError(f"YUNYING_CONFIG points at {os.environ['YUNYING_CONFIG']}, not a file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, env_prefix="YUNYING_")) from None


def describe_validation_error(exc: ValidationError, env_prefix: str = "") -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(root)"
        where = ""
        if env_prefix:
            env_name = env_prefix + "__".join(str(p) for p in error["loc"] if isinstance(p, str))
            where = f" (set it in yunying.toml or {env_name.upper()})"
        lines.append(f"invalid setting {field!r}: {error['msg']}{where}")
    return "; ".join(lines)
