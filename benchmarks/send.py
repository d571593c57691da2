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
  message, both to a local aiosmtpd;
- `aliyun_sms_batch`, `tencent_sms_batch` (and `..._latency_50ms`): our mainland SMS channel
  (template parameters, batching into SendBatchSms / SendSms calls of 100 / 200 numbers,
  signing, one outcome per message) vs a raw aiohttp loop posting the same signed requests,
  built before its clock starts, at the same concurrency; messages per second from the call
  to the last answer (each opening its own session), the median of three runs of each in
  turn, after one warm-up message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import os
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from benchmarks.pull import _figure

DAY = dt.date(2026, 11, 1)
CONCURRENCY = 64
NAIVE_MESSAGES = 2_000
ROUNDS = 3  # mainland SMS: runs of ours and of the raw loop, in turn
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
            "YUNYING_SENDING": "true",  # a new store would write files only
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
        naive = _naive_flow(f"{url}/v1/sms", min(users, NAIVE_MESSAGES))  # starts Prefect too
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
        for latency in (0.0, 0.05):
            provider.set_latency(latency)
            suffix = "_latency_50ms" if latency else ""
            for cn in ("aliyun", "tencent"):
                figures[f"{cn}_sms_batch{suffix}"] = _cn_sms(url, cn, users, provider)
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
            "quiet_hours = false\ncross_campaign_cap = false\n"  # each figure reaches all
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
                    "email_opt_in": True,
                    "sms_opt_in": True,
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


def _cn_sms(url: str, name: str, count: int, provider: _Provider) -> dict[str, float]:
    from yunying.messaging.cn_sms import CnSmsChannel, prepare
    from yunying.messaging.cn_sms_config import CnSmsSettings
    from yunying.messaging.outbox import Claimed
    from yunying.messaging.providers import OutgoingMessage
    from yunying.messaging.render import Rendered

    settings = CnSmsSettings.model_validate(
        {
            "provider": name,
            "url": url,
            "access_key_id": "bench-id",
            "access_key_secret": "bench-secret",
            "sign_name": "运营示例",
            "sdk_app_id": "1400000001",
            "batch_size": 100 if name == "aliyun" else 200,
            "templates": {"winback": {"code": "SMS_1", "params": {"days": "{{ days_inactive }}"}}},
        }
    )
    messages = [
        OutgoingMessage(
            Claimed(i, f"bench:{DAY}:u{i:08d}", f"u{i:08d}", "sms", 1),
            f"+86139{i:08d}",
            Rendered("sms", text="It's been 10 days!"),
            "x",
            {"template": "winback", "days_inactive": 10},
        )
        for i in range(count)
    ]
    channel = CnSmsChannel(settings, timeout=30.0, concurrency=CONCURRENCY)
    channel.send(messages[:1])  # warm: the parameter caches, as in any send after the first
    ready, _ = prepare(settings, messages)
    requests = [channel.api.send_request(batch) for batch in channel.api.batches(ready)]
    ours_runs, raw_runs = [], []
    for _ in range(ROUNDS):  # in turn, medians: this machine's noise is larger than the gap
        before = provider.delivered_cn()
        started = time.perf_counter()
        # One call, as the flow's send task makes one per batch of settings.batch_size.
        sent = sum(1 for o in channel.send(messages) if o.status == "sent")
        ours_runs.append(sent / (time.perf_counter() - started))
        assert sent == count == provider.delivered_cn() - before, f"{name}: {sent} of {count}"
        started = time.perf_counter()  # as ours: from the call, session setup included
        asyncio.run(_raw_requests(requests))
        raw_runs.append(count / (time.perf_counter() - started))
    ours, raw = statistics.median(ours_runs), statistics.median(raw_runs)
    print(f"{name}_sms_batch: ours {ours:.0f} msg/s, raw aiohttp {raw:.0f} msg/s", file=sys.stderr)
    return _figure(round(ours), round(raw), ours / raw)


async def _raw_requests(requests: list[Any]) -> float:
    """Posts prepared requests with one session, a semaphore and gather; requests/s."""
    import aiohttp

    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(request: Any) -> None:
            async with (
                gate,
                session.post(request.url, data=request.body, headers=request.headers) as response,
            ):
                await response.read()
                assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(post(request) for request in requests))
        return len(requests) / (time.perf_counter() - started)


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

    def delivered_cn(self) -> int:
        return int(self._call("/stats")["cn_delivered"])

    def set_latency(self, seconds: float) -> None:
        self._call(f"/latency?seconds={seconds}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()


def _serve(ready: multiprocessing.Queue[int]) -> None:
    from aiohttp import web

    keys: set[str] = set()
    state = {"latency": 0.0}
    cn = {"delivered": 0}

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

    async def cn_send(request: web.Request) -> web.Response:
        """Aliyun's SendSms/SendBatchSms (a form) or Tencent's SendSms (JSON), answered with
        each one's documented success body; signatures are checked by the tests, not here."""
        body = await request.read()
        if state["latency"]:
            await asyncio.sleep(state["latency"])
        if "X-TC-Action" in request.headers:
            phones = json.loads(body)["PhoneNumberSet"]
            cn["delivered"] += len(phones)
            statuses = [
                {"PhoneNumber": p, "SerialNo": f"2019:{i}", "Code": "Ok", "Message": "send success"}
                for i, p in enumerate(phones)
            ]
            return web.json_response({"Response": {"SendStatusSet": statuses, "RequestId": "r"}})
        form = parse_qs(body.decode())
        numbers = form.get("PhoneNumberJson") or [json.dumps(form["PhoneNumbers"][0].split(","))]
        cn["delivered"] += len(json.loads(numbers[0]))
        return web.json_response({"Code": "OK", "Message": "OK", "BizId": "1^0", "RequestId": "r"})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"delivered": len(keys), "cn_delivered": cn["delivered"]})

    async def latency(request: web.Request) -> web.Response:
        state["latency"] = float(request.query["seconds"])
        return web.json_response(state)

    async def main() -> None:
        app = web.Application()
        app.add_routes(
            [
                web.post("/v1/{channel}", send),
                web.post("/", cn_send),
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
