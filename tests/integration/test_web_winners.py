"""The public winners pages (公示) of `yunying web`, served by uvicorn from the store after real
payouts: what the public reads is what was published, every version stays reachable, and the
pages keep the service's headers and rate limit."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from sqlalchemy import Engine

from tests.integration.test_payout_flow import _approve, _campaign, _participants
from tests.integration.test_web import Site, site_settings
from tests.rig import WebServer, free_port
from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.rewards.approval import Decision, store_approved_plan
from yunying.rewards.campaign import RewardCampaign, load_reward_campaign
from yunying.rewards.ledger import http_rewards_provider, pay_batch
from yunying.rewards.plan import compute_plan
from yunying.rewards.publish import commit, latest_publication, publications, publish_results
from yunying.store.engine import session_scope
from yunying.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
APPROVED_AT = dt.datetime(2026, 11, 10, 9, 0)


@pytest.fixture
def rewards_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    folder = tmp_path / "reward-files"
    folder.mkdir()
    monkeypatch.setenv("YUNYING_REWARD_DIR", str(folder))
    return folder


@contextlib.contextmanager
def serve(settings: Settings, **web: object) -> Iterator[Site]:
    port = free_port()
    configured = site_settings(settings, port, **web)
    with (
        WebServer(create_app(configured), port) as server,
        httpx.Client(base_url=server.url, follow_redirects=False) as client,
    ):
        yield Site(configured, server.url, client)


@pytest.fixture
def site(settings: Settings) -> Iterator[Site]:
    with serve(settings) as served:
        yield served


def lottery(engine: Engine, settings: Settings, folder: Path, people: int = 8) -> RewardCampaign:
    """A lottery whose seed was committed at its start (`yunying rewards commit`)."""
    name = _campaign(folder, kind="lottery")
    _participants(engine, settings, range(people))
    chosen = load_reward_campaign(folder, name)
    with session_scope(engine) as session:
        commit(session, chosen, chosen.start_utc)
    return chosen


def pay_and_publish(
    engine: Engine, campaign: RewardCampaign, server: LocalServer | None = None
) -> None:
    """What the payout flow's tasks do once approved, through the library: plan, approve,
    pay (through the local rewards provider when given), publish."""
    provider = http_rewards_provider(server.url + "/v1/rewards", 5) if server else None
    with session_scope(engine) as session:
        plan = compute_plan(session, campaign)
        approved = store_approved_plan(
            session, plan, Decision(True, "lead"), None, None, APPROVED_AT
        )
    pay_batch(engine, campaign, approved.payable(), provider)
    with session_scope(engine) as session:
        publish_results(session, campaign, approved, APPROVED_AT + dt.timedelta(minutes=5))


def earlier_links(page: str) -> list[str]:
    return re.findall(r'href="(winners\.v\d+\.html)"', page)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("prefect")
def test_the_page_served_is_the_published_one_and_a_correction_keeps_both(
    engine: Engine,
    settings: Settings,
    rewards_dir: Path,
    local_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
    site: Site,
    tmp_path: Path,
) -> None:
    from flows.reward_payout import reward_payout

    chosen = lottery(engine, settings, rewards_dir)
    name = chosen.name
    base = f"/rewards/{name}/"
    with session_scope(engine) as session:
        drawn = [e.user_id for e in compute_plan(session, chosen).entries]
    # The provider refuses one winner's payout: version 1 says so, the retry corrects it.
    monkeypatch.setenv("YUNYING_PROVIDERS__REWARDS_URL", local_server.url + "/v1/rewards")
    local_server.faults.reject_keys.add(f"{name}:{drawn[0]}:points")
    first = _approve(name, {"approve": True, "approver": "lead"})
    assert (first.result()["paid"], first.result()["failed"]) == (2, 1)
    with session_scope(engine) as session:
        winners_v1 = latest_publication(session, name, "winners")
    assert winners_v1 is not None and winners_v1.version == 1
    shown = site.client.get(base)
    assert shown.status_code == 200 and shown.content == winners_v1.content.encode()
    assert shown.headers["content-type"] == "text/html; charset=utf-8"
    assert "payment failed" in shown.text and earlier_links(shown.text) == []

    local_server.faults.reject_keys.clear()
    rerun = reward_payout(campaign=name, approval_timeout_seconds=5, return_state=True)
    assert rerun.result()["paid"] == 1
    with session_scope(engine) as session:
        published = {(p.kind, p.version): p.content for p in publications(session, name)}
    assert sorted(published) == [
        ("commitment", 1),
        ("commitment", 2),
        ("winners", 1),
        ("winners", 2),
    ]

    # Served from the store, not from the files the payout wrote on its machine.
    shutil.rmtree(settings.home / "rewards" / name)
    latest = site.client.get(base)
    assert latest.content == published["winners", 2].encode()
    assert latest.text.count("<td>paid</td>") == 3 and "payment failed" not in latest.text
    assert site.client.get(base + "winners.html").content == latest.content
    # The latest page links every earlier version, and each link serves it as published.
    links = earlier_links(latest.text)
    assert links == ["winners.v1.html"]
    for link in links:
        earlier = site.client.get(urljoin(site.url + base, link))
        assert earlier.status_code == 200 and earlier.content == published["winners", 1].encode()
    assert site.client.get(base + "winners.v2.html").content == latest.content
    for number in (1, 2):
        served = site.client.get(f"{base}commitment.v{number}.json")
        assert served.content == published["commitment", number].encode()
        assert served.headers["content-type"] == "application/json"
    assert site.client.get(base + "commitment.json").content == published["commitment", 2].encode()
    index = site.client.get(base + "versions.json").json()
    assert [(v["file"], v["version"]) for v in index["versions"]] == [
        ("commitment.v1.json", 1),
        ("commitment.v2.json", 2),
        ("winners.v1.html", 1),
        ("winners.v2.html", 2),
    ]
    assert site.client.get(base + "winners.v3.html").status_code == 404

    # Masked and public ids only: no user id (w0…w7) or address of any participant.
    for text in [latest.text, site.client.get(base + "winners.v1.html").text, *published.values()]:
        assert "@example.com" not in text and not re.search(r"\bw[0-7]\b", text)

    # Anyone can check the draw with the files as the service hands them out.
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    for file in ("commitment.v1.json", "commitment.json"):
        (downloaded / file).write_bytes(site.client.get(base + file).content)
    verified = subprocess.run(
        [sys.executable, "-m", "yunying.rewards.verify", str(downloaded)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_before_the_draw_the_page_shows_the_commitment(
    engine: Engine, settings: Settings, rewards_dir: Path, site: Site
) -> None:
    chosen = lottery(engine, settings, rewards_dir)
    base = f"/rewards/{chosen.name}/"
    with session_scope(engine) as session:
        committed = latest_publication(session, chosen.name, "commitment")
    assert committed is not None
    page = site.client.get(base)
    assert page.status_code == 200 and "Winners not published yet" in page.text
    assert 'href="commitment.v1.json"' in page.text
    served = site.client.get(base + "commitment.v1.json")
    assert served.content == committed.content.encode()
    assert "seed" not in json.loads(served.text)  # the hash only, until the reveal
    assert site.client.get(base + "winners.html").status_code == 404


NOT_PUBLISHED = [
    "/rewards/no-such-campaign/",
    "/rewards/no-such-campaign/winners.html",
    "/rewards/no-such-campaign/commitment.json",
    "/rewards/no-such-campaign/versions.json",
    "/rewards/" + "x" * 300 + "/",
    "/rewards/{name}/winners.v9.html",
    "/rewards/{name}/winners.v1.json",
    "/rewards/{name}/commitment.v0.json",
    "/rewards/{name}/secrets.txt",
]


def test_unknown_campaigns_and_versions_answer_a_plain_404(
    engine: Engine, settings: Settings, rewards_dir: Path, site: Site
) -> None:
    chosen = lottery(engine, settings, rewards_dir, people=3)
    pay_and_publish(engine, chosen)
    for path in NOT_PUBLISHED:
        answer = site.client.get(path.format(name=chosen.name))
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert "Nothing has been published under this address" in answer.text
        assert "no-such-campaign" not in answer.text  # the address is not echoed back
    assert site.client.get(f"/rewards/{chosen.name}/winners.v1.html").status_code == 200


def test_winners_pages_keep_the_security_headers_and_the_rate_limit(
    engine: Engine, settings: Settings, rewards_dir: Path, site: Site
) -> None:
    chosen = lottery(engine, settings, rewards_dir, people=3)
    pay_and_publish(engine, chosen)
    base = f"/rewards/{chosen.name}/"
    page = site.client.get(base)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "public, max-age=60"
    version = site.client.get(base + "winners.v1.html")
    assert version.headers["cache-control"] == "public, max-age=86400"
    # Without the slash, the page's relative links would miss: one redirect to it.
    bare = site.client.get(base.rstrip("/"))
    assert bare.status_code in (307, 308) and bare.headers["location"].endswith(base)

    with serve(settings, rate_limit_per_minute=3) as limited:
        answers = [limited.client.get(base) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["retry-after"]
