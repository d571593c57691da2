"""`yunying demo`: build the synthetic company, then run the nightly chain once on it."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.demo.responses import Answers, answer_campaigns
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources
from yunying.errors import ConfigError
from yunying.store.migrate import upgrade


def run_demo(settings: Settings, users: int, seed: int, keep: bool) -> dict[str, Any]:
    home = settings.home
    business_date = dt.datetime.now(settings.zone).date() - dt.timedelta(days=1)
    if not keep:
        _fresh_store(settings)
    step("1/5", f"generating the synthetic company: {users} users up to {business_date}")
    started = time.perf_counter()
    source_db = home / "demo" / "source.db"
    counts = write_source_db(source_db, users, seed, business_date)
    step(
        "   ",
        f"{counts.users} users, {counts.events} events, {counts.orders} orders "
        f"written to the company's app database {source_db} ({time.perf_counter() - started:.1f}s)",
    )
    step("2/5", f"creating the store at {settings.store_url}")
    upgrade(settings.store_url)
    with LocalServer(source_db=source_db) as server:
        sources = demo_sources(source_db.resolve(), server.url)
        os.environ["YUNYING_SOURCES"] = json.dumps([s.model_dump() for s in sources])
        step("3/5", f"the company's HTTP API serves events at {server.url}/events")
        week_ago = business_date - dt.timedelta(days=8)
        step("4/5", f"three campaigns on their segments on {week_ago}, reviewed a week later")
        strategy_step(settings, week_ago)
        answers = answer_step(settings, source_db, week_ago, seed)
        step(
            "   ",
            f"the messages bring back {answers.returned} of their {answers.recipients} recipients "
            f"within the week ({answers.orders} of them order): the demo's customers answer the "
            "gift message more often than the news one",
        )
        step(
            "5/5",
            "running the nightly flow on Prefect's local API (pull -> lifecycle -> send -> report)",
        )
        from flows.nightly import nightly
        from flows.segments import segments

        summary = nightly(business_date=business_date, campaign="winback-demo", force_report=True)
        summary["segments"] = segments(business_date=business_date)
        summary["reviews"] = reviews(settings, business_date)
        return summary


DEMO_CAMPAIGNS = ["demo-vip", "demo-lapsed-buyers", "demo-silent"]
REVIEW_COMMAND = ".venv/bin/yunying review"


def strategy_step(settings: Settings, day: dt.date) -> None:
    """Pull, compute the lifecycle of `day`, and send the demo campaigns for `day`, so the
    nightly run (a week later) can review them with their week of outcomes behind them."""
    from flows.campaigns import campaigns
    from flows.pull import pull_sources
    from yunying.lifecycle.states import compute_lifecycle
    from yunying.reports.kpis import money_for
    from yunying.store.engine import create_store_engine, session_scope

    pull_sources()
    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle, money=money_for(settings))
    finally:
        engine.dispose()
    campaigns(business_date=day, names=DEMO_CAMPAIGNS)


def answer_step(settings: Settings, source_db: Path, day: dt.date, seed: int) -> Answers:
    """The recipients of the demo campaigns of `day` answer them, in the company's database."""
    from yunying.messaging.campaign import find_campaign
    from yunying.store.engine import create_store_engine

    chosen = [find_campaign(settings.campaign_dir, name) for name in DEMO_CAMPAIGNS]
    engine = create_store_engine(settings.store_url)
    try:
        return answer_campaigns(engine, source_db, chosen, day, seed)
    finally:
        engine.dispose()


def reviews(settings: Settings, as_of: dt.date) -> dict[str, dict[str, Any]]:
    from yunying.reports.review_page import leader_line
    from yunying.reports.review_run import build_review
    from yunying.reports.words import Words
    from yunying.store.engine import create_store_engine

    engine = create_store_engine(settings.store_url)
    try:
        built = {name: build_review(settings, engine, name, as_of) for name in DEMO_CAMPAIGNS}
    finally:
        engine.dispose()
    words = Words(settings.default_locale, settings.currency)
    return {
        name: {
            "page": str(b.path),
            "sent": b.review.funnel.sent,
            "held_out": b.review.funnel.held_out,
            "lines": b.page.lines,
            "leader": leader_line(b.review, words),
        }
        for name, b in built.items()
    }


