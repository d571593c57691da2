"""Reading file sources: CSV or JSON lines, gzipped or not, file by file in name order."""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path

from yunying.errors import ConfigError
from yunying.sources.config import FileSource
from yunying.sources.read.batch import Batch, Record
from yunying.sources.validate.rows import Rejected


def file_paths(source: FileSource) -> list[str]:
    return sorted(glob.glob(source.path))


def read_file(source: FileSource, loaded: Collection[str]) -> Iterator[Batch]:
    """Files are read in name order, skipping those in `loaded`; a file's last batch has its
    path as the watermark, so the file is recorded as loaded with that batch. A file that
    cannot be read whole (a truncated or corrupt .gz, a file gone meanwhile) is set aside:
    the rows read before the break load as usual, the file is not recorded as loaded (so a
    complete copy is read on the next pull), and the source goes on with its next file.
    A `path` that matches no file at all, loaded or not, is a ConfigError: read as empty, a
    mistyped path would pull nothing, night after night, as if all were well."""
    paths = file_paths(source)
    if not paths:
        raise ConfigError(f"source {source.name}: {_nothing_at(source.path)}")
    for path in paths:
        if path in loaded:
            continue
        records: list[Record] = []
        unreadable: list[Rejected] = []
        read = 0
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as raw:
                # utf-8-sig: a byte order mark (spreadsheets export CSV with one) is skipped.
                stream = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
                rows = _csv_rows(stream) if source.format == "csv" else _jsonl_rows(stream)
                for record, bad in rows:
                    if bad is not None:
                        unreadable.append(bad)
                    else:
                        records.append(record)
                    read += 1
                    if len(records) + len(unreadable) >= source.batch_size:
                        yield Batch(records, None, unreadable)
                        records, unreadable = [], []
        except (OSError, EOFError, zlib.error, csv.Error) as exc:
            yield Batch(records, None, unreadable, set_aside=[(path, _broken(exc, read))])
            continue
        yield Batch(records, path, unreadable)


def _nothing_at(pattern: str) -> str:
    """What is wrong with a `path` that matches no file, and which setting to fix."""
    where = Path(pattern)
    shown = pattern if where.is_absolute() else f"{pattern} (from {Path.cwd()})"
    magic = glob.has_magic(pattern)
    what = f"no file matches {shown}" if magic else f"no such file: {shown}"
    folder = next((p for p in where.parents if not glob.has_magic(str(p))), where)
    if not folder.is_dir():
        what += f"; the folder {folder} does not exist"
    return f"{what}. Fix the source's `path`, or put the export there first"


def _broken(exc: BaseException, read: int) -> str:
    """Why a file was set aside, and what became of the rows read before the break."""
    # A reader stops at a line end, so a line the break cut short is not among those rows.
    loaded = f"its first {read:,} rows loaded" if read else "none of its rows loaded"
    what = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError):
        what = f"truncated ({what})"
    return (
        f"cannot be read whole: {what}; {loaded} (bad ones rejected as usual); it is"
        " not marked loaded, so it is read again on the next pull"
    )


def _csv_rows(stream: io.TextIOWrapper) -> Iterator[tuple[Record, Rejected | None]]:
    for row in csv.DictReader(stream):
        if None in row:
            yield {}, Rejected(json.dumps(row, default=str), "csv", "more fields than the header")
        else:
            yield dict(row), None


def _jsonl_rows(stream: io.TextIOWrapper) -> Iterator[tuple[Record, Rejected | None]]:
    for line in stream:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield {}, Rejected(line[:2000], "json", exc.msg)
            continue
        if not isinstance(record, dict):
            yield {}, Rejected(line[:2000], "json", "not a JSON object")
        else:
            yield record, None
