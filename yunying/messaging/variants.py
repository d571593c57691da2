"""Message variants: a deterministic, stable and balanced split of a campaign's users.

Like the holdout (lifecycle/holdout.py), a user's variant comes from `users.holdout_bucket`
mixed with numbers derived from the campaign name, with a different salt so that the split
is independent of the holdout draw. Each variant owns a slice of 0..9999 in proportion to
its weight, counting stopped variants too; a user whose slice is stopped is re-drawn, with
a second salt, among the variants still running. So stopping one variant moves only its
own users, and editing nothing moves nobody.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, case, cast, literal, null

from yunying.lifecycle.holdout import BASIS_POINTS, MODULUS, campaign_mix
from yunying.messaging.campaign import Variant


def _slices(variants: list[Variant]) -> list[tuple[int, str]]:
    """(upper bound in 0..9999 exclusive, variant name), in file order."""
    total = sum(v.weight for v in variants)
    bounds, running = [], 0
    for variant in variants:
        running += variant.weight
        bounds.append((running * BASIS_POINTS // total, variant.name))
    return bounds


def _mixed(bucket: int, salt: str) -> int:
    multiplier, offset = campaign_mix(salt)
    return ((bucket * multiplier + offset) % MODULUS) % BASIS_POINTS


def variant_of(bucket: int, campaign: str, variants: list[Variant]) -> str | None:
    """The user's variant (None when the campaign has none)."""
    if not variants:
        return None
    first = _mixed(bucket, f"{campaign}#variant")
    chosen = next(name for bound, name in _slices(variants) if first < bound)
    running = [v for v in variants if not v.stopped]
    if chosen in {v.name for v in running}:
        return chosen
    second = _mixed(bucket, f"{campaign}#variant-again")
    return next(name for bound, name in _slices(running) if second < bound)


def _mixed_sql(bucket: Any, salt: str) -> ColumnElement[int]:
    multiplier, offset = campaign_mix(salt)
    product = cast(bucket, BigInteger) * literal(multiplier, BigInteger)
    return ((product + literal(offset, BigInteger)) % MODULUS) % BASIS_POINTS


def _pick(mixed: ColumnElement[int], slices: list[tuple[int, str]]) -> ColumnElement[str]:
    return case(
        *((mixed < bound, literal(name)) for bound, name in slices[:-1]),
        else_=literal(slices[-1][1]),
    )


def variant_sql(bucket: Any, campaign: str, variants: list[Variant]) -> ColumnElement[Any]:
    """`variant_of` as a SQL expression over a bucket column, evaluated alike on both stores."""
    if not variants:
        return null()
    running = [v for v in variants if not v.stopped]
    stopped = [v.name for v in variants if v.stopped]
    first = _pick(_mixed_sql(bucket, f"{campaign}#variant"), _slices(variants))
    if not stopped:
        return first
    again = _pick(_mixed_sql(bucket, f"{campaign}#variant-again"), _slices(running))
    return case((first.in_(stopped), again), else_=first)
