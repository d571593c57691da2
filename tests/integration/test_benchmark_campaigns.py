"""`python -m benchmarks campaigns` at a tiny scale: five campaigns in one nightly through
Prefect, every user messaged or held out once, and the task runs counted from the API."""

from benchmarks import campaigns


def test_campaigns_benchmark_runs_and_counts_the_task_runs() -> None:
    figures = campaigns.run(users=150, seed=1, events_per_user=2)
    assert figures["campaigns"] == 5 and figures["flow_runs"] == 1  # the nightly: no subflows
    assert 0 < figures["task_runs"]["value"] == figures["largest_flow_run"] < 100
    assert figures["sent"] + figures["held_out"] == 150  # each user: one of the five, once
