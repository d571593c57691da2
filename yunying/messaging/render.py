"""Render message templates: Jinja2's sandbox, HTML autoescape, StrictUndefined.

Files live under `templates/messages/<template>/`:
`email.<locale>.subject.txt`, `email.<locale>.html`, `email.<locale>.txt`, `sms.<locale>.txt`,
`push.<locale>.txt` (first line the title), `webhook.<locale>.txt`. A locale without its own
file falls back to `en`, then `zh-CN`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from yunying.errors import TemplateError

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
FALLBACK_LOCALES = ("en", "zh-CN")
SMS_GSM7_LIMIT = 160
SMS_UCS2_LIMIT = 70
PUSH_TITLE_LIMIT = 50
PUSH_BODY_LIMIT = 200
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


@dataclass(frozen=True)
class Rendered:
    channel: str
    subject: str = ""
    html: str = ""
    text: str = ""


@cache
def environment(root: Path = TEMPLATES) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(root),
        autoescape=lambda name: bool(name and name.endswith(".html")),
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=False,
    )


def render(
    template: str, channel: str, locale: str, context: dict[str, Any], root: Path = TEMPLATES
) -> Rendered:
    env = environment(root)
    if channel == "email":
        return Rendered(
            channel,
            subject=_render(env, template, channel, locale, "subject.txt", context).strip(),
            html=_render(env, template, channel, locale, "html", context),
            text=_render(env, template, channel, locale, "txt", context),
        )
    text = _render(env, template, channel, locale, "txt", context).strip()
    if channel == "sms":
        check_sms_length(text)
        return Rendered(channel, text=text)
    if channel == "push":
        title, _, body = text.partition("\n")
        if len(title) > PUSH_TITLE_LIMIT or len(body.strip()) > PUSH_BODY_LIMIT:
            raise TemplateError(
                f"{template}/push: title over {PUSH_TITLE_LIMIT} or body over "
                f"{PUSH_BODY_LIMIT} characters"
            )
        return Rendered(channel, subject=title.strip(), text=body.strip())
    return Rendered(channel, text=text)


def sms_segments(text: str) -> int:
    single, multi = (SMS_GSM7_LIMIT, 153) if set(text) <= GSM7 else (SMS_UCS2_LIMIT, 67)
    return 1 if len(text) <= single else -(-len(text) // multi)


def check_sms_length(text: str, max_segments: int = 2) -> None:
    if sms_segments(text) > max_segments:
        raise TemplateError(
            f"SMS of {len(text)} characters needs more than {max_segments} segments"
        )


def _render(
    env: SandboxedEnvironment,
    template: str,
    channel: str,
    locale: str,
    suffix: str,
    context: dict[str, Any],
) -> str:
    names = [f"messages/{template}/{channel}.{loc}.{suffix}" for loc in (locale, *FALLBACK_LOCALES)]
    try:
        compiled = env.select_template(names)
    except TemplateNotFound:
        raise TemplateError(f"no template for {names[0]} (nor its fallbacks)") from None
    try:
        return compiled.render(context)
    except UndefinedError as exc:
        raise TemplateError(f"{compiled.name}: {exc.message}") from None
