"""A channel for providers that take several messages per call and answer per message
(mainland SMS, push): batching, retries with backoff, per-message verdicts, and the lookup
that settles a message whose outcome a crash left unknown."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import aiohttp

from yunying.http_client import backoff, retry_after_seconds
from yunying.messaging.outbox import Outcome
from yunying.messaging.providers import HttpRequest, OutgoingMessage

Verdict = Literal["sent", "retry", "failed", "bounced"]


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 us more a message
class Prepared:
    message: OutgoingMessage
    code: str = ""  # the provider's template, for template providers
    params: dict[str, str] = field(default_factory=dict)
    # Messages with equal groups may share a call (template providers: code and values).
    group: Hashable = None


class BatchApi(Protocol):
    """A provider's side of a batch: how messages group into calls, each call's request, what
    each message's part of the answer means, and how an earlier send is found."""

    def batches(self, ready: list[Prepared]) -> list[list[Prepared]]: ...

    def send_request(self, batch: list[Prepared]) -> HttpRequest: ...

    def verdicts(
        self, batch: list[Prepared], status: int, body: bytes
    ) -> list[tuple[Verdict, str]]: ...

    def lookups(self, item: Prepared, now: dt.datetime) -> list[HttpRequest]: ...

    def found(self, item: Prepared, body: bytes) -> str | None: ...

    # Whether a batch refused as a whole may be one bad message's fault (Aliyun), so it is
    # worth sending again one by one; not when the provider answers per message (Tencent).
    split_refused: bool


class BatchChannel:
    """Sends messages in the provider's batches, `concurrency` calls at a time over one
    aiohttp session.

    A 5xx, 429, flow-control code or lost connection is tried again with backoff, up to
    `attempts` times, then the message goes back to the queue; a refusal fails the message
    with the provider's code (or bounces it: a dead address is suppressed). A batch refused
    as a whole is sent again one message at a time when the provider says so
    (`split_refused`), so one bad address fails alone. A message
    claimed a second time is first looked up at the provider, and only sent when the provider
    has no record of it.
    """

    def __init__(
        self,
        api: BatchApi,
        prepare: Callable[[list[OutgoingMessage]], tuple[list[Prepared], list[Outcome]]],
        timeout: float,
        concurrency: int,
        attempts: int = 4,
    ) -> None:
        self.api = api
        self.prepare = prepare
        self.timeout = timeout
        self.concurrency = concurrency
        self.attempts = attempts

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        from yunying.messaging.channels import run_coroutine  # channels.py imports this module

        ready, outcomes = self.prepare(messages)
        return outcomes + run_coroutine(self._send_all(ready)) if ready else outcomes

    async def _send_all(self, ready: list[Prepared]) -> list[Outcome]:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        gate = asyncio.Semaphore(self.concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            reclaimed = [i for i in ready if i.message.claimed.attempts > 1]
            settled = await asyncio.gather(*(self._settle(session, gate, i) for i in reclaimed))
            outcomes = [o for o in settled if o is not None]
            done = {o.id for o in outcomes}
            to_send = [i for i in ready if i.message.claimed.id not in done]
            sent = await asyncio.gather(
                *(self._send_batch(session, gate, b) for b in self.api.batches(to_send))
            )
        return outcomes + [o for batch in sent for o in batch]

    async def _settle(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, item: Prepared
    ) -> Outcome | None:
        """`sent` when the provider has a record of the message; `retry` when it could not be
        asked (never a blind resend); None when it has no record."""
        id = item.message.claimed.id
        for lookup in self.api.lookups(item, dt.datetime.now(dt.UTC)):
            status, body, _ = await self._call(session, gate, lookup)
            if status is None or status >= 300:
                return Outcome(id, "retry", reason=f"lookup before resending: HTTP {status}")
            earlier = self.api.found(item, body)
            if earlier is not None:
                return Outcome(id, "sent", provider_ref=earlier[:200])
        return None

    async def _send_batch(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, batch: list[Prepared]
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending = batch
        reasons: dict[int, str] = {}
        for attempt in range(1, self.attempts + 1):
            status, body, retry_after = await self._call(
                session, gate, self.api.send_request(pending)
            )
            if status is None:
                verdicts: list[tuple[Verdict, str]] = [("retry", body.decode())] * len(pending)
            else:
                verdicts = self.api.verdicts(pending, status, body)
            refused = all(verdict == "failed" for verdict, _ in verdicts)
            if self.api.split_refused and len(pending) > 1 and refused:
                singles = await asyncio.gather(
                    *(self._send_batch(session, gate, [item]) for item in pending)
                )
                return outcomes + [o for one in singles for o in one]
            again = []
            for item, (verdict, detail) in zip(pending, verdicts, strict=True):
                id = item.message.claimed.id
                if verdict == "sent":
                    outcomes.append(Outcome(id, "sent", provider_ref=detail[:200]))
                elif verdict == "retry":
                    again.append(item)
                    reasons[id] = detail
                else:
                    outcomes.append(Outcome(id, verdict, reason=detail[:200]))
            pending = again
            if not pending:
                return outcomes
            if attempt < self.attempts:
                await asyncio.sleep(backoff(attempt, retry_after, max_delay=self.timeout))
        ids = [i.message.claimed.id for i in pending]
        return outcomes + [Outcome(id, "retry", reason=reasons[id][:200]) for id in ids]

    async def _call(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, request: HttpRequest
    ) -> tuple[int | None, bytes, float | None]:
        try:
            async with (
                gate,
                session.request(
                    request.method, request.url, data=request.body, headers=request.headers
                ) as response,
            ):
                body = await response.read()
                return (
                    response.status,
                    body,
                    retry_after_seconds(response.headers.get("Retry-After")),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__.encode(), None
