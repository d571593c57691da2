"""Pull one source into the store, one committed transaction per batch.

The watermark is written in the same transaction as the batch it covers, so a pull killed
mid-way resumes after the last committed batch and the upserts absorb any overlap.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Engine

from yunying.config import Settings
from yunying.sources.load import (
    LoadStats,
    get_watermark,
    load_rows,
    reject,
    set_watermark,
    validate,
)
from yunying.sources.readers import read_source
from yunying.store.engine import session_scope


def pull_source(
    engine: Engine,
    settings: Settings,
    name: str,
    run_id: str,
    on_batch: Callable[[LoadStats], None] | None = None,
) -> LoadStats:
    source = settings.source(name)
    with session_scope(engine) as session:
        watermark = get_watermark(session, name)
    total = LoadStats(watermark=watermark)
    for batch in read_source(source, watermark):
        rows, rejects = validate(source.entity, batch.records, source.mapping, settings.zone)
        rejects += batch.unreadable
        stats = LoadStats(pulled=len(batch.records) + len(batch.unreadable), rejected=len(rejects))
        for _, reason in rejects:
            field_name = reason.split(":", 1)[0]
            stats.reasons[field_name] = stats.reasons.get(field_name, 0) + 1
        with session_scope(engine) as session:
            stats.inserted, stats.updated = load_rows(
                session,
                source.entity,
                rows,
                uuid.uuid4().hex,
                settings.lifecycle.activity_events,
            )
            reject(session, name, run_id, rejects)
            if batch.watermark is not None:
                set_watermark(session, name, batch.watermark)
                stats.watermark = batch.watermark
        total.add(stats)
        if on_batch is not None:
            on_batch(total)
    return total
