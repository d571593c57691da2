"""A channel for providers that take several messages per call and answer per message
(mainland SMS, push): batching, retries with backoff, per-message verdicts, and the lookup
that settles a message whose outcome a crash left unknown."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Protocol, overload

import aiohttp

from yunying.http_client import backoff, retry_after_seconds
from yunying.messaging.outbox import Outcome
from yunying.messaging.providers import HttpRequest, OutgoingMessage
from yunying.messaging.status import SendOutcome, Verdict

_ATTEMPTS = attrgetter("claimed.attempts")
_UNANSWERED = (
    "no answer ({}) after the request went out: looked up at the provider before it is sent again"
)
_CLAIMED_ID = attrgetter("claimed.id")


@dataclass(slots=True)
class Prepared:
    """Messages that go out alike: one template with the same parameters (template
    providers), or a single message. Grouped rather than one object per message: a big
    send's per-message objects outlived the young collections and cost a full GC pass."""

    messages: list[OutgoingMessage]
    code: str = ""  # the provider's template, for template providers
    params: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> OutgoingMessage:
        """The message of a single-message Prepared (one-by-one providers, lookups)."""
        [message] = self.messages
        return message

    def like(self, messages: list[OutgoingMessage]) -> Prepared:
        return Prepared(messages, self.code, self.params)


def singles(groups: list[Prepared]) -> list[Prepared]:
    return [group.like([message]) for group in groups for message in group.messages]


def in_batches(groups: list[Prepared], size: int) -> list[list[Prepared]]:
    """Groups packed, in order, into calls of at most `size` messages (a group may be cut)."""
    batches: list[list[Prepared]] = []
    batch: list[Prepared] = []
    room = size
    for group in groups:
        messages, start = group.messages, 0
        while start < len(messages):
            part = messages[start : start + room]
            batch.append(group if len(part) == len(messages) else group.like(part))
            start, room = start + len(part), room - len(part)
            if not room:
                batches.append(batch)
                batch, room = [], size
    if batch:
        batches.append(batch)
    return batches


def size_of(batch: list[Prepared]) -> int:
    return sum(len(group.messages) for group in batch)


class Outcomes(Sequence[Outcome]):
    """A send's outcomes kept as columns of plain values, made into Outcome objects when
    read: 100,000 Outcome objects alive until the send's end outlived the young garbage
    collections and cost a full pass over the process's heap per send."""

    __slots__ = ("ids", "not_before", "reasons", "refs", "statuses")

    def __init__(self, outcomes: Iterable[Outcome] = ()) -> None:
        self.ids: list[int] = []
        self.statuses: list[SendOutcome] = []
        self.reasons: list[str | None] = []
        self.refs: list[str | None] = []
        self.not_before: list[dt.datetime | None] = []
        for o in outcomes:
            self.add(o.id, o.status, o.reason, o.provider_ref, o.not_before)

    def add(
        self,
        id: int,
        status: SendOutcome,
        reason: str | None = None,
        ref: str | None = None,
        not_before: dt.datetime | None = None,
    ) -> None:
        self.ids.append(id)
        self.statuses.append(status)
        self.reasons.append(reason)
        self.refs.append(ref)
        self.not_before.append(not_before)

    def join(self, other: Outcomes) -> None:
        self.ids += other.ids
        self.statuses += other.statuses
        self.reasons += other.reasons
        self.refs += other.refs
        self.not_before += other.not_before

    def __len__(self) -> int:
        return len(self.ids)

    def sent(self, ids: list[int], refs: list[str]) -> None:
        """Add sent messages, with the provider's reference of each."""
        self.ids += ids
        self.refs += refs
        self.statuses += ["sent"] * len(ids)
        self.reasons += [None] * len(ids)
        self.not_before += [None] * len(ids)

    def __iter__(self) -> Iterator[Outcome]:
        columns = (self.ids, self.statuses, self.reasons, self.refs, self.not_before)
        # tuple.__new__ over zip's rows: the tuple subclass made without a Python-level
        # __new__ per row, a third of the cost of reading 100,000 outcomes.
        return map(partial(tuple.__new__, Outcome), zip(*columns, strict=True))

    @overload
    def __getitem__(self, index: int) -> Outcome: ...

    @overload
    def __getitem__(self, index: slice) -> list[Outcome]: ...

    def __getitem__(self, index: int | slice) -> Outcome | list[Outcome]:
        if isinstance(index, slice):
            return list(self)[index]
        return Outcome(
            self.ids[index],
            self.statuses[index],
            self.reasons[index],
            self.refs[index],
            self.not_before[index],
        )


