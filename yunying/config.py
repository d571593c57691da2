"""Settings: one typed object, built once at start-up and passed down.

Values come from, highest first: keyword arguments, environment variables prefixed
`YUNYING_` (nested fields with `__`, e.g. `YUNYING_SMTP__HOST`), then the TOML file named by
`YUNYING_CONFIG` (default `yunying.toml` in the working directory, when it exists).
Every default is embedded: a SQLite store and an outbox folder under `var/`.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from json import JSONDecodeError
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from yunying.errors import ConfigError
from yunying.messaging.cn_sms_config import CnSmsSettings
from yunying.messaging.push_config import PushSettings
from yunying.messaging.wechat_config import WeChatSettings
from yunying.notify.targets import NotifyTarget
from yunying.setting_checks import DatabaseUrl, EmailAddress, HttpUrl
from yunying.sources.config import PullRules, SourceConfig
from yunying.sources.validate.rules import RecordDefaults, template_locale

PositiveInt = Annotated[int, Field(gt=0)]
# The campaign, reward and segment files shipped with Yunying: found from any directory.
SHIPPED = Path(__file__).resolve().parents[1] / "deployments"
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
    # The server's certificate is verified (STARTTLS and SSL) against the system's CAs, or
    # against this PEM bundle for a private CA or a self-signed server.
    ca_file: Path | None = None

    @field_validator("ca_file")
    @classmethod
    def _ca_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file (a PEM bundle of CA certificates)")
        return value


class ProviderSettings(BaseModel):
    """HTTP endpoints of the message providers; None writes JSON lines to the outbox folder."""

    model_config = {"extra": "forbid"}

    sms_url: HttpUrl | None = None
    # The API spoken at sms_url: our signed JSON webhook, or Twilio's Messages API (then
    # sms_url is Twilio's base URL, https://api.twilio.com).
    sms_api: Literal["webhook", "twilio"] = "webhook"
    sms_from: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    push_url: HttpUrl | None = None
    webhook_url: HttpUrl | None = None
    webhook_secret: SecretStr | None = None
    # An email API used instead of SMTP: Resend's (https://api.resend.com/emails).
    email_url: HttpUrl | None = None
    email_api_key: SecretStr | None = None
    rewards_url: HttpUrl | None = None  # None: rewards go to the embedded points ledger
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


class WebSettings(BaseModel):
    """`yunying web`, the recipient-facing service. See README, "The recipient's side"."""

    model_config = {"extra": "forbid"}

    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    # Resend's webhook signing secret (`whsec_…`, on the webhook's page in Resend).
    resend_webhook_secret: SecretStr | None = None
    # Requests per minute per client IP on the public pages (per instance).
    rate_limit_per_minute: PositiveInt = 60
    # Signed callbacks older (or newer) than this are refused as stale.
    callback_tolerance_seconds: PositiveInt = 300
    # Proxies whose X-Forwarded-For / -Proto are believed (uvicorn's forwarded_allow_ips).
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1"])


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
    # A placed order is activity (its local day is an active day): a store with users and
    # orders but no events still has active users. Applies to orders loaded from then on.
    orders_are_activity: bool = True

    @model_validator(mode="after")
    def _churn_after_active(self) -> LifecycleSettings:
        if self.churn_days <= self.active_days:
            raise ValueError("churn_days must be greater than active_days")
        for name in ("recency_days", "frequency_orders", "monetary_spend", "tier_points"):
            low, high = getattr(self, name)
            if low >= high:
                raise ValueError(f"{name}: the first cut point must be below the second")
        return self


class ConsentSettings(BaseModel):
    """What a source's silence about consent means. See README, "Configuration"."""

    model_config = {"extra": "forbid"}

    # False: a user whose source gives no opt-in flag for a channel gets no marketing on it.
    assume_opt_in_when_missing: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YUNYING_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Path("var")
    database_url: DatabaseUrl = ""  # empty: SQLite at {home}/yunying.db
    timezone: str = "Asia/Shanghai"
    consent: ConsentSettings = Field(default_factory=ConsentSettings)
    # Messages per send task: enough that Prefect's bookkeeping per task run stays small.
    batch_size: PositiveInt = 4000
    outbox_dir: Path | None = None  # None: {home}/outbox
    report_dir: Path | None = None  # None: {home}/reports
    campaign_dir: Path = SHIPPED / "campaigns"
    # Message templates (`messages/<template>/…`); None: the ones shipped with Yunying.
    template_dir: Path | None = None
    reward_dir: Path = SHIPPED / "rewards"
    segment_dir: Path = SHIPPED / "segments"
    mail_from: EmailAddress = "Yunying <ops@example.com>"
    report_recipients: list[EmailAddress] = Field(default_factory=lambda: ["ops@example.com"])
    public_url: HttpUrl = "http://127.0.0.1:8000"
    unsubscribe_secret: SecretStr | None = None  # None: a key made once and kept in the store
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    providers: ProviderSettings = Field(default_factory=ProviderSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    sources: list[SourceConfig] = Field(default_factory=list)
    # The company's money and language (the report's, and the locale of users whose own has no
    # templates or who have none; tags are normalised): ISO 4217 code and zh-CN or en. Orders in
    # another currency are converted at `exchange_rates` (company currency per unit) or reported
    # apart.
    currency: str = "CNY"
    default_locale: str = "zh-CN"
    exchange_rates: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(default_factory=dict)
    # The cash value of one reward point in `currency`; unset, points have no cash cost or ROI.
    point_value: Annotated[Decimal, Field(gt=0)] | None = None

    # None: as the store says (`yunying sending enable|disable`; off on a new store, so
    # messages go to the file outbox); True/False: this setting decides, whatever the store says.
    sending: bool | None = None
    # A pull stops when more than this share of a batch (of at least 100 records) is rejected:
    # a mapping gone wrong rejects everything and should not end as a completed run.
    max_rejected_share: float = Field(default=0.5, gt=0, le=1)
    # Group-chat robots told about reports, failures, payouts and reviews (yunying/notify/).
    notify: list[NotifyTarget] = Field(default_factory=list)
    # Mainland SMS through Aliyun or Tencent Cloud templates (yunying/messaging/cn_sms.py).
    cn_sms: CnSmsSettings = Field(default_factory=CnSmsSettings)
    # App push through JPush or FCM HTTP v1 (yunying/messaging/push.py).
    push: PushSettings = Field(default_factory=PushSettings)
    # WeChat template / subscribe messages to openids (yunying/messaging/wechat.py).
    wechat: WeChatSettings = Field(default_factory=WeChatSettings)

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
        locale = template_locale(value)
        if locale not in REPORT_LOCALES:
            raise ValueError(
                f"unsupported locale {value!r}; use one of {', '.join(REPORT_LOCALES)}"
            )
        return locale

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
    def record_defaults(self) -> RecordDefaults:
        return RecordDefaults(
            self.default_locale, self.consent.assume_opt_in_when_missing, self.currency
        )

    @property
    def pull_rules(self) -> PullRules:
        return PullRules(
            self.zone,
            self.record_defaults,
            self.max_rejected_share,
            tuple(self.lifecycle.activity_events),
            self.lifecycle.orders_are_activity,
            self.currency,
            self.exchange_rates,
        )

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


def load_settings(
    resolve_secret: SecretResolver | None = None, defer_secrets: bool = False, **overrides: Any
) -> Settings:
    """Build the settings, turning validation errors into one ConfigError naming each field.

    A secret setting may name a Prefect Secret block instead of holding the secret
    (`smtp.password = "prefect-secret:smtp-password"`): `resolve_secret` reads it (the
    tasks layer passes one; Yunying itself never imports Prefect). Without a resolver such a
    setting is refused, never used as the secret, unless `defer_secrets` keeps it for a later
    `resolve_secrets` (the CLI must set up Prefect's environment first)."""
    if "YUNYING_CONFIG" in os.environ and not Path(os.environ["YUNYING_CONFIG"]).is_file():
        raise ConfigError(f"YUNYING_CONFIG points at {os.environ['YUNYING_CONFIG']}, not a file")
    unknown = unknown_variables(os.environ)
    if unknown:
        raise ConfigError("; ".join(unknown))
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(exc, env_prefix="YUNYING_", environment=os.environ)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        path = os.environ.get("YUNYING_CONFIG", "yunying.toml")
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except SettingsError as exc:  # an environment variable holding a list or table
        raise ConfigError(_describe_env_error(exc)) from None
    if resolve_secret is not None:
        return resolve_secrets(settings, resolve_secret)
    references = secret_references(settings)
    if references and not defer_secrets:
        path, block = next(iter(references.items()))
        raise ConfigError(
            f"invalid setting {path!r}: it names the Prefect Secret block {block!r}, which only "
            f"flows and the yunying command read; here set the secret itself ({_env_name(path)})"
        )
    return settings


# Variables with the settings' prefix that are not settings: the settings file's path, and the
# servers the test suite and the benchmarks use.
NOT_SETTINGS = ("YUNYING_CONFIG",)
NOT_SETTINGS_PREFIXES = ("YUNYING_TEST_", "YUNYING_BENCH_")


def unknown_variables(environment: Mapping[str, str]) -> list[str]:
    """A `YUNYING_` variable naming no top-level setting, with the nearest real ones
    (pydantic-settings ignores them; nested ones it refuses as unknown keys)."""
    problems = []
    for name in sorted(environment):
        upper = name.upper()  # pydantic-settings reads names in any case
        if not upper.startswith("YUNYING_") or upper in NOT_SETTINGS:
            continue
        if upper.startswith(NOT_SETTINGS_PREFIXES):
            continue
        field = upper.removeprefix("YUNYING_").split("__")[0].lower()
        if field in Settings.model_fields:
            continue
        close = difflib.get_close_matches(field, list(Settings.model_fields))
        names = " or ".join(_env_name(match) for match in close)
        hint = f" (did you mean {names}?)" if close else ""
        problems.append(f"unknown setting variable {name}{hint}")
    return problems


# A secret setting of this form names a Prefect Secret block (lowercase, digits, dashes).
SECRET_BLOCK_PREFIX = "prefect-secret:"
SECRET_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
SecretResolver = Callable[[str], str]


def secret_references(settings: Settings) -> dict[str, str]:
    """Setting path -> Secret block name, for every secret setting that names a block."""
    references = {}
    for path, secret in _secrets(settings):
        value = secret.get_secret_value()
        if value.startswith(SECRET_BLOCK_PREFIX):
            block = value.removeprefix(SECRET_BLOCK_PREFIX)
            if not SECRET_BLOCK_NAME.fullmatch(block):
                raise ConfigError(
                    f"invalid setting {path!r}: {block!r} is not a Secret block name "
                    "(lowercase letters, digits and dashes)"
                )
            references[path] = block
    return references


def resolve_secrets(settings: Settings, resolve_secret: SecretResolver) -> Settings:
    """A copy of `settings` with every Secret block reference replaced by the block's value;
    `resolve_secret` raises ConfigError for a block it cannot read."""
    references = secret_references(settings)
    if not references:
        return settings
    resolved = settings.model_copy(deep=True)
    for path, block in references.items():
        try:
            value = resolve_secret(block)
        except ConfigError as exc:
            raise ConfigError(f"invalid setting {path!r}: {exc}") from None
        *parents, name = path.split(".")
        owner: BaseModel = resolved
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, SecretStr(value))  # on the copy: `settings` stays as it was
    return resolved


