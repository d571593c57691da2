"""Reactivation uplift as a statistician would check it: on generated data with no true effect
the 95% interval contains 0 in about 95% of seeds; with a planted effect it recovers it.

Users are assigned with the product's own holdout function (10% held out, per campaign), each
with their own chance of coming back; the estimate is the product's `Uplift` (intent to treat).
"""

import datetime as dt
import random
from decimal import Decimal

from yunying.lifecycle.holdout import in_holdout
from yunying.reports.effects import Uplift
from yunying.sources.records import holdout_bucket

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
