"""What a new user meets first, through the `yunying` command: each mistake ends in one clear
line naming the setting or the flag, never a traceback."""

from pathlib import Path

import pytest
from sqlalchemy import Engine

from cli.main import main
from tests.builders import silent_users
from tests.rig import SmtpSink
from yunying.config import Settings
from yunying.messaging.unsubscribe import make_token, unsubscribe_key


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_a_malformed_settings_file_is_named_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "yunying.toml"
    config.write_text('timezone = "Asia/Shanghai\n')
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    assert main(["sending", "status"]) == 2
    assert _error(capsys).startswith(f"error: {config} is not valid TOML: ")


def test_a_bad_json_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_SOURCES", '[{"name": ')
    assert main(["sending", "status"]) == 2
    assert "invalid setting 'sources': YUNYING_SOURCES is not valid JSON" in _error(capsys)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("YUNYING_SOURCES__0__URL", "sqlite:///x.db", "invalid setting 'sources': Input should"
         " be a valid list (YUNYING_SOURCES__0__URL cannot set one item: the whole list goes in"
         " yunying.toml or, as JSON, in YUNYING_SOURCES)"),
        ("YUNYING_LIFECYCLE__CHURN_DAYS", "3", "invalid setting 'lifecycle': churn_days must be"
         " greater than active_days (set its fields in yunying.toml or"
         " YUNYING_LIFECYCLE__<FIELD>)"),
    ],
    ids=["list-item", "table-check"],
)  # fmt: skip
def test_a_variable_that_cannot_be_set_that_way_is_said_so(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    said: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["sending", "status"]) == 2
    assert _error(capsys) == f"error: {said}"


def test_a_misspelled_key_suggests_the_real_one_and_no_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "yunying.toml"
    config.write_text('timzone = "Asia/Shanghai"\n[smtp]\nprot = 25\n')
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    assert main(["sending", "status"]) == 2
    err = _error(capsys)
    assert "unknown setting 'timzone' (did you mean 'timezone'?)" in err
    assert "unknown setting 'smtp.prot' (did you mean 'port'?)" in err
    assert "YUNYING_TIMZONE" not in err and "YUNYING_SMTP__PROT" not in err


def test_a_setting_error_says_it_once_without_pydantics_prefix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_PUBLIC_URL", "example")
    assert main(["sending", "status"]) == 2
    err = _error(capsys)
    assert "Value error" not in err
    assert err.count("invalid setting 'public_url'") == 1


@pytest.fixture
def smtp(smtp_server: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> SmtpSink:
    """The SMTP server the settings send through."""
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    return smtp_server


@pytest.mark.parametrize(
    "to", ["staff@example.com\nBcc: everyone@example.com", "not an address", ""]
)
def test_test_send_checks_the_address_it_sends_to(
    settings: Settings, to: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test-send", "winback", "--to", to]) == 2
    assert _error(capsys).startswith("error: --to: not one email address")


def test_the_test_email_links_to_public_url_and_says_they_are_samples(
    settings: Settings,
    smtp: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("YUNYING_PUBLIC_URL", "https://ops.example.cn")
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "en"]) == 0
    assert "links are samples" in capsys.readouterr().out
    [sent] = smtp.messages
    assert sent["List-Unsubscribe"] == "<https://ops.example.cn/unsubscribe?token=sample>"


def test_a_test_send_the_server_refuses_fails_the_command(
    settings: Settings, smtp: SmtpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    smtp.bounce.add("staff@example.com")
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "en"]) == 1
    said = capsys.readouterr()
    assert "test message bounced" in said.err and "sent" not in said.out
    smtp.bounce.clear()
    smtp.refuse_every_recipient = "554 5.7.1 Relay access denied"
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "en"]) == 1
    assert "test message failed" in capsys.readouterr().err
    assert smtp.messages == []


def test_a_test_send_in_a_locale_without_files_says_which_it_fell_back_to(
    settings: Settings, smtp: SmtpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "fr"]) == 0
    out = capsys.readouterr().out
    assert "locale: fr (the template has no email.fr files: rendered in en)" in out
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "zh-CN"]) == 0
    assert "locale: zh-CN\n" in capsys.readouterr().out
    # Tags as a company's data spells them pick the template its users get.
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "zh_CN"]) == 0
    assert "locale: zh-CN\n" in capsys.readouterr().out
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "en-US"]) == 0
    assert "locale: en\n" in capsys.readouterr().out
    french, chinese, posix, american = smtp.messages
    assert french["Subject"] != chinese["Subject"] == posix["Subject"]
    assert american["Subject"] == french["Subject"]