def _secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, SecretStr]]:
    found = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            found.append((prefix + name, value))
        elif isinstance(value, BaseModel):
            found += _secrets(value, f"{prefix}{name}.")
    return found


def _env_name(path: str) -> str:
    return "YUNYING_" + path.replace(".", "__").upper()


def _describe_env_error(exc: SettingsError) -> str:
    """pydantic-settings names the field; its cause says what is wrong with the JSON."""
    named = re.search(r'field "([^"]+)"', str(exc))
    field = named.group(1) if named else "?"
    cause = exc.__cause__
    why = f" ({cause.msg}, at character {cause.pos})" if isinstance(cause, JSONDecodeError) else ""
    return (
        f"invalid setting {field!r}: {_env_name(field)} is not valid JSON{why}; it holds the"
        " whole value as JSON (or set it in yunying.toml)"
    )


def describe_validation_error(
    exc: ValidationError, env_prefix: str = "", environment: Mapping[str, str] | None = None
) -> str:
    """One line per error; `environment` lets an unknown nested key name the variable the
    user set (`YUNYING_LIFECYCLE__CHURN_DAY`) rather than only the setting it spells."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(root)"
        if error["type"] == "extra_forbidden":
            variable = _variable_for(error["loc"], env_prefix, environment or {})
            lines.append(_unknown_setting(exc.title, error["loc"], variable))
            continue
        where = ""
        if env_prefix:
            # A list (sources, report_recipients) is set whole: name its variable.
            names = list(itertools.takewhile(lambda part: isinstance(part, str), error["loc"]))
            env_name = (env_prefix + "__".join(str(part) for part in names)).upper()
            parts = [
                name for name in (environment or {}) if name.upper().startswith(env_name + "__")
            ]
            if len(names) < len(error["loc"]):  # an item of a list has no variable of its own
                where = f" (set it in yunying.toml, or the whole list as JSON in {env_name})"
            elif error["type"] == "list_type" and parts:
                where = (
                    f" ({parts[0]} cannot set one item: the whole list goes in yunying.toml or,"
                    f" as JSON, in {env_name})"
                )
            elif _is_table([str(name) for name in names]):  # a check across its fields
                where = f" (set its fields in yunying.toml or {env_name}__<FIELD>)"
            else:
                where = f" (set it in yunying.toml or {env_name})"
        message = error["msg"].removeprefix("Value error, ")  # pydantic's, for our checks
        lines.append(f"invalid setting {field!r}: {message}{where}")
    return "; ".join(dict.fromkeys(lines))  # a union's members may each say the same


def _is_table(names: Sequence[str]) -> bool:
    """Whether the settings at the path `names` are a table of their own (`lifecycle`)."""
    owners: list[type[BaseModel]] = [Settings]
    for name in names:
        fields = [owner.model_fields[name] for owner in owners if name in owner.model_fields]
        if not fields:
            return False
        owners = _models_in(fields[0].annotation)
    return bool(owners)


def _variable_for(
    loc: tuple[int | str, ...], env_prefix: str, environment: Mapping[str, str]
) -> str | None:
    """The variable, as the user spelt it, that set the key at `loc`; None for a file's key."""
    if not env_prefix or not all(isinstance(part, str) for part in loc):
        return None
    wanted = (env_prefix + "__".join(str(part) for part in loc)).upper()
    # pydantic-settings reads names in any case
    return next((name for name in environment if name.upper() == wanted), None)


