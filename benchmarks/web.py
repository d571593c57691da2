"""One-click unsubscribe POSTs against `yunying web` on PostgreSQL, beside a bare Starlette
handler doing the same single-row insert.

Each server runs in a process of its own (uvicorn, one worker); the load generator is an
aiohttp client on loopback with CONCURRENCY requests in flight, one POST per user, and a
retry (after 50 ms) for any answer but 200: a 503 while the store is away is retried.
Figures:

- `one_click`: our requests/s vs the bare handler's (ratio);
- `p99_ms`: our 99th percentile latency vs the bare handler's;
- `lost`: POSTs answered 200 whose user is not in the suppression list afterwards (must be 0);
- `store_drop_*`: a third pass where every store connection of the service is terminated
  (pg_terminate_backend) halfway: the answers other than 200 that the client retried, and
  again `lost`.
  The shared PostgreSQL server itself is not restarted (other work uses it); dropping the
  connections is what a restart does to the service, which reconnects (pool_pre_ping).

PostgreSQL: $YUNYING_BENCH_POSTGRES_URL, default the test server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.pull import _figure

POSTGRES_URL = os.environ.get(
    "YUNYING_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CONCURRENCY = 32
APP_NAME = "yunying_web_bench"


def run(users: int, seed: int, postgres_url: str | None = None) -> dict[str, Any]:
    global POSTGRES_URL
    POSTGRES_URL = postgres_url or POSTGRES_URL
    work = Path(tempfile.mkdtemp(prefix="yunying-bench-web-"))
    bare = _pass(work, users, "bare")
    ours = _pass(work, users, "ours")
    dropped = _pass(work, users, "ours", drop_store=True)
    return {
        "benchmark": "web",
        "users": users,
        "one_click": _figure(ours["rps"], bare["rps"], ours["rps"] / bare["rps"]),
        "p99_ms": _figure(ours["p99_ms"], bare["p99_ms"], ours["p99_ms"] / bare["p99_ms"]),
        "lost": ours["lost"] + bare["lost"],
        "store_drop_retried_answers": dropped["errors"],
        "store_drop_lost": dropped["lost"],
        "store_drop_rps": round(dropped["rps"], 1),
    }


@contextmanager
def _schema() -> Iterator[str]:
    from yunying.store.migrate import upgrade

    schema = f"bench_web_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}&application_name={APP_NAME}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _fill(url: str, users: int) -> list[str]:
    from yunying.store.engine import create_store_engine, session_scope
    from yunying.store.models import User

    now = dt.datetime(2026, 11, 1)
    ids = [f"u{i:08d}" for i in range(users)]
    engine = create_store_engine(url)
    with session_scope(engine) as session:
        session.execute(
            sa.insert(User),
            [
                {
                    "user_id": user,
                    "signup_at": now,
                    "signup_day": now.date(),
                    "timezone": "Asia/Shanghai",
                    "locale": "en",
                    "email": f"{user}@example.com",
                    "holdout_bucket": i,
                    "updated_at": now,
                }
                for i, user in enumerate(ids)
            ],
        )
    engine.dispose()
    return ids


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pass(work: Path, users: int, kind: str, drop_store: bool = False) -> dict[str, Any]:
    from yunying.config import Settings
    from yunying.messaging.unsubscribe import make_token, unsubscribe_key

    with _schema() as url:
        ids = _fill(url, users)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "YUNYING_HOME": str(work / kind),
            "YUNYING_DATABASE_URL": url,
            "YUNYING_PUBLIC_URL": base,
            "YUNYING_WEB__RATE_LIMIT_PER_MINUTE": str(10 * users + 1000),
            "BENCH_WEB_URL": url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        if kind == "ours":
            key = unsubscribe_key(Settings(home=work / kind, database_url=url))
            links = [f"{base}/unsubscribe?token={make_token(key, u, 'email')}" for u in ids]
            command = [sys.executable, "-m", "cli.main", "web", "--port", str(port)]
        else:
            links = [f"{base}/unsubscribe?u={u}" for u in ids]
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.web:bare_app",
                "--factory",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            _wait_until_up(base, server)
            result = asyncio.run(_load(links, url if drop_store else None))
        finally:
            server.terminate()
            server.wait(timeout=30)
        result["lost"] = _lost(url, [u for u, ok in zip(ids, result.pop("ok"), strict=True) if ok])
        return result


def _wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start within 60 s")


async def _load(links: list[str], drop_url: str | None) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    ok = [False] * len(links)
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(links)):
        queue.put_nowait(index)
    half = len(links) // 2
    done = 0
    dropped = False

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, done, dropped
        while True:
            try:
                index = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for _attempt in range(200):
                started = time.perf_counter()
                try:
                    async with session.post(
                        links[index],
                        data=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                        allow_redirects=False,
                    ) as answer:
                        await answer.read()
                        status = answer.status
                except aiohttp.ClientError:
                    status = 0
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                    ok[index] = True
                    break
                errors += 1
                await asyncio.sleep(0.05)
            done += 1
            if drop_url and not dropped and done >= half:
                dropped = True
                asyncio.get_running_loop().run_in_executor(None, _drop_connections)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {"rps": sum(ok) / elapsed, "p99_ms": p99 * 1000, "errors": errors, "ok": ok}


def _drop_connections(seconds: float = 1.0) -> None:
    """What a store restart does to the service: for `seconds`, every connection it holds
    (idle or in the middle of a statement) is terminated as soon as it appears."""
    admin = sa.create_engine(POSTGRES_URL)
    deadline = time.monotonic() + seconds
    with admin.connect() as connection:
        while time.monotonic() < deadline:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": APP_NAME},
            )
            connection.commit()
            time.sleep(0.005)
    admin.dispose()


def _lost(url: str, accepted: list[str]) -> int:
    engine = sa.create_engine(url.replace(f"&application_name={APP_NAME}", ""))
    with engine.connect() as connection:
        present = set(connection.execute(sa.text("SELECT user_id FROM suppressions")).scalars())
    engine.dispose()
    return sum(1 for user in accepted if user not in present)


def bare_app() -> Any:
    """The baseline: a bare Starlette handler doing the same single-row insert."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from yunying.store.engine import create_store_engine

    engine = create_store_engine(os.environ["BENCH_WEB_URL"])
    insert = sa.text(
        "INSERT INTO suppressions (user_id, channel, reason, created_at) "
        "VALUES (:user, 'email', 'unsubscribed', now()) ON CONFLICT DO NOTHING"
    )

    async def unsubscribe(request: Request) -> PlainTextResponse:
        await request.body()
        user = request.query_params["u"]

        def write() -> None:
            with engine.begin() as connection:
                connection.execute(insert, {"user": user})

        await run_in_threadpool(write)
        return PlainTextResponse("unsubscribed\n")

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/unsubscribe", unsubscribe, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )
