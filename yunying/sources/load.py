"""Records to stored rows for code outside the pull (benchmarks, tests building a store):
validate them, then write them, as a pull does batch by batch."""

from yunying.sources.validate.batch import validate
from yunying.sources.write import load_events, load_rows

__all__ = ["load_events", "load_rows", "validate"]
