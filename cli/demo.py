"""`yunying demo`: build the synthetic company, then run the nightly chain once on it."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import shutil
import time
from typing import Any

from yunying.config import Settings
from yunying.demo.local_server import LocalServer
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import demo_sources
from yunying.store.migrate import upgrade


def run_demo(settings: Settings, users: int, seed: int, keep: bool) -> dict[str, Any]:
    home = settings.home
    business_date = dt.datetime.now(settings.zone).date() - dt.timedelta(days=1)
    if not keep:
        _fresh_store(settings)
    step("1/4", f"generating the synthetic company: {users} users up to {business_date}")
    started = time.perf_counter()
    source_db = home / "demo" / "source.db"
    counts = write_source_db(source_db, users, seed, business_date)
    step(
        "   ",
        f"{counts.users} users, {counts.events} events, {counts.orders} orders "
        f"written to the company's app database {source_db} ({time.perf_counter() - started:.1f}s)",
    )
    step("2/4", f"creating the store at {settings.store_url}")
    upgrade(settings.store_url)
    with LocalServer(source_db=source_db) as server:
        sources = demo_sources(source_db.resolve(), server.url)
        os.environ["YUNYING_SOURCES"] = json.dumps([s.model_dump() for s in sources])
        step("3/4", f"the company's HTTP API serves events at {server.url}/events")
        step(
            "4/4",
            "running the nightly flow on Prefect's local API (pull -> lifecycle -> send -> report)",
        )
        from flows.nightly import nightly

        return nightly(business_date=business_date, campaign="winback-demo", force_report=True)


def _fresh_store(settings: Settings) -> None:
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
    messages = ", ".join(f"{status} {n}" for status, n in summary["messages"].items())
    print(f"  messages:           {messages}")
    print(f"  report written:     {summary['report']}")
    print(f"  sending:            {_sending_line(settings)}")
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


def _sending_line(settings: Settings) -> str:
    from yunying.messaging.sending import off_notice
    from yunying.store.engine import create_store_engine

    engine = create_store_engine(settings.store_url)
    try:
        off = off_notice(engine, settings) is not None
    finally:
        engine.dispose()
    if off:
        return "off (a new store): messages were written to files; `yunying sending enable` sends"
    return "on: messages went to the configured channels (files where none is configured)"
