"""Reactivation uplift as a statistician would check it: on generated data with no true effect
the 95% interval contains 0 in about 95% of seeds; with a planted effect it recovers it.

Users are assigned with the product's own holdout function (10% held out, per campaign), each
with their own chance of coming back; the estimate is the product's `Uplift` (intent to treat).
"""

import datetime as dt
import random
from decimal import Decimal

import pytest

from yunying.lifecycle.holdout import in_holdout
from yunying.reports.effects import Uplift
from yunying.reports.uplift import difference_interval
from yunying.sources.validate.rules import holdout_bucket

USERS = 3000
HOLDOUT_PERCENT = 10


BUCKETS = [holdout_bucket(f"u{i}") for i in range(USERS)]


def _experiment(seed: int, effect: float) -> Uplift:
    rng = random.Random(seed)
    campaign = f"winback-{seed}"
    counts = {"assigned": [0, 0], "holdout": [0, 0]}
    for bucket in BUCKETS:
        base = 0.05 + 0.3 * rng.random()  # users differ: 5-35% come back on their own
        arm = "holdout" if in_holdout(bucket, campaign, HOLDOUT_PERCENT) else "assigned"
        chance = base + (effect if arm == "assigned" else 0.0)
        counts[arm][0] += 1
        counts[arm][1] += rng.random() < chance
    (n1, k1), (n0, k0) = counts["assigned"], counts["holdout"]
    return Uplift("winback", dt.date(2026, 11, 1), n1, k1, n0, k0, Decimal(0), Decimal(0))


def test_with_no_true_effect_the_interval_covers_zero_in_about_95_percent_of_seeds() -> None:
    covered = 0
    for seed in range(200):
        interval = _experiment(seed, effect=0.0).interval
        assert interval is not None
        covered += interval[0] <= 0 <= interval[1]
    # Binomial(200, 0.95) is 190 +- 3.1: anything in 183..197 is a 95% interval doing its job.
    assert 183 <= covered <= 197, covered


def test_a_planted_effect_is_recovered() -> None:
    estimates, covered, detected = [], 0, 0
    for seed in range(40):
        uplift = _experiment(seed, effect=0.08)
        assert uplift.uplift is not None and uplift.interval is not None
        estimates.append(uplift.uplift)
        covered += uplift.interval[0] <= 0.08 <= uplift.interval[1]
        detected += uplift.interval[0] > 0
    mean = sum(estimates) / len(estimates)
    assert abs(mean - 0.08) < 0.01  # unbiased
    assert covered >= 34  # about 95% of 40 intervals contain the planted effect
    assert detected >= 30  # and most exclude 0 (300 held out: power is about 85%)


# Newcombe (1998), "Interval estimation for the difference between independent proportions",
# Statistics in Medicine 17:873-890, Table II, method 10 (score interval, hybrid).
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(
    ("counts", "published"), NEWCOMBE_TABLE_II, ids=[str(c) for c, _ in NEWCOMBE_TABLE_II]
)
def test_the_interval_is_newcombes_published_score_interval(
    counts: tuple[int, int, int, int], published: tuple[float, float]
) -> None:
    interval = difference_interval(*counts)
    assert interval is not None
    assert interval == pytest.approx(published, abs=6e-5)


def test_one_held_out_user_gives_an_interval_within_100_points_and_no_verdict() -> None:
    # The new-user trial: 3 of 32 assigned and the 1 held-out user came back; the normal
    # approximation said -100.7 to -80.5 points, "significant".
    uplift = Uplift("ny-winback", dt.date(2026, 11, 1), 32, 3, 1, 1, Decimal(50), Decimal(9))
    assert uplift.interval is not None
    low, high = uplift.interval
    assert -1.0 <= low < uplift.uplift < high <= 1.0  # type: ignore[operator]
    assert high - low > 0.5  # one user tells little
    assert not uplift.enough and not uplift.significant
    assert uplift.incremental_revenue is None


def test_zero_of_both_arms_has_an_honest_width() -> None:
    interval = difference_interval(0, 29, 0, 2)  # was "+0.0 to +0.0"
    assert interval is not None
    low, high = interval
    assert low < -0.5 and high > 0.1


@pytest.mark.parametrize("per_arm", [29, 30], ids=["29-too-few", "30-enough"])
def test_a_verdict_needs_30_users_in_each_arm(per_arm: int) -> None:
    uplift = Uplift("winback", dt.date(2026, 11, 1), 1000, 900, per_arm, 0, Decimal(0), Decimal(0))
    assert uplift.enough is (per_arm >= 30)
    assert uplift.significant is (per_arm >= 30)
    assert (uplift.incremental_revenue is None) is (per_arm < 30)
