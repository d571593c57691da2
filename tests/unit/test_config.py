from pathlib import Path

import pytest

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
    settings = load_settings()
    assert settings.timezone == "Europe/London"
    assert settings.source("app-users").entity == "users"

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