def test_payouts_show_names_an_unknown_campaign_and_the_known_ones(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["payouts", "show", "checkin-dmeo"]) == 2
    assert _error(capsys) == ("error: unknown reward campaign 'checkin-dmeo'; known: checkin-demo")
    assert main(["payouts", "show", "checkin-demo"]) == 0
    assert "checkin-demo: no payout yet" in capsys.readouterr().out


def test_unsubscribe_takes_the_whole_link_or_its_token(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = silent_users(engine, settings, 2)
    key = unsubscribe_key(settings)
    link = f"{settings.public_url}/unsubscribe?token={make_token(key, first, 'email')}"
    assert main(["unsubscribe", link]) == 0
    assert f"unsubscribed {first} from email" in capsys.readouterr().out
    assert main(["unsubscribe", make_token(key, second, "sms")]) == 0
    assert f"unsubscribed {second} from sms" in capsys.readouterr().out
    assert main(["unsubscribe", f"{settings.public_url}/unsubscribe"]) == 2
    assert "has no ?token=" in _error(capsys)
    # base64url: one token in 64 starts with "-", which is no option here
    dashed = next(
        token
        for token in (make_token(key, first, "email", f"topic{i}") for i in range(2000))
        if token.startswith("-")
    )
    assert main(["unsubscribe", dashed]) == 0
    assert f"unsubscribed {first} from email" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["db", "upgrade"], ["sending", "status"]])
def test_an_unreachable_store_is_one_line_naming_database_url(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_DATABASE_URL", "postgresql://u:secret@127.0.0.1:1/x")
    assert main(command) == 2
    err = _error(capsys)
    assert "secret" not in err
    assert err.startswith(
        "error: cannot reach the store at postgresql://u:***@127.0.0.1:1/x "
        "(setting database_url): connection failed:"
    )
    assert "Connection refused" in err


def test_a_misspelt_top_level_variable_suggests_the_real_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_TIMEZON", "America/New_York")
    assert main(["sending", "status"]) == 2
    err = _error(capsys)
    assert "unknown setting variable YUNYING_TIMEZON (did you mean YUNYING_TIMEZONE?)" in err


def test_a_misspelt_nested_variable_is_named_with_the_real_ones_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_LIFECYCLE__CHURN_DAY", "45")
    assert main(["sending", "status"]) == 2
    assert _error(capsys).startswith(
        "error: environment variable YUNYING_LIFECYCLE__CHURN_DAY: unknown setting "
        "'lifecycle.churn_day' (did you mean 'churn_days' → YUNYING_LIFECYCLE__CHURN_DAYS or "
    )


def test_the_suites_and_benchmarks_own_variables_are_not_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path))
    monkeypatch.setenv("YUNYING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("YUNYING_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")  # nested: checked by pydantic
    assert main(["db", "upgrade"]) == 0
    assert "created the store at sqlite:///" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert "is up to date (schema " in capsys.readouterr().out


def test_a_misspelt_campaign_key_lists_the_keys_and_the_nearest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = Path(__file__).resolve().parents[2] / "deployments" / "campaigns" / "winback.toml"
    text = shipped.read_text().replace("holdout_percent =", "holdout_precent =")
    text = text.replace("start = ", "begin = ")  # in [quiet_hours]
    (tmp_path / "winback.toml").write_text(text)
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(tmp_path))
    assert main(["preview", "winback", "--user", "u1"]) == 2
    err = _error(capsys)
    assert "Extra inputs" not in err
    assert "field 'holdout_precent': unknown key; use " in err
    assert "(did you mean 'holdout_percent'?)" in err
    assert "field 'quiet_hours.begin': unknown key; use end, start" in err


def test_output_its_reader_stops_taking_is_no_error(engine: Engine, settings: Settings) -> None:
    """`yunying preview ... | head`: the reader gone, the command ends quietly, exit 0."""
    import subprocess
    import sys

    from tests.conftest import REPO

    [user] = silent_users(engine, settings, 1)
    command = [sys.executable, "-m", "cli.main", "preview", "winback", "--user", user]
    reader_gone = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert reader_gone.stdout is not None
    reader_gone.stdout.close()  # before the command writes a line: like `| head -0`
    _, err = reader_gone.communicate(timeout=120)
    assert (reader_gone.returncode, err) == (0, "")