def _unknown_setting(title: str, loc: tuple[int | str, ...], variable: str | None = None) -> str:
    """`unknown setting 'smtp.prot'`, with the nearest known names of its table; for a
    variable, named first and with the variable of each nearest name."""
    owners: list[type[BaseModel]] = [Settings] if title == "Settings" else []
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of the list named before it
            continue
        fields = [owner.model_fields[part] for owner in owners if part in owner.model_fields]
        if fields:
            owners = _models_in(fields[0].annotation)
        else:  # a tagged union names its member by its `kind`: `sources.1.sql.tabel`
            owners = [owner for owner in owners if part in _kinds(owner)]
    known = sorted({name for owner in owners for name in owner.model_fields})
    close = difflib.get_close_matches(str(loc[-1]), known)
    path = ".".join(str(part) for part in loc)
    if variable is None:
        hint = f" (did you mean {' or '.join(repr(name) for name in close)}?)" if close else ""
        return f"unknown setting {path!r}{hint}"
    parents = [str(part) for part in loc[:-1]]
    names = [f"{name!r} → {_env_name('.'.join([*parents, name]))}" for name in close]
    hint = f" (did you mean {' or '.join(names)}?)" if close else ""
    return f"environment variable {variable}: unknown setting {path!r}{hint}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models in `Model`, `list[Model]`, `A | B | None`, `Annotated[...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def _kinds(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("kind")
    return get_args(field.annotation) if field else ()
