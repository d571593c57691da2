"""Check a campaign before it sends: every channel's template renders in every locale (and a
mainland SMS or WeChat template's parameters fill within their limits), for a fixed sample
context and for the real context of a sample of the campaign's own users.

What stops the campaign (a `TemplateError`): a template missing, invalid or needing a missing
variable, or one that fails for every sampled user of a channel and locale (for the fixed
context when the sample has no user of that locale). What does not:
a template that fails only for some sampled users (a division by `days_inactive - 10`) is
reported as a warning with the count; those users' messages fail at send with the reason, and
everyone else's go out.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunying.config import Settings
from yunying.errors import TemplateDataError, TemplateError
from yunying.lifecycle.states import latest_date
from yunying.messaging.campaign import Campaign
from yunying.messaging.cn_sms import sms_template_of, template_params
from yunying.messaging.render import render
from yunying.messaging.send import RECIPIENT_COLUMNS, Recipient, last_active_by, message_context
from yunying.messaging.unsubscribe import unsubscribe_key
from yunying.messaging.wechat import template_data, wechat_template_of
from yunying.sources.validate.rules import LOCALES
from yunying.store.models import LifecycleState, User

SAMPLE_CONTEXT = {
    "user_id": "u0000000",
    "locale": "en",
    "days_inactive": 14,
    "app_url": "https://example.com",
    "unsubscribe_url": "https://example.com/unsubscribe?token=sample",
    "preferences_url": "https://example.com/preferences?token=sample",
    "campaign": "sample-campaign",
}
SAMPLE_USERS = 100  # a sample, not the segment: a check before every run must stay quick


@dataclass
class PreflightReport:
    """Per (channel, locale): contexts rendered, and failures counted by reason."""

    sampled_users: int = 0
    rendered: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    @property
    def warnings(self) -> list[str]:
        return [
            f"{channel}/{locale}: {count} of {self.rendered[channel, locale]} "
            f"sampled contexts fail ({reason}); those messages will fail at send, the rest go out"
            for (channel, locale), reasons in sorted(self.failures.items())
            for reason, count in reasons.most_common()
        ]


def preflight(
    settings: Settings,
    campaign: Campaign,
    session: Session | None = None,
    sample_users: int = SAMPLE_USERS,
) -> PreflightReport:
    """Raises TemplateError naming the template and what is wrong; returns the warnings.

    With a session, also renders every channel for up to `sample_users` users of the
    campaign's segment (as of the latest lifecycle run), each in the user's own locale."""
    report = PreflightReport()
    sample = {**SAMPLE_CONTEXT, "app_url": settings.public_url, "campaign": campaign.name}
    contexts: list[tuple[str, dict[str, Any]]] = [
        (locale, {**sample, "locale": locale}) for locale in sorted(LOCALES)
    ]
    parameters = _provider_parameters(settings, campaign)
    contexts_by_channel: dict[str, list[tuple[str, dict[str, Any]]]] = {
        channel: contexts for channel in campaign.channels
    }
    if session is not None:
        real = _segment_sample(session, settings, campaign, sample_users)
        report.sampled_users = len(real[campaign.channels[0]]) if real else 0
        for channel, sampled in real.items():
            contexts_by_channel[channel] = contexts + sampled
    # Where real users of a channel and locale were sampled, they alone say whether the
    # template fails for everyone: the fixed sample context may be the one that renders.
    real_rendered: Counter[tuple[str, str]] = Counter()
    real_failed: Counter[tuple[str, str]] = Counter()
    for channel, channel_contexts in contexts_by_channel.items():
        for at, (locale, context) in enumerate(channel_contexts):
            is_real = at >= len(contexts)
            report.rendered[channel, locale] += 1
            real_rendered[channel, locale] += is_real
            try:
                for template in campaign.templates():  # every live variant's
                    render(template, channel, locale, context, settings.template_dir)
                if channel in parameters:
                    setting, fill = parameters[channel]
                    try:
                        fill(context)
                    except ValueError as exc:
                        raise TemplateDataError(f"{setting}: {exc}") from None
            except TemplateDataError as exc:
                report.failures[channel, locale][str(exc)] += 1
                real_failed[channel, locale] += is_real
    for (channel, locale), reasons in report.failures.items():
        users = real_rendered[channel, locale]
        if (
            real_failed[channel, locale] == users
            if users
            else sum(reasons.values()) == report.rendered[channel, locale]
        ):
            reason = next(iter(reasons))
            raise TemplateError(
                f"campaign {campaign.name}: the {channel} template fails for every sampled "
                f"{locale} recipient: {reason}"
            )
    return report


def _provider_parameters(
    settings: Settings, campaign: Campaign
) -> dict[str, tuple[str, Callable[[Mapping[str, Any]], object]]]:
    """Per channel whose provider fills its own template (mainland SMS, WeChat): the
    setting that maps it, and what fills its parameters from a message's context (raising
    ValueError for one over its limit). A template with no mapping stops the campaign."""
    parameters: dict[str, tuple[str, Callable[[Mapping[str, Any]], object]]] = {}
    if "sms" in campaign.channels and settings.cn_sms.provider:
        sms = sms_template_of(settings.cn_sms, campaign.template)
        parameters["sms"] = (
            f"cn_sms.templates.{campaign.template}",
            lambda context: template_params(sms, context, settings.cn_sms),
        )
    if "wechat" in campaign.channels and settings.wechat.kind:
        wechat = wechat_template_of(settings.wechat, campaign.template)
        parameters["wechat"] = (
            f"wechat.templates.{campaign.template}",
            lambda context: template_data(wechat, context),
        )
    return parameters


def _segment_sample(
    session: Session, settings: Settings, campaign: Campaign, limit: int
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(locale, context) per channel for a sample of the segment; ordered by the users' hash
    bucket, so the sample is spread over the users and the same on every run."""
    day = latest_date(session)
    if day is None:
        return {}
    rows = session.execute(
        select(*RECIPIENT_COLUMNS, last_active_by(day))
        .join(LifecycleState, LifecycleState.user_id == User.user_id)
        .where(LifecycleState.state.in_(campaign.segment))
        .order_by(User.holdout_bucket, User.user_id)
        .limit(limit)
    ).all()
    key = unsubscribe_key(settings)
    return {
        channel: [
            (
                row.locale,
                _context(
                    settings, cast(Recipient, row), row.last_active_day, day, channel, key, campaign
                ),
            )
            for row in rows
        ]
        for channel in campaign.channels
    }


def _context(
    settings: Settings,
    user: Recipient,
    last_active: dt.date | None,
    day: dt.date,
    channel: str,
    key: bytes,
    campaign: Campaign,
) -> dict[str, Any]:
    context = message_context(settings, user, last_active, day, channel, key)
    context["campaign"] = campaign.name
    return context
