"""Holdout (对照组): a deterministic bucket per user and campaign, stable across runs.

`users.holdout_bucket` is a 31-bit hash of the user id, computed at ingestion. Mixing it with
two numbers derived from the campaign name gives an independent-looking bucket per campaign
using only integer arithmetic, which SQLite and PostgreSQL evaluate identically.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import BigInteger, ColumnElement, cast, literal
from sqlalchemy.orm import QueryableAttribute

MODULUS = 2_147_483_647  # 2**31 - 1, so bucket * multiplier stays inside a 64-bit integer
BASIS_POINTS = 10_000


def campaign_mix(campaign: str) -> tuple[int, int]:
    digest = hashlib.sha256(campaign.encode()).digest()
    multiplier = (int.from_bytes(digest[:4], "big") % (MODULUS - 1)) + 1
    offset = int.from_bytes(digest[4:8], "big") % MODULUS
    return multiplier, offset


def campaign_bucket(bucket: int, campaign: str) -> int:
    """The user's bucket for this campaign, 0 .. 9999."""
    multiplier, offset = campaign_mix(campaign)
    return ((bucket * multiplier + offset) % MODULUS) % BASIS_POINTS


def in_holdout(bucket: int, campaign: str, percent: float) -> bool:
    return campaign_bucket(bucket, campaign) < round(percent * 100)


def holdout_condition(
    bucket_column: ColumnElement[int] | QueryableAttribute[int], campaign: str, percent: float
) -> ColumnElement[bool]:
    multiplier, offset = campaign_mix(campaign)
    product = cast(bucket_column, BigInteger) * literal(multiplier, BigInteger)
    mixed = ((product + literal(offset, BigInteger)) % MODULUS) % BASIS_POINTS
    return mixed < round(percent * 100)
