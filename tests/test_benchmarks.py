"""Every benchmark runs at a tiny scale, so one that breaks (a dropped index, a renamed
function, a new default) fails the suite instead of the next person who measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import POSTGRES_URL, REPO

# name -> extra arguments; each also runs `--users 100`
BENCHMARKS = {
    "lifecycle": ["--events-per-user", "5"],
    "report": ["--events-per-user", "5"],
    "nightly": [],
    "pull": ["--rounds", "1"],
    "send": [],
}
# Figures every run must print, beyond the ones each benchmark always had.
MUST_HAVE = {
    "pull": [
        "sqlite_users_rows_per_s",
        "sqlite_orders_rows_per_s",
        "postgres_users_rows_per_s",
        "postgres_orders_rows_per_s",
        "sqlite_users_store_shape_rows_per_s",
        "sqlite_orders_store_shape_rows_per_s",
        "postgres_users_store_shape_rows_per_s",
        "postgres_orders_store_shape_rows_per_s",
        "sqlite_orders_all_tables_rows_per_s",
        "postgres_orders_all_tables_rows_per_s",
    ],
    "nightly": ["library_share", "postgresql_library_share", "postgresql_wall_seconds"],
}
# Figures that are shares of a whole: never above 1 (issue 26: work_share printed 1.415).
SHARES = {"nightly": ["library_share"]}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_runs_at_a_tiny_scale(name: str, postgres_server: str) -> None:
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "YUNYING_BENCH_POSTGRES_URL": POSTGRES_URL.replace("+psycopg", ""),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", name, "--users", "100", *BENCHMARKS[name]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == name
    measured = {k: v for k, v in figures.items() if isinstance(v, dict)}
    assert measured, figures
    for key in MUST_HAVE.get(name, []):
        assert key in measured, f"{name} lacks {key}"
    # Measured, not judged: at this scale a figure may round to 0.
    for key, figure in measured.items():
        assert {"value", "baseline", "ratio"} <= figure.keys(), (key, figure)
        assert figure["value"] >= 0 and figure["baseline"] >= 0, (key, figure)
    for key in SHARES.get(name, []):
        assert measured[key]["value"] <= 1, (key, measured[key])
        assert figures["prefect_share"] == round(1 - measured[key]["value"], 3), figures


def test_prefect_share_is_the_flow_time_outside_the_library() -> None:
    from benchmarks.nightly import library_share

    assert library_share(41.0, 70.0) == pytest.approx(41 / 70)  # issue 26's 100k run: 41% out
    assert library_share(80.0, 70.0) == 1.0  # a flow that overlaps stages beats plain calls
