"""The process settings a pull runs under, set by the task that owns the process.

Contract: inside `pull_process()`, Python's garbage collector looks at young objects every
200,000 new containers instead of every 700, and threads hand the GIL over every 0.5 ms instead
of every 5 ms; both are restored on exit. A pull makes a tuple per row, and collections walking
them hold the GIL while the reader and writer threads wait; the writer gives the GIL up at each
statement and then waits for it behind validation. Rows are freed by reference counting once
their batch is written, so the rarer collections only put off finding cycles. Process-wide:
the pull flow runs one pull at a time. Kept because the pull benchmark shows they pay.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_COLLECTION_EVERY = 200_000
SWITCH_INTERVAL_S = 0.0005


@contextmanager
def pull_process() -> Iterator[None]:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *thresholds[1:])
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
