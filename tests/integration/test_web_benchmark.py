"""`python -m benchmarks web` at a tiny scale: it runs, and no accepted POST is lost, even
with the service's store connections dropped halfway."""

from __future__ import annotations

import pytest

from benchmarks import web


@pytest.mark.postgres
def test_web_benchmark_loses_no_accepted_unsubscribe(postgres_server: str) -> None:
    figures = web.run(users=80, seed=0, postgres_url=postgres_server)

    assert figures["lost"] == 0
    assert figures["store_drop_lost"] == 0
    assert figures["one_click"]["value"] > 0 and figures["one_click"]["baseline"] > 0
    assert figures["p99_ms"]["value"] > 0
