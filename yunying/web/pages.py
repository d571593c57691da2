"""The recipient's pages: unsubscribe (RFC 8058 one-click and a confirmation page), the
preference page per channel and topic, and tracked-link redirects.

A GET never changes anything (mail scanners prefetch links); the one-click POST a mail
client sends (`List-Unsubscribe=One-Click`, https://www.rfc-editor.org/rfc/rfc8058) acts at
once and answers 200 with no redirect; the confirmation and preference forms carry a CSRF
token. Unsubscribing stops every marketing message on the link's channel, the conservative
reading; the preference page can narrow it to topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import default
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from yunying.messaging.unsubscribe import (
    InvalidToken,
    Recipient,
    known_recipient,
    link_id,
    suppress,
    suppress_topic,
    unsubscribe_known,
    verify_click,
    verify_token,
)
from yunying.store.engine import upsert_insert, utcnow
from yunying.store.models import Click, Suppression, TopicSuppression, User
from yunying.web.context import Web, log
from yunying.web.receipts import unsuppress
from yunying.web.safety import CSRF_COOKIE, csrf_ok, new_csrf
from yunying.web.texts import CHANNEL_LABELS, ERRORS, LANGUAGES, TEXTS, TOPIC_LABELS, language

# Suppressions a recipient made here, and may undo here; bounces, complaints, STOP replies
# and an operator's suppressions are not theirs to lift.
OWN_REASONS = ("unsubscribed", "preferences")
CHANNELS = ("email", "sms", "push")
MAX_FORM_BYTES = 4096


async def form_of(request: Request) -> dict[str, list[str]]:
    """A small form's fields, URL-encoded or multipart/form-data (what RFC 8058 says a
    mail client's one-click POST should be); files are ignored."""
    body = (await request.body())[:MAX_FORM_BYTES]
    kind = request.headers.get("content-type", "")
    fields: dict[str, list[str]] = {}
    if kind.startswith("multipart/form-data"):
        pairs = _multipart_fields(kind, body)
    else:
        pairs = parse_qsl(body.decode(errors="replace"))
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


def _multipart_fields(kind: str, body: bytes) -> list[tuple[str, str]]:
    """The text fields of a multipart/form-data body (RFC 7578), read by the stdlib's MIME
    parser: a few short fields, no dependency for them."""
    message = BytesParser(policy=default).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode("latin-1", errors="replace") + body
    )
    if not message.is_multipart():
        return []
    return [
        (str(name), str(part.get_content()))
        for part in message.iter_parts()
        if (name := part.get_param("name", header="content-disposition"))
        and not part.get_filename()
    ]


def _lang(request: Request, locale: str | None) -> str:
    chosen = request.query_params.get("lang")
    return chosen if chosen in dict(LANGUAGES) else language(locale)


def _page(web: Web, name: str, lang: str, token: str, status: int = 200, **ctx: Any) -> Response:
    kind = "error" if name == "message.html" else name.removesuffix(".html")
    html = web.render(name, lang=lang, languages=LANGUAGES, token=token, t=TEXTS[kind][lang], **ctx)
    return HTMLResponse(html, status_code=status)


def _with_csrf(response: Response, request: Request, csrf: str) -> Response:
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def _invalid(web: Web, request: Request, token: str) -> Response:
    lang = _lang(request, None)
    return _page(web, "message.html", lang, token, 400, message=ERRORS[lang]["invalid"])


def _locale_of(session: Session, user_id: str) -> str | None:
    return session.scalar(select(User.locale).where(User.user_id == user_id))


async def unsubscribe_page(web: Web, request: Request) -> Response:
    token = request.query_params.get("token", "")
    key = await web.signing_key()

    def look(session: Session) -> tuple[str | None, bool]:
        recipient = known_recipient(session, key, token)
        done = any(
            session.get(Suppression, (recipient.user_id, channel)) is not None
            for channel in (recipient.channel, "any")
        )
        return _locale_of(session, recipient.user_id), done

    try:
        locale, done = await web.in_store(look)
    except InvalidToken:
        return _invalid(web, request, token)
    lang = _lang(request, locale)
    if done:  # already unsubscribed from this channel: say so rather than ask again
        return _page(web, "unsubscribe.html", lang, token, done=True, csrf="")
    csrf = new_csrf()
    response = _page(web, "unsubscribe.html", lang, token, done=False, csrf=csrf)
    return _with_csrf(response, request, csrf)


async def _expired(web: Web, request: Request, token: str) -> Response:
    """The CSRF refusal, in the language of the link's recipient (the form's ?lang= first)."""
    key = await web.signing_key()

    def look(session: Session) -> str | None:
        return _locale_of(session, verify_token(key, token).user_id)

    try:
        locale = await web.in_store(look)
    except InvalidToken:
        locale = None
    lang = _lang(request, locale)
    return _page(web, "message.html", lang, token, 403, message=ERRORS[lang]["csrf"])


