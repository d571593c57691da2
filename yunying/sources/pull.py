"""Pull one source into the store, one committed transaction per batch.

The watermark is written in the same transaction as the batch it covers, so a pull killed
mid-way resumes after the last committed batch and the upserts absorb any overlap. While a
batch is written, the next ones are validated in another thread (and read in a third, or in
a process of its own for an API, when reading waits on the network), so the source, Python
and the store work at the same time; a few batches wait in memory, never the whole source.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session

from yunying.errors import PermanentError
from yunying.sources.config import FileSource, HttpSource, PullRules, SourceConfig, SqlSource
from yunying.sources.mapping import check_mapping, columns_of
from yunying.sources.read import Batch, read_source
from yunying.sources.read.child import read_in_child
from yunying.sources.validate.batch import Rejects, validate
from yunying.sources.validate.rows import EventRow, Rejected, StoreRow
from yunying.sources.write import load_events, load_rows, refresh_statistics
from yunying.sources.write.batch import EventsText
from yunying.sources.write.marks import (
    get_watermark,
    loaded_files,
    record_loaded_files,
    reject,
    set_watermark,
)
from yunying.sources.write.text import events_text
from yunying.store.days_zone import check_days_zone
from yunying.store.engine import session_scope

log = logging.getLogger("yunying.sources")


@dataclass
class LoadStats:
    pulled: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    watermark: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    set_aside: list[str] = field(default_factory=list)  # "<file>: <why>", files not read whole
    fast_path_fallbacks: int = 0  # batches that left the PostgreSQL fast path (load_events)

    def add(self, other: LoadStats) -> None:
        self.pulled += other.pulled
        self.inserted += other.inserted
        self.updated += other.updated
        self.rejected += other.rejected
        self.watermark = other.watermark or self.watermark
        self.set_aside += other.set_aside
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count


@dataclass
class CheckedBatch:
    """A batch validated and ready to store: its figures, its rows (events as the store's bulk
    text, so the writer's thread only sends it) and its rejects, `again` holding those that an
    earlier pull read too (stored once)."""

    stats: LoadStats
    rows: list[StoreRow] | EventsText
    rejects: Rejects
    again: Rejects


def pull_source(
    engine: Engine,
    source: SourceConfig,
    rules: PullRules,
    run_id: str,
    on_batch: Callable[[LoadStats], None] | None = None,
) -> LoadStats:
    """Pull `source` into the store from where its last pull ended, under `rules`: read,
    validate, write, a batch at a time. Rejects are recorded under `run_id`; `on_batch` hears
    the running totals after each batch."""
    with session_scope(engine) as session:
        check_days_zone(session, rules.zone.key)
        watermark = get_watermark(session, source.name)
        loaded = (
            loaded_files(session, source, watermark) if isinstance(source, FileSource) else set()
        )
    total = LoadStats(watermark=watermark)
    batches = read_batches(source, watermark, loaded)
    postgres = engine.dialect.name == "postgresql"
    checked = check_batches(source, rules, batches, reread_test(source, watermark), postgres)
    fell_back: list[str] = []  # why each batch that did left the PostgreSQL fast path
    written = 0
    for batch in read_ahead(checked):
        with session_scope(engine) as session:
            write_batch(session, source, rules, run_id, batch, fell_back.append)
        written += 1
        total.add(batch.stats)
        if on_batch is not None:
            on_batch(total)
    with session_scope(engine) as session:
        refresh_statistics(session, source.entity, total.inserted)
    if fell_back:  # once per pull: a slower path taken is a regression worth seeing
        total.fast_path_fallbacks = len(fell_back)
        log.warning(
            "source %s: %d of %d batches took the staging table instead of the direct COPY (%s)",
            source.name,
            len(fell_back),
            written,
            "; ".join(sorted(set(fell_back))),
        )
    return total


def check_batches(
    source: SourceConfig,
    rules: PullRules,
    batches: Iterator[Batch],
    is_reread: Callable[[str], bool] | None,
    postgres: bool,
) -> Iterator[CheckedBatch]:
    """Each batch validated; the mapping is checked against the first batch's columns and a
    mostly rejected batch stops the pull, both before anything of it is stored."""
    checked = False
    for batch in batches:
        if not checked and batch.records:
            exact = batch.columns is not None or (
                isinstance(source, FileSource) and source.format == "csv"
            )
            check_mapping(source, columns_of(batch.records, batch.columns), exact)
            checked = True
        rows, rejects = validate(
            source.entity,
            batch.records,
            source.mapping,
            rules.zone,
            batch.columns,
            rules.defaults,
            source.naive_zone,
        )
        rejects += batch.unreadable
        again: Rejects = []
        if is_reread is not None and rejects:
            again = [r for r in rejects if is_reread(r.raw)]
            rejects = [r for r in rejects if not is_reread(r.raw)]
        records = len(batch.records) + len(batch.unreadable)
        refuse_mostly_rejected(source.name, records, rejects, rules.max_rejected_share)
        stats = LoadStats(
            pulled=records,
            rejected=len(rejects) + len(again),
            watermark=batch.watermark,
            set_aside=[f"{path}: {why}" for path, why in batch.set_aside],
        )
        for rejected in rejects + again:
            stats.reasons[rejected.field] = stats.reasons.get(rejected.field, 0) + 1
        # A file set aside is kept with the rejects, where people look for what did not load.
        rejects += [
            Rejected(json.dumps({"file": path}), "file", why) for path, why in batch.set_aside
        ]
        if source.entity == "events":
            yield CheckedBatch(
                stats, events_text(cast(list[EventRow], rows), postgres), rejects, again
            )
        else:
            yield CheckedBatch(stats, rows, rejects, again)


def write_batch(
    session: Session,
    source: SourceConfig,
    rules: PullRules,
    run_id: str,
    batch: CheckedBatch,
    on_fallback: Callable[[str], None],
) -> None:
    """Store a checked batch, its rejects and the watermark it reaches, in `session`'s
    transaction: a pull killed after it resumes after it."""
    stats = batch.stats
    if isinstance(batch.rows, EventsText):
        stats.inserted = load_events(session, batch.rows, rules.activity_events, on_fallback)
    else:
        stats.inserted, stats.updated = load_rows(
            session,
            source.entity,
            batch.rows,
            uuid.uuid4().hex,
            orders_are_activity=rules.orders_are_activity,
            currency=rules.currency,
            exchange_rates=rules.exchange_rates,
        )
    reject(session, source.name, run_id, batch.rejects)
    reject(session, source.name, run_id, batch.again, only_new=True)
    if stats.watermark is not None:
        set_watermark(session, source.name, stats.watermark)
        if isinstance(source, FileSource):  # the batch ended a file: its path
            record_loaded_files(session, source.name, [stats.watermark])


def reread_test(source: SourceConfig, watermark: str | None) -> Callable[[str], bool] | None:
    """For an incremental SQL source, whether a rejected record (its raw JSON) is a row an
    earlier pull read too: `>=` the watermark reads the rows at it again, and rows whose
    column is NULL are read on every pull. Their rejects are stored once, not each time."""
    column = source.incremental_column if isinstance(source, SqlSource) else None
    if column is None or watermark is None:
        return None
    mark = watermark

    def at_or_before(raw: str) -> bool:
        try:
            value = json.loads(raw).get(column)
        except (ValueError, AttributeError):
            return False
        if value is None:
            return True
        try:
            return float(value) <= float(mark)
        except (TypeError, ValueError):
            return str(value) <= mark

    return at_or_before


# Fewer records than this in a batch say too little to stop a pull on.
MIN_RECORDS_TO_JUDGE = 100


def refuse_mostly_rejected(source: str, records: int, rejects: Rejects, share: float) -> None:
    """PermanentError, before the batch is stored, when more than `share` of a batch of at
    least MIN_RECORDS_TO_JUDGE records is rejected: a wrong mapping or format, not bad rows."""
    if records < MIN_RECORDS_TO_JUDGE or len(rejects) <= share * records:
        return
    reasons: dict[str, int] = {}
    for rejected in rejects:
        reasons[rejected.reason] = reasons.get(rejected.reason, 0) + 1
    top = "; ".join(f"{n} x {why}" for why, n in sorted(reasons.items(), key=lambda r: -r[1])[:3])
    raise PermanentError(
        f"source {source}: {len(rejects)} of {records} records of a batch rejected ({top});"
        f" the pull stopped before storing the batch. Fix the source's mapping or format, or"
        f" raise the setting max_rejected_share (now {share})"
    )


def read_batches(
    source: SourceConfig, watermark: str | None, loaded: Collection[str]
) -> Iterator[Batch]:
    """The source's batches, read where the reading overlaps validation best: an API in a
    process of its own (`read_in_child` says why), a database server in a thread of its
    own (its driver waits for the network without the GIL), a file or a SQLite database in
    the validating thread (in a thread of its own, that reading only adds hand-overs of
    the GIL, for no waiting to overlap)."""
    if isinstance(source, HttpSource):
        return read_in_child(source, watermark, loaded)
    batches = read_source(source, watermark, loaded)
    if isinstance(source, SqlSource) and make_url(source.url).get_backend_name() != "sqlite":
        return read_ahead(batches, depth=1)
    return batches


T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` in a thread, up to `depth` ahead of the consumer; the producer's
    exceptions are raised here, and the producer stops when the consumer does."""
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        put(_DONE)

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join()
