"""Read a source in batches. Each reader yields `Batch`es of raw records (dicts) with the
watermark to store once the batch is committed; memory holds one batch at a time."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from yunying.sources.config import HttpSource, SourceConfig, SqlSource
from yunying.sources.read.batch import Batch
from yunying.sources.read.files import read_file
from yunying.sources.read.http import read_http
from yunying.sources.read.sql import read_sql

__all__ = ["Batch", "read_source"]


def read_source(
    source: SourceConfig, watermark: str | None, loaded_files: Collection[str] = ()
) -> Iterator[Batch]:
    """The source's records from the watermark on; a file source reads the files it has not
    loaded whole (`loaded_files`), whatever their names."""
    if isinstance(source, SqlSource):
        return read_sql(source, watermark)
    if isinstance(source, HttpSource):
        return read_http(source, watermark)
    return read_file(source, loaded_files)
