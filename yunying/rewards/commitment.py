"""A campaign's secret seed, committed before its window closes (its SHA-256 published at the
start), and the lottery drawn from it over salted public ids.

The seed is chosen once, before anyone knows who will take part, so it cannot be re-rolled
until a favourite wins; the salt of the public ids is derived from it, so one reveal (the
seed, published with the winners) lets anyone re-run the draw and check their own id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import secrets

from sqlalchemy.orm import Session

from yunying.errors import ConfigError, PermanentError
from yunying.rewards.campaign import RewardCampaign
from yunying.store.engine import upsert_insert
from yunying.store.models import RewardDraw


class DrawRefused(PermanentError):
    """A lottery whose seed was not committed before its window closed is not drawn."""


def seed_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def salt_of(seed: str) -> str:
    """The campaign's public-id salt: fixed by the committed seed, revealed with it."""
    return hashlib.sha256(f"public-id-salt:{seed}".encode()).hexdigest()[:32]


def public_id(salt: str, user_id: str) -> str:
    """The id a user is drawn and published under; salted per campaign, so a guessable user
    id cannot be hashed and looked up on the page before the salt is revealed."""
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:16]


def draw(public_ids: list[str], seed: str, winners: int) -> list[str]:
    """The lottery: anyone with the seed and the participants' public ids can re-run it."""
    pool = sorted(public_ids)
    return random.Random(seed).sample(pool, min(winners, len(pool)))


def campaign_seed(session: Session, campaign: str, now: dt.datetime) -> RewardDraw:
    """The campaign's seed, created once (a concurrent first call keeps the other's)."""
    existing = session.get(RewardDraw, campaign)
    if existing is not None:
        return existing
    seed = secrets.token_hex(16)
    session.execute(
        upsert_insert(session, RewardDraw)
        .values(campaign=campaign, seed=seed, commitment=seed_hash(seed), created_at=now)
        .on_conflict_do_nothing(index_elements=["campaign"])
    )
    made = session.get(RewardDraw, campaign, populate_existing=True)
    if made is None:  # pragma: no cover - the insert or the other writer made it
        raise RuntimeError(f"no seed for {campaign}")
    return made


def commit_seed(session: Session, campaign: RewardCampaign, now: dt.datetime) -> RewardDraw:
    """Choose and store the seed while the window is open; a second call returns the first."""
    existing = session.get(RewardDraw, campaign.name)
    if existing is not None:
        return existing
    if now >= campaign.end_utc:
        raise ConfigError(
            f"reward campaign {campaign.name}: its window closed at {campaign.end.isoformat()};"
            " a seed chosen now, after the participants are known, proves nothing."
            " Commit at the start of a campaign: yunying rewards commit NAME"
        )
    return campaign_seed(session, campaign.name, now)


def committed_seed(session: Session, campaign: RewardCampaign) -> RewardDraw:
    """The seed a lottery may be drawn with: committed before its window closed."""
    record = session.get(RewardDraw, campaign.name)
    if record is None or record.created_at >= campaign.end_utc:
        raise DrawRefused(
            f"reward campaign {campaign.name}: no seed commitment was made before its window"
            f" closed at {campaign.end.isoformat()}, so its lottery is not drawn (the seed"
            " could be re-rolled until a favourite wins). Commit at the start of a campaign"
            " with `yunying rewards commit NAME`, or pay it under another rule."
        )
    return record


def commitment_notice(campaign: RewardCampaign, record: RewardDraw) -> dict[str, object]:
    """What is published at the start: the seed's hash and when it was chosen."""
    return {
        "campaign": campaign.name,
        "sha256_of_seed": record.commitment,
        "committed_at": record.created_at.isoformat() + "Z",
        "window_end": campaign.end_utc.isoformat() + "Z",
    }


def notice_digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
