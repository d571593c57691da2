"""Reading file sources: CSV or JSON lines, gzipped or not, file by file in name order."""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import zlib
from collections.abc import Collection, Iterator

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
    complete copy is read on the next pull), and the source goes on with its next file."""
    for path in file_paths(source):
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
            yield {}, Rejected(line[:2000], "json", "not an object")
        else:
            yield record, None
