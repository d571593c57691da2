import threading
from collections.abc import Iterator

import pytest

from yunying.sources.pull import read_ahead


def test_items_arrive_in_order() -> None:
    assert list(read_ahead(iter(range(100)))) == list(range(100))


def test_a_producer_error_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ConnectionError("source went away")

    seen = []
    with pytest.raises(ConnectionError, match="source went away"):
        for item in read_ahead(failing()):
            seen.append(item)
    assert seen == [1]


def test_the_producer_stops_when_the_consumer_does() -> None:
    produced = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    items = read_ahead(endless(), depth=2)
    assert next(items) == 0
    items.close()
    assert len(produced) <= 5  # one handed over, at most `depth` queued, one being put
    assert not any(t.name == "read-ahead" for t in threading.enumerate())


def test_a_stopped_consumer_stops_a_chain_of_read_aheads() -> None:
    def endless() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    def doubled() -> Iterator[int]:
        for n in read_ahead(endless(), depth=1):
            yield 2 * n

    items = read_ahead(doubled(), depth=1)
    assert [next(items), next(items)] == [0, 2]
    items.close()
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
