"""Sending a campaign through the outbox against the same local provider as the baselines.

The provider is an aiohttp server in a process of its own (so it is not the bottleneck and
does not share our interpreter), deduplicating on the Idempotency-Key like a real one.
Figures, each a ratio from this one run:

- `sms`: the reactivation flow (plan, claim, render, post, record every message) vs a raw
  aiohttp loop posting the same number of payloads at the same concurrency;
- `sms_latency_50ms`: the same with 50 ms of provider latency;
- `vs_naive_flow`: the flow's messages/s vs a Prefect flow that makes one task per message
  (2,000 messages, one task call after another);
- `smtp`: our SMTP channel (one connection per batch) vs smtplib with a new connection per
  message, both to a local aiosmtpd.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import os
import smtplib
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.pull import _figure

DAY = dt.date(2026, 11, 1)
CONCURRENCY = 64
NAIVE_MESSAGES = 2_000
SMTP_MESSAGES = 2_000


def run(users: int, seed: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="yunying-bench-send-"))
    provider = _Provider()
    url = f"http://127.0.0.1:{provider.port}"
    os.environ.update(
        {
            "YUNYING_HOME": str(work / "var"),
            "YUNYING_CAMPAIGN_DIR": str(work / "campaigns"),
            "YUNYING_PROVIDERS__SMS_URL": f"{url}/v1/sms",
            "YUNYING_PROVIDERS__CONCURRENCY": str(CONCURRENCY),
            "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    _write_campaigns(work / "campaigns")
    _fill_store(users)
    try:
        figures: dict[str, Any] = {"benchmark": "send", "users": users}
        naive = _naive_flow(f"{url}/v1/sms", NAIVE_MESSAGES)  # also starts Prefect's local API
        for name, latency in (("sms", 0.0), ("sms_latency_50ms", 0.05)):
            provider.set_latency(latency)
            raw = asyncio.run(_raw_aiohttp(f"{url}/v1/sms", users, latency))
            ours, delivered = _our_flow(f"bench-{name.replace('_', '-')}", provider)
            assert delivered == users, f"{name}: provider got {delivered} of {users}"
            figures[name] = _figure(round(ours), round(raw), ours / raw)
            print(f"{name}: flow {ours:.0f} msg/s, raw aiohttp {raw:.0f} msg/s", file=sys.stderr)
            if latency == 0.0:
                figures["vs_naive_flow"] = _figure(round(ours), round(naive, 1), ours / naive)
        figures["smtp"] = _smtp(min(users, SMTP_MESSAGES))
        return figures
    finally:
        provider.stop()


def _write_campaigns(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, channel in (
        ("bench-sms", "sms"),
        ("bench-sms-latency-50ms", "sms"),
        ("bench-smtp", "email"),
    ):
        (folder / f"{name}.toml").write_text(
            f'name = "{name}"\nsegment = ["silent"]\nchannels = ["{channel}"]\n'
            'template = "winback"\nholdout_percent = 0\nfrequency_cap_days = 0\n'
            "quiet_hours = false\n"
        )


def _fill_store(users: int) -> None:
    """`users` silent users, reachable by SMS and email, loaded through the ingestion path."""
    from yunying.config import load_settings
    from yunying.lifecycle.states import compute_lifecycle
    from yunying.sources.load import load_rows, validate
    from yunying.store.engine import create_store_engine, session_scope
    from yunying.store.migrate import upgrade

    settings = load_settings()
    upgrade(settings.store_url)
    engine = create_store_engine(settings.store_url)
    last_seen = dt.datetime.combine(DAY - dt.timedelta(days=10), dt.time(4)).isoformat() + "Z"
    for start in range(0, users, 10_000):
        ids = range(start, min(users, start + 10_000))
        records = {
            "users": [
                {
                    "user_id": f"u{i:08d}",
                    "signup_at": "2026-06-01T00:00:00Z",
                    "email": f"u{i}@example.com",
                    "phone": f"+86139{i:08d}",
                    "locale": "en" if i % 2 else "zh-CN",
                    "timezone": "Asia/Shanghai",
                }
                for i in ids
            ],
            "events": [
                {
                    "event_id": f"e{i}",
                    "user_id": f"u{i:08d}",
                    "name": "app_open",
                    "occurred_at": last_seen,
                }
                for i in ids
            ],
        }
        with session_scope(engine) as session:
            for entity, rows in records.items():
                valid, rejected = validate(entity, rows, {}, settings.zone)  # type: ignore[arg-type]
                assert not rejected, rejected[:1]
                load_rows(session, entity, valid, "bench")  # type: ignore[arg-type]
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
    engine.dispose()


def _our_flow(campaign: str, provider: _Provider) -> tuple[float, int]:
    from flows.reactivation import reactivation

    before = provider.delivered()
    started = time.perf_counter()
    result = reactivation(campaign=campaign, business_date=DAY)
    elapsed = time.perf_counter() - started
    return result["sent"] / elapsed, provider.delivered() - before


def _payload(i: int) -> bytes:
    body = {
        "key": f"raw:{i}",
        "channel": "sms",
        "to": f"+86139{i:08d}",
        "title": "",
        "body": "It's been 10 days! Come back and see what's new: http://localhost Reply STOP",
    }
    return json.dumps(body).encode()


async def _raw_aiohttp(url: str, count: int, latency: float) -> float:
    """What a user would write by hand: one session, a semaphore, gather."""
    import aiohttp

    run_id = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(i: int) -> None:
            headers = {"Content-Type": "application/json", "Idempotency-Key": f"{run_id}:{i}"}
            async with gate, session.post(url, data=_payload(i), headers=headers) as response:
                await response.read()
                assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(count)))
        return count / (time.perf_counter() - started)


def _naive_flow(url: str, count: int) -> float:
    import httpx
    from prefect import flow, task

    @task
    def post_one(url: str, i: int) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"naive:{i}"}
        httpx.post(url, content=_payload(i), headers=headers).raise_for_status()

    @flow
    def naive_send(url: str, count: int) -> None:
        # One task call after another: `post_one.map` over 2,000 messages got 503s from
        # Prefect's local API here, so the naive flow would not finish at all.
        for i in range(count):
            post_one(url, i)

    naive_send(url, 10)  # start Prefect's local API outside the measurement
    started = time.perf_counter()
    naive_send(url, count)
    return count / (time.perf_counter() - started)


def _smtp(count: int) -> dict[str, float]:
    from yunying.config import load_settings
    from yunying.messaging.campaign import find_campaign
    from yunying.messaging.channels import build_email
    from yunying.messaging.outbox import plan
    from yunying.messaging.send import send_all
    from yunying.store.engine import create_store_engine, session_scope

    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    sink = multiprocessing.Process(target=_smtp_sink, args=(ready,), daemon=True)
    sink.start()
    port = ready.get(timeout=30)
    try:
        os.environ.update({"YUNYING_SMTP__HOST": "127.0.0.1", "YUNYING_SMTP__PORT": str(port)})
        settings = load_settings()
        engine = create_store_engine(settings.store_url)
        campaign = find_campaign(settings.campaign_dir, "bench-smtp")
        with session_scope(engine) as session:
            plan(session, campaign, DAY, only_users=[f"u{i:08d}" for i in range(count)])
        started = time.perf_counter()
        sent = send_all(engine, settings, campaign, DAY, "bench", 1000)["sent"]
        ours = sent / (time.perf_counter() - started)
        engine.dispose()

        started = time.perf_counter()
        for message in _sample_messages(settings, count):
            with smtplib.SMTP("127.0.0.1", port) as connection:
                connection.send_message(build_email(settings.mail_from, message))
        baseline = count / (time.perf_counter() - started)
    finally:
        sink.terminate()
        sink.join()
    print(
        f"smtp: ours {ours:.0f} msg/s, new connection per message {baseline:.0f}", file=sys.stderr
    )
    return _figure(round(ours), round(baseline), ours / baseline)


def _smtp_sink(ready: multiprocessing.Queue[int]) -> None:
    from aiosmtpd.controller import Controller

    class Accept:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    Controller(Accept(), hostname="127.0.0.1", port=port).start()
    ready.put(port)
    threading.Event().wait()


def _sample_messages(settings: Any, count: int) -> list[Any]:
    from yunying.messaging.outbox import Claimed
    from yunying.messaging.providers import OutgoingMessage
    from yunying.messaging.render import render

    context = {
        "days_inactive": 10,
        "app_url": settings.public_url,
        "unsubscribe_url": "x",
        "preferences_url": "x",
    }
    rendered = render("winback", "email", "en", context)
    return [
        OutgoingMessage(
            Claimed(i, f"smtp:{i}", f"u{i}", "email", 1), f"u{i}@example.com", rendered, "x"
        )
        for i in range(count)
    ]


class _Provider:
    """The aiohttp provider in its own process; `delivered` and `set_latency` over HTTP."""

    def __init__(self) -> None:
        ready: multiprocessing.Queue[int] = multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_serve, args=(ready,), daemon=True)
        self.process.start()
        self.port = ready.get(timeout=30)

    def _call(self, path: str) -> Any:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.port}{path}").json()

    def delivered(self) -> int:
        return int(self._call("/stats")["delivered"])

    def set_latency(self, seconds: float) -> None:
        self._call(f"/latency?seconds={seconds}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()


def _serve(ready: multiprocessing.Queue[int]) -> None:
    from aiohttp import web

    keys: set[str] = set()
    state = {"latency": 0.0}

    async def send(request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        body = await request.read()
        if not key or not body:
            return web.json_response(
                {"error": "Idempotency-Key and a body are required"}, status=400
            )
        if state["latency"]:
            await asyncio.sleep(state["latency"])
        keys.add(key)
        return web.json_response({"id": f"msg-{len(keys)}"})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"delivered": len(keys)})

    async def latency(request: web.Request) -> web.Response:
        state["latency"] = float(request.query["seconds"])
        return web.json_response(state)

    async def main() -> None:
        app = web.Application()
        app.add_routes(
            [
                web.post("/v1/{channel}", send),
                web.get("/stats", stats),
                web.get("/latency", latency),
            ]
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        ready.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())
