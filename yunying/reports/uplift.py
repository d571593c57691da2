"""How sure an uplift is: the 95% interval of a difference of two proportions, and the
smallest arm worth a verdict. Shared by the daily report (effects.py) and the review.

The interval is Newcombe's hybrid score interval (Newcombe 1998, method 10): each rate's
Wilson score interval, combined. Unlike the normal approximation (Wald) it stays within
[-1, 1] and keeps a width when a rate is 0 or 1 or an arm has a handful of users, and its
coverage is close to 95% from a few dozen users per arm up.
"""

from __future__ import annotations

import math

Z95 = 1.96
MIN_ARM = 30  # users in each arm below which no verdict, incremental revenue or ROI is given


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for the proportion k/n (n >= 1), within [0, 1]."""
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(
    k1: int, n1: int, k0: int, n0: int, z: float = Z95
) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for k1/n1 - k0/n0; None when an arm is empty."""
    if not n1 or not n0:
        return None
    p1, p0 = k1 / n1, k0 / n0
    low1, high1 = wilson_interval(k1, n1, z)
    low0, high0 = wilson_interval(k0, n0, z)
    d = p1 - p0
    low = d - math.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2)
    high = d + math.sqrt((high1 - p1) ** 2 + (p0 - low0) ** 2)
    return max(-1.0, low), min(1.0, high)


def enough_users(treated: int, reference: int) -> bool:
    """Both arms have at least MIN_ARM users: only then is a verdict given."""
    return min(treated, reference) >= MIN_ARM
