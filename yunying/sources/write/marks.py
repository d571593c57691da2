"""Where a source stands: its rejected records, its watermark and the files it has loaded."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from yunying.sources.config import FileSource
from yunying.sources.read.files import file_paths
from yunying.sources.validate.rows import Rejected
from yunying.sources.write.facts import store_time
from yunying.store.engine import is_postgres, upsert_insert, utcnow
from yunying.store.models import SourceFile, SourceWatermark


def reject(
    session: Session, source: str, run_id: str, rejects: Sequence[Rejected], only_new: bool = False
) -> None:
    """Set the rejects aside in one statement, the records travelling as one JSON array:
    compiling a multi-row VALUES cost more than the insert, and an executemany on SQLite
    gives up Python's GIL for every row (and waits for it behind the pull's other threads).
    A record is kept once per source, keyed by a hash of its raw text: a whole table or a
    look-back reads a bad row on every pull. (`only_new` is that rule, now always kept.)"""
    if not rejects:
        return
    if is_postgres(session):
        records, item = "json_array_elements(CAST(:rows AS json))", "value->>{}"
    else:
        records, item = "json_each(:rows)", "json_extract(value, '$[{}]')"
    # What no store's text can hold (NUL for PostgreSQL, a lone surrogate for either) becomes
    # U+FFFD, as undecodable bytes do.
    rows = []
    for rejected in rejects:
        raw = _UNSTORABLE.sub("\ufffd", rejected.raw)
        rows.append([raw, _UNSTORABLE.sub("\ufffd", rejected.reason), raw_hash(raw)])
    session.execute(
        text(
            "INSERT INTO rejected_records (source, run_id, raw, reason, raw_hash, created_at)"
            f" SELECT :source, :run_id, {item.format(0)}, {item.format(1)}, {item.format(2)},"
            f" :now FROM {records} WHERE true ON CONFLICT (source, raw_hash) DO NOTHING"
        ),
        {
            "source": source,
            "run_id": run_id,
            "now": store_time(session),
            "rows": json.dumps(rows, ensure_ascii=False),
        },
    )


def raw_hash(raw: str) -> str:
    """The key of a rejected record within its source (the migration keys old rows alike)."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def loaded_files(session: Session, source: FileSource, watermark: str | None) -> set[str]:
    """The files `source` has loaded whole. A store from before this list has only the
    watermark, the last file loaded in name order: those up to it are recorded first."""
    loaded = set(session.scalars(select(_FILES.c.path).where(_FILES.c.source == source.name)))
    if not loaded and watermark is not None:
        loaded = {path for path in file_paths(source) if path <= watermark}
        record_loaded_files(session, source.name, loaded)
    return loaded


def record_loaded_files(session: Session, source: str, paths: Collection[str]) -> None:
    if not paths:
        return
    now = utcnow()
    statement = upsert_insert(session, _FILES).values(
        [{"source": source, "path": path, "loaded_at": now} for path in paths]
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["source", "path"]))


# The tables, not the mapped classes: a pull reads and writes them with Core statements, and
# the first ORM statement in a process configures every mapper first.
_WATERMARKS = SourceWatermark.__table__
_FILES = SourceFile.__table__


def get_watermark(session: Session, source: str) -> str | None:
    return session.scalar(select(_WATERMARKS.c.watermark).where(_WATERMARKS.c.source == source))


def set_watermark(session: Session, source: str, watermark: str) -> None:
    statement = upsert_insert(session, _WATERMARKS).values(
        source=source, watermark=watermark, updated_at=utcnow()
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["source"],
            set_={
                "watermark": statement.excluded.watermark,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )
