from pathlib import Path

import pytest

from cli.main import main
from tests.rig import SmtpSink
from yunying.config import load_settings
from yunying.errors import ConfigError


def test_embedded_defaults_need_no_services() -> None:
    settings = load_settings()
    assert settings.store_url == "sqlite:///var/yunying.db"
    assert settings.outbox_path == Path("var/outbox")
    assert settings.smtp.host is None
    assert settings.providers.sms_url is None


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNYING_SMTP__HOST", "mail.internal")
    monkeypatch.setenv("YUNYING_LIFECYCLE__CHURN_DAYS", "45")
    settings = load_settings()
    assert settings.smtp.host == "mail.internal"
    assert settings.lifecycle.churn_days == 45


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("YUNYING_LIFECYCLE__ACTIVE_DAYS", "0", "lifecycle.active_days"),
        ("YUNYING_TIMEZONE", "Mars/Olympus", "timezone"),
        ("YUNYING_SMTP__PORT", "not-a-port", "smtp.port"),
        ("YUNYING_BATCH_SIZE", "-5", "batch_size"),
    ],
    ids=["zero-days", "unknown-zone", "bad-port", "negative-batch"],
)
def test_invalid_value_stops_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as caught:
        load_settings()
    assert name in str(caught.value)


def test_toml_file_is_read_and_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "yunying.toml"
    config.write_text(
        'timezone = "Europe/London"\n'
        "[[sources]]\n"
        'kind = "sql"\nname = "app-users"\nentity = "users"\nurl = "sqlite:///x.db"\n'
        'table = "users"\n'
    )
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    monkeypatch.delenv("YUNYING_TIMEZONE", raising=False)
    settings = load_settings()
    assert settings.timezone == "Europe/London"
    assert settings.source("app-users").entity == "users"
    monkeypatch.setenv("YUNYING_TIMEZONE", "Asia/Tokyo")  # a variable wins over the file
    assert load_settings().timezone == "Asia/Tokyo"
    monkeypatch.delenv("YUNYING_TIMEZONE")

    config.write_text(
        '[[sources]]\nkind = "sql"\nname = "x"\nentity = "users"\nurl = "sqlite://"\n'
    )
    with pytest.raises(ConfigError, match="table.*query"):
        load_settings()


def test_a_mapping_naming_no_field_stops_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A typo would otherwise leave user_id unmapped: every record rejected as missing it.
    config = tmp_path / "yunying.toml"
    config.write_text(
        '[[sources]]\nkind = "file"\nname = "ev"\nentity = "events"\npath = "e.jsonl"\n'
        'mapping = { user_ud = "uid" }\n'
    )
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    with pytest.raises(ConfigError, match="sources.*mapping: 'user_ud' is not a field of events"):
        load_settings()


def test_churn_must_come_after_active(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNYING_LIFECYCLE__CHURN_DAYS", "3")
    with pytest.raises(ConfigError, match="churn_days must be greater"):
        load_settings()


def test_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNYING_CONFIG", "/nonexistent/yunying.toml")
    with pytest.raises(ConfigError, match="/nonexistent/yunying.toml"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "setting"),
    [
        ("YUNYING_PROVIDERS__SMS_URL", "not-a-url", "providers.sms_url"),
        ("YUNYING_PROVIDERS__WEBHOOK_URL", "ftp://hooks.example.com/in", "providers.webhook_url"),
        ("YUNYING_PROVIDERS__PUSH_URL", "https://:443/push", "providers.push_url"),
        ("YUNYING_PROVIDERS__REWARDS_URL", "http://rewards internal/", "providers.rewards_url"),
        ("YUNYING_DATABASE_URL", "mysq://yunying:pw@db.internal/yunying", "database_url"),
        ("YUNYING_DATABASE_URL", "mssql+pyodbc://yunying@db.internal/yunying", "database_url"),
        ("YUNYING_DATABASE_URL", "var/yunying.db", "database_url"),
        ("YUNYING_PUBLIC_URL", "javascript:alert(document.cookie)", "public_url"),
        ("YUNYING_REPORT_RECIPIENTS", '["ops@example.com", "the ops team"]', "report_recipients.1"),
        ("YUNYING_REPORT_RECIPIENTS", '["a@example.com, b@example.com"]', "report_recipients.0"),
        ("YUNYING_MAIL_FROM", "Yunying <ops>", "mail_from"),
    ],
    ids=[
        "sms-url", "webhook-ftp", "push-no-host", "rewards-space", "unknown-dialect",
        "driver-missing", "path-not-url", "javascript", "recipient-name", "two-in-one", "from",
    ],
)  # fmt: skip
def test_a_setting_that_cannot_work_stops_the_command_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    smtp_server: SmtpSink,
    tmp_path: Path,
    name: str,
    value: str,
    setting: str,
) -> None:
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path))
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    command = ["test-send", "winback", "--to", "staff@example.com", "--locale", "en"]
    monkeypatch.setenv(name, value)
    assert main(command) == 2
    error = capsys.readouterr().err
    assert f"invalid setting '{setting}'" in error and name in error
    assert value not in error  # it may hold a password or a token
    assert smtp_server.messages == []
    monkeypatch.delenv(name)  # the same command, with that setting right, sends
    assert main(command) == 0
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('kind = "sql"\nurl = "postgress://ro@db/app"\ntable = "t"', "unknown database dialect"),
        ('kind = "http"\nurl = "api.internal/v1/events"', "must be an http:// or https:// URL"),
    ],
    ids=["sql", "http"],
)
def test_a_source_url_that_cannot_work_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, problem: str
) -> None:
    config = tmp_path / "yunying.toml"
    config.write_text(f'[[sources]]\nname = "app"\nentity = "events"\n{source}\n')
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    with pytest.raises(
        ConfigError, match=rf"invalid setting 'sources\.0\.\w+\.url'.*{problem}"
    ) as caught:
        load_settings()
    assert "JSON in YUNYING_SOURCES)" in str(caught.value)  # a list is set whole
