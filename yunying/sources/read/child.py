"""Read a source in a Python process of its own, its batches handed over a pipe.

An HTTP pull waits on the API for every page, and the next page is only asked for once
the last one is read. In the pulling process, that reading shared Python's GIL with
validation, and each wait for the GIL held up the next request, so the API sat idle; in a
process of its own the reading overlaps validation. The child is started with `python -m` (not
multiprocessing, which would import the parent's main module again, Prefect included).

The protocol, pickles over the child's stdin and stdout: the parent writes one `ReadRequest`
and closes stdin; the child answers with a `BatchRead` per batch, then one `ReadDone`, or a
`ReadFailed` carrying the exception that stopped the reading (or a TransientError naming
it, if it cannot be pickled). A pipe that ends before either is a child that died.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
from collections.abc import Collection, Iterator
from typing import BinaryIO, NamedTuple, cast

from yunying.errors import TransientError
from yunying.sources.config import SourceConfig
from yunying.sources.read import Batch, read_source


class ReadRequest(NamedTuple):
    source: SourceConfig
    watermark: str | None
    loaded_files: set[str]


class BatchRead(NamedTuple):
    batch: Batch


class ReadDone(NamedTuple):
    pass


class ReadFailed(NamedTuple):
    error: Exception


Answer = BatchRead | ReadDone | ReadFailed


def read_in_child(
    source: SourceConfig, watermark: str | None, loaded_files: Collection[str] = ()
) -> Iterator[Batch]:
    """`read_source`'s batches, read in a child process that stays about a batch ahead
    (the pipe holds it back until the last one is taken); its errors are raised here, and
    it is stopped when the caller stops."""
    child = subprocess.Popen(
        [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    request, answers = cast(BinaryIO, child.stdin), cast(BinaryIO, child.stdout)
    try:
        with request:
            pickle.dump(ReadRequest(source, watermark, set(loaded_files)), request)
        while True:
            try:
                answer: Answer = pickle.load(answers)
            except (EOFError, pickle.UnpicklingError):  # it died, perhaps mid-batch
                raise TransientError(
                    f"source {source.name}: its reader process ended (exit code {child.wait()})"
                ) from None
            if isinstance(answer, ReadDone):
                return
            if isinstance(answer, ReadFailed):
                raise answer.error
            yield answer.batch
    finally:
        child.kill()
        child.wait()
        answers.close()


def _serve(request: BinaryIO, answer: BinaryIO) -> None:
    asked: ReadRequest = pickle.load(request)
    try:
        for batch in read_source(asked.source, asked.watermark, asked.loaded_files):
            pickle.dump(BatchRead(batch), answer, pickle.HIGHEST_PROTOCOL)
            answer.flush()
    except Exception as exc:
        pickle.dump(ReadFailed(_picklable(exc)), answer)
    else:
        pickle.dump(ReadDone(), answer)
    answer.flush()


def _picklable(exc: Exception) -> Exception:
    """`exc` if it survives a round trip through pickle, else a TransientError naming it
    (its cause does not cross the pipe either way)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return TransientError(f"{type(exc).__name__}: {exc}")
    return exc


if __name__ == "__main__":
    # Through the module's own name, so that its answers pickle as that module's classes
    # (run with -m, this file is __main__, which the parent cannot import).
    from yunying.sources.read.child import _serve as serve

    with contextlib.suppress(BrokenPipeError):  # the parent stopped reading: it is done
        serve(sys.stdin.buffer, sys.stdout.buffer)
