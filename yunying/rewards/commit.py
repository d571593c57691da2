"""`yunying rewards commit CAMPAIGN`: choose a lottery's seed while its window is open and
publish the seed's hash (`var/rewards/<campaign>/commitment.v1.json`, the store, and the
company's site through `providers.webhook_url` when set): the public must see it before the
window closes for the commitment to mean anything."""

from __future__ import annotations

from yunying.config import Settings
from yunying.rewards.campaign import load_reward_campaign
from yunying.rewards.publish import commit, post_to_webhook, publications, write_files
from yunying.store.engine import create_store_engine, session_scope, utcnow


def commit_campaign(settings: Settings, name: str) -> str:
    campaign = load_reward_campaign(settings.reward_dir, name)
    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            record = commit(session, campaign, utcnow())
            published = publications(session, name, "commitment")
    finally:
        engine.dispose()
    folder = settings.home / "rewards" / name
    write_files(folder, published)
    if settings.providers.webhook_url:  # keyed per version: posting it again is harmless
        post_to_webhook(settings.providers.webhook_url, published[0])
    return (
        f"{name}: seed committed {record.created_at:%Y-%m-%d %H:%M} UTC, SHA-256"
        f" {record.commitment}; published in {folder / 'commitment.v1.json'}"
    )
