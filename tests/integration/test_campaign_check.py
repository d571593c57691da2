"""Preview shows the variant a user is assigned; a campaign naming a template or a segment
that does not exist stops preview, dry run and run alike, naming its file and field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.builders import DAY, load_records, silent_users
from yunying.config import Settings
from yunying.messaging.variants import variant_of
from yunying.sources.validate.rules import holdout_bucket
from yunying.store.engine import session_scope
from yunying.store.models import OutboxMessage, User

pytestmark = pytest.mark.usefixtures("prefect")

FALL = """name = "fall-winback"
segment = ["silent"]
channels = ["email"]
template = "winback"
holdout_percent = 0
quiet_hours = false
{extra}

[[variants]]
name = "news"
template = "winback"

[[variants]]
name = "gift"
template = "{gift}"
"""
GIFT_SUBJECT = "A gift is waiting for you"
NEWS_SUBJECT = "We miss you"


def _campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gift: str = "winback_gift", extra: str = ""
) -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    path = folder / "fall-winback.toml"
    path.write_text(FALL.format(gift=gift, extra=extra))
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(folder))
    return path


def test_preview_renders_the_variant_the_outbox_assigns(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main
    from yunying.messaging.campaign import find_campaign

    users = silent_users(engine, settings, 12, locale="en")
    _campaign(tmp_path, monkeypatch)
    variants = find_campaign(tmp_path / "campaigns", "fall-winback").variants
    drawn = {u: variant_of(holdout_bucket(u), "fall-winback", variants) for u in users}
    assert set(drawn.values()) == {"news", "gift"}
    # Send it for real: preview must agree with the variant each row was assigned.
    assert main(["run", "reactivation", "--campaign", "fall-winback", "--date", str(DAY)]) == 0
    with session_scope(engine) as session:
        assigned = dict(session.execute(select(OutboxMessage.user_id, OutboxMessage.variant)).all())
    assert assigned == drawn
    capsys.readouterr()
    shown = {}
    for user, variant in drawn.items():
        command = ["preview", "fall-winback", "--user", user, "--date", str(DAY)]
        assert main(command) == 0
        out = shown[user] = capsys.readouterr().out
        subject = GIFT_SUBJECT if variant == "gift" else NEWS_SUBJECT
        assert f"(variant {variant})" in out and f"subject: {subject}" in out, out[:300]
    # The users came back after the date: its preview still renders as that night sent it.
    later = (DAY + dt.timedelta(days=3)).isoformat() + "T04:00:00Z"
    with session_scope(engine) as session:
        load_records(
            session,
            settings.zone,
            "events",
            [
                {"event_id": f"back-{u}", "user_id": u, "name": "app_open", "occurred_at": later}
                for u in users
            ],
        )
    for user in users:
        assert main(["preview", "fall-winback", "--user", user, "--date", str(DAY)]) == 0
        assert capsys.readouterr().out == shown[user]


@pytest.mark.parametrize(
    ("change", "field", "named"),
    [
        ({"gift": "winback_gfit"}, "variants.1.template", "winback_gfit"),
        ({"extra": 'audience = "lapsed-spenderz"'}, "audience", "lapsed-spenderz"),
        ({"extra": 'audience = { segment = "nope" }'}, "audience", "nope"),
    ],
    ids=["variant-template", "audience-segment", "nested-segment"],
)
def test_a_missing_template_or_segment_stops_preview_dry_run_and_run(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    field: str,
    named: str,
) -> None:
    from cli.main import main

    silent_users(engine, settings, 4)
    path = _campaign(tmp_path, monkeypatch, **change)
    preview = ["preview", "fall-winback", "--user", "s00001", "--date", str(DAY)]
    run = ["run", "reactivation", "--campaign", "fall-winback", "--date", str(DAY)]
    for command in (preview, run):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"campaign file {path}: field '{field}'" in err and named in err, err
    _campaign(
        tmp_path,
        monkeypatch,
        extra=change.get("extra", "") + "\ndry_run = true",
        **{k: v for k, v in change.items() if k != "extra"},
    )
    assert main(run) == 2
    assert f"field '{field}'" in capsys.readouterr().err
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        assert session.scalar(select(func.count()).select_from(User)) == 4


def test_a_bad_campaign_stops_the_night_before_any_campaign_sends(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.campaigns import campaigns
    from yunying.errors import ConfigError

    silent_users(engine, settings, 4)
    path = _campaign(tmp_path, monkeypatch, gift="winback_gfit", extra="priority = 200")
    good = FALL.format(gift="winback_gift", extra="priority = 1").replace("fall-winback", "first")
    (path.parent / "first.toml").write_text(good)
    with pytest.raises(ConfigError, match="field 'variants.1.template'"):
        campaigns(business_date=DAY, names=["first", "fall-winback"])
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