def _fresh_store(settings: Settings) -> None:
    """Start the demo from an empty store, but never delete one the demo did not make."""
    store = settings.home / "yunying.db"
    if store.exists() and not (settings.home / "demo" / "source.db").exists():
        raise ConfigError(
            f"{store} holds a store the demo did not make, and the demo starts from an empty "
            "one: run it in a checkout of its own, or with YUNYING_HOME set to another folder"
        )
    if settings.store_url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            path = settings.home / f"yunying.db{suffix}"
            path.unlink(missing_ok=True)
    for folder in (settings.outbox_path, settings.report_path):
        shutil.rmtree(folder, ignore_errors=True)


def step(number: str, message: str) -> None:
    print(f"[demo {number}] {message}", flush=True)


def print_summary(summary: dict[str, Any], settings: Settings) -> None:
    print()
    print(f"Yunying demo — nightly run for {summary['business_date']}")
    pulled = ", ".join(f"{name} {rows}" for name, rows in summary["pulled"].items())
    print(f"  rows pulled:        {pulled} ({summary['rejected']} malformed rows set aside)")
    states = ", ".join(f"{state} {n}" for state, n in summary["lifecycle"].items())
    print(f"  users per state:    {states}")
    off = _sending_off(settings)
    print(f"  messages:           {_messages_line(summary['messages'], off)}")
    print(f"  report written:     {summary['report']}")
    print(f"  sending:            {_sending_line(off)}")
    sizes = ", ".join(f"{name} {n}" for name, n in summary.get("segments", {}).items())
    print(f"  segment sizes:      {sizes}")
    for name, review in summary.get("reviews", {}).items():
        if review.get("leader"):
            print(f"  variant test:       {name}: {review['leader']}")
            print(f"                      the review: {REVIEW_COMMAND} {name}")
    for name, review in summary.get("reviews", {}).items():
        print(f"  review {name}: sent {review['sent']}, held out {review['held_out']}")
        for line in review["lines"][1:]:
            print(f"      {line}")
        print(f"      page: {review['page']}")
        print(f"      more: {REVIEW_COMMAND} {name}")
    print()
    print("Where to look:")
    print(f"  messages (.eml, .jsonl): {settings.outbox_path.resolve()}")
    print(f"  report email:            {summary['report_email']}")
    print(f"  report page:             {summary['report']}")
    print("  these runs in the Prefect UI: make ui   (then open http://127.0.0.1:4200/runs)")
    print(f"  the recipient's side:    make web  (serves {settings.public_url})")
    link = sample_unsubscribe_link(settings)
    if link:
        print(f"  a sample unsubscribe link (with make web running): {link}")


def sample_unsubscribe_link(settings: Settings) -> str | None:
    """The List-Unsubscribe link of the first email the run wrote, if it wrote one."""
    for path in sorted((settings.outbox_path / "email").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        header = message.get("List-Unsubscribe")
        if header:
            return str(header).strip().strip("<>")
    return None


def _messages_line(messages: dict[str, int], sending_off: bool) -> str:
    """The night's messages per outcome; with sending off, nothing reached a customer."""
    return ", ".join(
        f"{n} written to the file outbox (sending is off: none sent)"
        if sending_off and status == "sent"
        else f"{status} {n}"
        for status, n in messages.items()
    )


def _sending_off(settings: Settings) -> bool:
    from yunying.messaging.sending import off_notice
    from yunying.store.engine import create_store_engine

    engine = create_store_engine(settings.store_url)
    try:
        return off_notice(engine, settings) is not None
    finally:
        engine.dispose()


def _sending_line(off: bool) -> str:
    if off:
        return "off (a new store): messages were written to files; `yunying sending enable` sends"
    return "on: messages went to the configured channels (files where none is configured)"
