"""The `yunying` command, run in-process against real stores and a real SMTP server."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cli.main import main
from tests.builders import silent_users
from tests.rig import SmtpSink
from yunying.config import Settings
from yunying.rewards.approval import Decision, store_approved_plan
from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.ledger import pay_batch
from yunying.rewards.plan import PayoutPlan, PlanEntry
from yunying.store.engine import session_scope


def test_upgrade_preview_test_send_and_unsubscribe(
    engine: Engine,
    settings: Settings,
    smtp_server: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "upgrade"]) == 0
    silent_users(engine, settings, 3)
    assert main(["preview", "winback", "--user", "s00001", "--channel", "sms"]) == 0
    out = capsys.readouterr().out
    assert "channel: sms" in out and "not reachable" not in out
    # A user who did not consent to SMS is shown the message, and told it is not sent.
    silent_users(engine, settings, 1, user_id="quiet-{}".format, sms_opt_in=False)
    assert main(["preview", "winback", "--user", "quiet-0", "--channel", "sms"]) == 0
    assert "not reachable: no sms address, no consent to sms or unsubscribed" in (
        capsys.readouterr().out
    )
    # A date before the user signed up (2026-06-01): no night could send it, nothing shown.
    assert main(["preview", "winback", "--user", "quiet-0", "--date", "2026-05-20"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("not a user yet on 2026-05-20 (signed up 2026-06-01)")
    assert "since your last visit" not in out
    # Last seen ten days before silent_users' day: counted from --date, not from today.
    assert main(["preview", "winback", "--user", "s00001", "--date", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "It has been 10 days since your last visit." in out
    assert out.startswith("date: 2026-11-01\n")
    # By default as `run` sends: for yesterday.
    yesterday = dt.datetime.now(settings.zone).date() - dt.timedelta(days=1)
    shown = []
    for date in ([], ["--date", str(yesterday)]):
        assert main(["preview", "winback", "--user", "s00001", "--channel", "sms", *date]) == 0
        shown.append(capsys.readouterr().out)
    assert shown[0] == shown[1]

    monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("YUNYING_SMTP__PORT", str(smtp_server.port))
    assert main(["test-send", "winback", "--to", "staff@example.com", "--locale", "en"]) == 0
    assert "test message sent" in capsys.readouterr().out
    assert [m["To"] for m in smtp_server.messages] == ["staff@example.com"]
    # Without --locale, in the company's default_locale, as its customers get it.
    monkeypatch.setenv("YUNYING_DEFAULT_LOCALE", "en")
    assert main(["test-send", "winback", "--to", "staff@example.com"]) == 0
    english, default = smtp_server.messages
    assert default["Subject"] == english["Subject"]

    assert main(["unsubscribe", "dGFtcGVyZWQ.AAAA"]) == 2
    assert "signature does not match" in capsys.readouterr().err


def test_a_bad_setting_stops_the_command_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_TIMEZONE", "Atlantis/Capital")
    assert main(["db", "upgrade"]) == 2
    assert "YUNYING_TIMEZONE" in capsys.readouterr().err


def _points_campaign(name: str, budget: int) -> RewardCampaign:
    """A campaign paying 10 points a winner, for the ledger tests."""
    return RewardCampaign.model_validate(
        {
            "name": name,
            "start": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            "end": dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
            "budget": budget,
            "per_user_cap": 10,
            "rule": {"kind": "min_actions", "event": "x"},
            "reward": {"kind": "points", "amounts": [10]},
        }
    )


def test_payouts_show_lists_the_ledger(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    campaign = _points_campaign("tiny", 10)
    pay_batch(engine, campaign, [PlanEntry("user-1234", 1, campaign.reward.amounts[0])])
    assert main(["payouts", "show", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "budget 10" in out and "us***34" in out and "paid" in out


def test_payouts_show_tells_apart_winners_whose_masks_collide(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    campaign = _points_campaign("twins", 20)
    entries = [
        PlanEntry("u00155", 1, Decimal(10), public_id="a1" * 8),
        PlanEntry("u00255", 2, Decimal(10), public_id="b2" * 8),
    ]
    with session_scope(engine) as session:
        store_approved_plan(
            session,
            PayoutPlan("twins", entries, 2),
            Decision(approve=True, approver="Li Na"),
            None,
            None,
            dt.datetime.now(dt.UTC),
        )
    pay_batch(engine, campaign, entries)
    assert main(["payouts", "show", "twins"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "u0***55" in line]
    assert len(rows) == 2
    assert "a1" * 8 in rows[0] and "b2" * 8 in rows[1]


def test_the_demo_never_deletes_a_store_it_did_not_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "home"))
    assert main(["db", "upgrade"]) == 0  # a company's own store, in the demo's default home
    store = tmp_path / "home" / "yunying.db"
    before = store.read_bytes()
    assert main(["demo", "--users", "50"]) == 2
    assert "the demo did not make" in capsys.readouterr().err
    assert store.read_bytes() == before


def test_the_shipped_campaign_files_are_found_from_any_directory(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("YUNYING_CAMPAIGN_DIR")
    monkeypatch.chdir(tmp_path)  # a company's own directory, as `yunying init` leaves it
    silent_users(engine, settings, 2)
    assert main(["preview", "winback", "--user", "s00001", "--channel", "email"]) == 0
    assert "channel: email" in capsys.readouterr().out


def test_the_init_preview_uses_the_pulls_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as shop:  # no currency, no locale, no consent columns
        shop.execute("CREATE TABLE customers (id TEXT, created TEXT)")
        shop.execute("INSERT INTO customers VALUES ('c1', '2026-01-01T00:00:00Z')")
        shop.execute("CREATE TABLE sales (no TEXT, customer TEXT, total TEXT, at TEXT)")
        shop.execute("INSERT INTO sales VALUES ('o1', 'c1', '12.50', '2026-01-02T00:00:00Z')")
    config = tmp_path / "yunying.toml"
    args = ["init", "--config", str(config), "--timezone", "America/New_York"]
    args += ["--locale", "en", "--currency", "USD", "--sql", f"sqlite:///{db}"]
    args += ["--users-table", "customers", "--orders-table", "sales"]
    for mapping in ("users.user_id=id", "users.signup_at=created", "orders.order_id=no"):
        args += ["--map", mapping]
    for mapping in ("orders.user_id=customer", "orders.amount=total", "orders.created_at=at"):
        args += ["--map", mapping]
    for name in ("new", "active", "churn", "returned"):
        args += [f"--{name}-days", "7" if name != "churn" else "30"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert '"currency": "USD"' in out and "CNY" not in out
    assert '"locale": "en"' in out


def test_a_rerun_report_names_the_cli_flag(
    settings: Settings, prefect: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "report", "--date", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "already sent" not in out
    eml = settings.outbox_path / "reports" / "daily-2026-11-01.eml"
    assert f"no SMTP server is configured (smtp.host): the report was written to {eml}, not" \
        " emailed" in out  # fmt: skip
    assert main(["run", "report", "--date", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "the report was already sent; send it again with `yunying run report --force`" in out
    assert main(["run", "report", "--date", "2026-11-01", "--force"]) == 0
    assert "already sent" not in capsys.readouterr().out


def test_the_demo_summary_says_messages_went_to_files_while_sending_is_off(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.demo import print_summary

    summary = {
        "business_date": "2026-11-01",
        "pulled": {},
        "rejected": 0,
        "lifecycle": {},
        "messages": {"sent": 156, "holdout": 17},
        "report": "-",
        "report_email": "-",
    }
    print_summary(summary, settings.model_copy(update={"sending": None}))  # a new store's
    line = "  messages:           {}\n"
    assert (
        line.format("156 written to the file outbox (sending is off: none sent), holdout 17")
        in capsys.readouterr().out
    )
    print_summary(summary, settings)  # YUNYING_SENDING=true
    assert line.format("sent 156, holdout 17") in capsys.readouterr().out
