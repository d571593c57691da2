"""Render message templates: Jinja2's sandbox, HTML autoescape, StrictUndefined.

Files live under `templates/messages/<template>/`:
`email.<locale>.subject.txt`, `email.<locale>.html`, `email.<locale>.txt`, `sms.<locale>.txt`,
`push.<locale>.txt` (first line the title), `webhook.<locale>.txt`. A locale without its own
file falls back to `en`, then `zh-CN`. Email HTML is styled by `messages/email.css` and the
template's own `<style>` block: mail clients drop <style>, so the rules are inlined into
`style` attributes once, when a file is loaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import premailer
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    UndefinedError,
)
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


JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
HIDDEN_TAG = re.compile(r"JINJATAG(\d+)X")
HEAD = re.compile(r"<head[^>]*>", re.IGNORECASE)


def inline_css(source: str, shared_css: str = "") -> str:
    """Move a template's <style> rules, after `shared_css`, into style attributes, keeping
    its Jinja tags intact (premailer would URL-encode a `{{ url }}` inside an href)."""
    if shared_css:
        style = f"<style>{shared_css}</style>"
        source, found = HEAD.subn(lambda match: match.group(0) + style, source, count=1)
        if not found:
            source = style + source
    if "<style" not in source:
        return source
    tags: list[str] = []

    def hide(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return f"JINJATAG{len(tags) - 1}X"

    inlined: str = premailer.transform(
        JINJA_TAG.sub(hide, source),
        keep_style_tags=False,
        remove_classes=True,
        disable_validation=True,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    )
    return HIDDEN_TAG.sub(lambda match: tags[int(match.group(1))], inlined)


class CssInliningLoader(FileSystemLoader):
    """Inlines CSS into message emails: `messages/email.css`, then the file's own <style>."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if template.endswith(".html"):
            shared = Path(self.searchpath[0]) / "messages" / "email.css"
            source = inline_css(source, shared.read_text() if shared.is_file() else "")
        return source, filename, uptodate


@cache
def environment(root: Path = TEMPLATES) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=CssInliningLoader(root),
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
