"""`python -m benchmarks segments` at a tiny scale: it runs, and ours and the hand-written
SQL agree on every segment's count (the benchmark raises when they do not)."""

import pytest

from benchmarks import segments


@pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_segments_benchmark_runs_and_agrees_with_hand_written_sql(
    store: str, request: pytest.FixtureRequest
) -> None:
    if store == "postgresql":
        request.getfixturevalue("postgres_server")
    figures = segments.run(users=400, seed=1, events_per_user=5, store=store)
    assert figures[store]["ratio"] > 0
    assert set(figures) == {"benchmark", "users", "events", store}