async def unsubscribe_post(web: Web, request: Request) -> Response:
    token = request.query_params.get("token", "")
    form = await form_of(request)
    one_click = form.get("List-Unsubscribe") == ["One-Click"]
    if not one_click and not csrf_ok(request.cookies.get(CSRF_COOKIE), _one(form, "csrf")):
        return await _expired(web, request, token)
    key = await web.signing_key()

    def apply(session: Session) -> tuple[Recipient, str | None]:
        recipient = verify_token(key, token)
        unsubscribe_known(session, recipient, "unsubscribed")
        # The one-click answer is plain text: only the page needs the user's locale.
        return recipient, None if one_click else _locale_of(session, recipient.user_id)

    try:
        recipient, locale = await web.in_store(apply)
    except InvalidToken:
        if one_click:
            return PlainTextResponse("invalid unsubscribe link\n", status_code=400)
        return _invalid(web, request, token)
    log.info("unsubscribed on %s (%s)", recipient.channel, "one-click" if one_click else "page")
    if one_click:
        return PlainTextResponse("unsubscribed\n")
    return _page(web, "unsubscribe.html", _lang(request, locale), token, done=True, csrf="")


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    on: bool
    locked: bool = False


def _choices(web: Web, session: Session, recipient: Recipient, lang: str) -> dict[str, Any]:
    user = session.get(User, recipient.user_id)
    suppressed: dict[str, str] = {
        channel: reason
        for channel, reason in session.execute(
            select(Suppression.channel, Suppression.reason).where(
                Suppression.user_id == recipient.user_id
            )
        )
    }
    topics_off = set(
        session.scalars(
            select(TopicSuppression.topic).where(TopicSuppression.user_id == recipient.user_id)
        )
    )
    addresses = {"email": user.email, "sms": user.phone, "push": user.push_token} if user else {}
    consent = (
        {"email": user.email_opt_in, "sms": user.sms_opt_in, "push": user.push_opt_in}
        if user
        else {}
    )
    channels = []
    for name in CHANNELS:
        if not addresses.get(name) and name != recipient.channel:
            continue
        reason = suppressed.get(name) or suppressed.get("any")
        locked = not consent.get(name) or (reason is not None and reason not in OWN_REASONS)
        channels.append(Choice(name, CHANNEL_LABELS[lang][name], reason is None, locked))
    topic_names = sorted({*web.topics, *topics_off} | ({recipient.topic} - {""}))
    topics = [
        Choice(name, TOPIC_LABELS[lang].get(name, name), name not in topics_off)
        for name in topic_names
    ]
    return {"channels": channels, "topics": topics}


async def preferences_page(web: Web, request: Request) -> Response:
    token = request.query_params.get("token", "")
    key = await web.signing_key()

    def look(session: Session) -> tuple[str, dict[str, Any]]:
        recipient = known_recipient(session, key, token)
        lang = _lang(request, _locale_of(session, recipient.user_id))
        return lang, _choices(web, session, recipient, lang)

    try:
        lang, choices = await web.in_store(look)
    except InvalidToken:
        return _invalid(web, request, token)
    csrf = new_csrf()
    response = _page(web, "preferences.html", lang, token, saved=False, csrf=csrf, **choices)
    return _with_csrf(response, request, csrf)


async def preferences_post(web: Web, request: Request) -> Response:
    token = request.query_params.get("token", "")
    form = await form_of(request)
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), _one(form, "csrf")):
        return await _expired(web, request, token)
    wanted_channels = set(form.get("channel", []))
    wanted_topics = set(form.get("topic", []))
    key = await web.signing_key()

    def save(session: Session) -> tuple[str, dict[str, Any]]:
        recipient = known_recipient(session, key, token)
        lang = _lang(request, _locale_of(session, recipient.user_id))
        shown = _choices(web, session, recipient, lang)
        for channel in shown["channels"]:
            if channel.locked:
                continue
            if channel.name in wanted_channels:
                unsuppress(session, recipient.user_id, channel.name, OWN_REASONS)
            else:
                suppress(session, recipient.user_id, channel.name, "preferences")
        for topic in shown["topics"]:
            if topic.name in wanted_topics:
                session.execute(
                    delete(TopicSuppression).where(
                        TopicSuppression.user_id == recipient.user_id,
                        TopicSuppression.topic == topic.name,
                    )
                )
            else:
                suppress_topic(session, recipient.user_id, topic.name, "preferences")
        session.flush()
        return lang, _choices(web, session, recipient, lang)

    try:
        lang, choices = await web.in_store(save)
    except InvalidToken:
        return _invalid(web, request, token)
    log.info("preferences saved")
    csrf = new_csrf()
    response = _page(web, "preferences.html", lang, token, saved=True, csrf=csrf, **choices)
    return _with_csrf(response, request, csrf)


async def click(web: Web, request: Request) -> Response:
    """Record the first click per message and link, then redirect. The recipient goes on
    even when the store is down: a lost click costs a number, a dead link costs a user."""
    key = await web.signing_key()
    try:
        outbox_id, url = verify_click(key, request.path_params["token"])
    except InvalidToken:
        return PlainTextResponse("invalid link\n", status_code=400)

    def record(session: Session) -> None:
        session.execute(
            upsert_insert(session, Click)
            .values(outbox_id=outbox_id, link=link_id(url), clicked_at=utcnow())
            .on_conflict_do_nothing()
        )

    try:
        await web.in_store(record)
    except Exception:  # the store being down must not break the link
        log.warning("click not recorded: the store is unavailable")
    return RedirectResponse(url, status_code=302)
