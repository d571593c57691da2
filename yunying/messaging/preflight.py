"""Check a campaign before it sends: every channel's template renders in every locale."""

from __future__ import annotations

from yunying.config import Settings
from yunying.messaging.campaign import Campaign
from yunying.messaging.render import render
from yunying.sources.records import LOCALES

SAMPLE_CONTEXT = {
    "user_id": "u0000000",
    "locale": "en",
    "days_inactive": 14,
    "app_url": "https://example.com",
    "unsubscribe_url": "https://example.com/unsubscribe?token=sample",
    "campaign": "sample-campaign",
}


def preflight(settings: Settings, campaign: Campaign) -> None:
    """Raises TemplateError naming the template and the missing variable."""
    context = {**SAMPLE_CONTEXT, "app_url": settings.public_url}
    for template in campaign.templates():
        for channel in campaign.channels:
            for locale in sorted(LOCALES):
                render(template, channel, locale, {**context, "locale": locale})