class BatchApi(Protocol):
    """A provider's side of a batch: how messages group into calls, each call's request, what
    each message's part of the answer means (one verdict per message, in the batch's order),
    and how an earlier send is found (`lookups` and `found` get a single-message Prepared)."""

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
    has no record of it. A call left unanswered after it may have reached the provider (a
    timeout, a hang-up) is not sent again by this run: its messages go back to the queue, to
    be looked up first when claimed again.
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

    def send(self, messages: list[OutgoingMessage]) -> Outcomes:
        from yunying.messaging.channels import run_coroutine  # channels.py imports this module

        ready, failed = self.prepare(messages)
        outcomes = Outcomes(failed)
        if ready:
            outcomes.join(run_coroutine(self._send_all(ready)))
        return outcomes

    async def _send_all(self, ready: list[Prepared]) -> Outcomes:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        gate = asyncio.Semaphore(self.concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            reclaimed = [
                group.like([m])
                for group in ready
                if max(map(_ATTEMPTS, group.messages)) > 1  # in C: most groups have none
                for m in group.messages
                if m.claimed.attempts > 1
            ]
            settled = await asyncio.gather(*(self._settle(session, gate, i) for i in reclaimed))
            outcomes = Outcomes(o for o in settled if o is not None)
            if outcomes:
                done = set(outcomes.ids)
                left = [
                    group.like([m for m in group.messages if m.claimed.id not in done])
                    for group in ready
                ]
                ready = [group for group in left if group.messages]
            sent = await asyncio.gather(
                *(self._send_batch(session, gate, b) for b in self.api.batches(ready))
            )
        for batch in sent:
            outcomes.join(batch)
        return outcomes

    async def _settle(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, item: Prepared
    ) -> Outcome | None:
        """`sent` when the provider has a record of the message; `retry` when it could not be
        asked (never a blind resend); None when it has no record."""
        id = item.message.claimed.id
        for lookup in self.api.lookups(item, dt.datetime.now(dt.UTC)):
            # A query only reads: one the provider could not answer is asked again here.
            for attempt in range(1, self.attempts + 1):
                status, body, retry_after, _ = await self._call(session, gate, lookup)
                if not (status is None or status == 429 or status >= 500):
                    break
                if attempt < self.attempts:
                    await asyncio.sleep(backoff(attempt, retry_after, max_delay=self.timeout))
            if status is None or status >= 300:
                return Outcome(id, "retry", reason=f"lookup before resending: HTTP {status}")
            earlier = self.api.found(item, body)
            if earlier is not None:
                return Outcome(id, "sent", provider_ref=earlier[:200])
        return None

    async def _send_batch(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, batch: list[Prepared]
    ) -> Outcomes:
        outcomes = Outcomes()
        pending = batch
        reasons: dict[int, str] = {}
        for attempt in range(1, self.attempts + 1):
            status, body, retry_after, may_have_reached = await self._call(
                session, gate, self.api.send_request(pending)
            )
            size = size_of(pending)
            if status is None and may_have_reached:
                for message in (m for group in pending for m in group.messages):
                    outcomes.add(message.claimed.id, "retry", _UNANSWERED.format(body.decode()))
                return outcomes
            if status is None:
                verdicts: list[tuple[Verdict, str]] = [("retry", body.decode())] * size
            else:
                verdicts = self.api.verdicts(pending, status, body)
            if len(verdicts) != size:
                raise ValueError(f"{len(verdicts)} verdicts for {size} messages")
            refused = all(verdict == "failed" for verdict, _ in verdicts)
            if self.api.split_refused and size > 1 and refused:
                one_by_one = await asyncio.gather(
                    *(self._send_batch(session, gate, [one]) for one in singles(pending))
                )
                for one in one_by_one:
                    outcomes.join(one)
                return outcomes
            again: list[Prepared] = []
            start = 0
            for group in pending:
                end = start + len(group.messages)
                answers = verdicts[start:end]
                kinds, details = zip(*answers, strict=True)
                if kinds.count("sent") == len(kinds) and max(map(len, details)) <= 200:
                    # All sent, the common case: the columns filled in C, not message by message.
                    outcomes.sent(list(map(_CLAIMED_ID, group.messages)), list(details))
                    start = end
                    continue
                retry = []
                sent_ids: list[int] = []
                refs: list[str] = []
                for message, (verdict, detail) in zip(group.messages, answers, strict=True):
                    if verdict == "sent":
                        sent_ids.append(message.claimed.id)
                        refs.append(detail[:200])
                    elif verdict == "retry":
                        retry.append(message)
                        reasons[message.claimed.id] = detail
                    else:
                        outcomes.add(message.claimed.id, verdict, detail[:200])
                outcomes.sent(sent_ids, refs)
                if retry:
                    again.append(group.like(retry))
                start = end
            pending = again
            if not pending:
                return outcomes
            if attempt < self.attempts:
                await asyncio.sleep(backoff(attempt, retry_after, max_delay=self.timeout))
        for id in (m.claimed.id for group in pending for m in group.messages):
            outcomes.add(id, "retry", reasons[id][:200])
        return outcomes

    async def _call(
        self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, request: HttpRequest
    ) -> tuple[int | None, bytes, float | None, bool]:
        """The answer's status, body and Retry-After; with no answer, None, the error's name,
        and whether the request may have reached the provider (all but a refused connection)."""
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
                    True,
                )
        except aiohttp.ClientConnectorError as exc:
            return None, type(exc).__name__.encode(), None, False
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__.encode(), None, True
