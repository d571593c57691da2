"""What ops staff do by hand: preview a message, send a test, apply an unsubscribe."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.lifecycle.holdout import in_holdout
from yunying.messaging.campaign_check import load_checked
from yunying.messaging.channels import channels_for
from yunying.messaging.outbox import Claimed, reachable
from yunying.messaging.preflight import SAMPLE_CONTEXT
from yunying.messaging.providers import OutgoingMessage
from yunying.messaging.render import Rendered, locale_note, render
from yunying.messaging.send import last_active_by, message_context
from yunying.messaging.unsubscribe import unsubscribe_key, unsubscribe_known, verify_token
from yunying.messaging.variants import variant_of
from yunying.setting_checks import email_address
from yunying.sources.validate.rules import template_locale
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.models import User


def preview(
    settings: Settings,
    campaign_name: str,
    user_id: str,
    channel: str | None = None,
    business_date: dt.date | None = None,
) -> str:
    """The message as a send on `business_date` (default today) would render it: the
    variant the user is assigned, and whether they would be held out instead."""
    campaign = load_checked(settings, campaign_name)
    day = business_date or dt.datetime.now(settings.zone).date()
    chosen = channel or campaign.channels[0]
    engine = create_store_engine(settings.store_url)
    with session_scope(engine) as session:
        # Activity as of the date, as that night's send saw it: not what came after.
        row = session.execute(
            select(User, last_active_by(day), reachable(chosen)).where(User.user_id == user_id)
        ).first()
    engine.dispose()
    if row is None:
        raise ConfigError(f"no user {user_id!r} in the store")
    user, last_active, reached = row
    context = message_context(settings, user, last_active, day, chosen, unsubscribe_key(settings))
    context["campaign"] = campaign.name
    variant = variant_of(user.holdout_bucket, campaign.name, campaign.variants)
    template = campaign.template_for(variant)
    said = [
        f"date: {day}",
        f"template: {template}" + (f" (variant {variant})" if variant else ""),
        locale_note(template, chosen, user.locale, settings.template_dir),
    ]
    if user.signup_day > day:  # no night could send it: nothing to render
        return "\n".join([*said, f"not a user yet on {day} (signed up {user.signup_day})"])
    if not reached:
        said.append(
            f"not reachable: no {chosen} address, no consent to {chosen} or unsubscribed;"
            " this user is not sent it"
        )
    if in_holdout(user.holdout_bucket, campaign.name, campaign.holdout_percent):
        said.append("holdout: this user is in the campaign's holdout group and is not sent it")
    rendered = render(template, chosen, user.locale, context, settings.template_dir)
    return "\n".join([*said, _show(rendered)])


def test_send(settings: Settings, campaign_name: str, to: str, locale: str) -> tuple[bool, str]:
    """Send the campaign's email to a staff address, through the configured email channel.
    Its unsubscribe and preference links point at `public_url` with a sample token. Returns
    whether the channel took it, and what to tell the sender."""
    try:
        email_address(to)
    except ValueError as exc:
        raise ConfigError(f"--to: {exc} (test-send sends the campaign's email)") from None
    campaign = load_checked(settings, campaign_name)
    locale = template_locale(locale) or locale  # 'zh_CN', 'en-US': as users' locales are read
    links = {
        name: f"{settings.public_url}/{page}?token=sample"
        for name, page in (("unsubscribe_url", "unsubscribe"), ("preferences_url", "preferences"))
    }
    context = {**SAMPLE_CONTEXT, **links, "app_url": settings.public_url, "locale": locale}
    rendered = render(campaign.template, "email", locale, context, settings.template_dir)
    key = f"test:{campaign.name}:{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    message = OutgoingMessage(
        Claimed(0, key, "staff", "email", 1), to, rendered, links["unsubscribe_url"]
    )
    outcome = channels_for(settings)["email"].send([message])[0]
    said = f"test message {outcome.status}" + (f": {outcome.reason}" if outcome.reason else "")
    note = locale_note(campaign.template, "email", locale, settings.template_dir)
    samples = "(its unsubscribe and preference links are samples: they change nothing)"
    return outcome.status == "sent", f"{note}\n{said}\n{samples}"


def unsubscribe(settings: Settings, token: str) -> str:
    """`token` is an unsubscribe link's token or the whole link."""
    token = link_token(token)
    key = unsubscribe_key(settings)
    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            recipient = verify_token(key, token)
            unsubscribe_known(session, recipient, "unsubscribed")
    finally:
        engine.dispose()
    return f"unsubscribed {recipient.user_id} from {recipient.channel}"


def link_token(text: str) -> str:
    """The token of an unsubscribe or preferences link, or `text` itself when it is one."""
    parts = urlsplit(text.strip())
    if not parts.scheme:
        return text.strip()
    tokens = parse_qs(parts.query).get("token")
    if not tokens:
        raise ConfigError("the link has no ?token=: copy the whole unsubscribe link")
    return tokens[0]


def _show(rendered: Rendered) -> str:
    parts = [f"channel: {rendered.channel}"]
    if rendered.subject:
        parts.append(f"subject: {rendered.subject}")
    parts.append(rendered.text)
    if rendered.html:
        parts += ["--- html ---", rendered.html]
    return "\n".join(parts)
