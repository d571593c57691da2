"""Render message templates: Jinja2's sandbox, HTML autoescape, StrictUndefined.

Files live under `templates/messages/<template>/` (or the `template_dir` setting):
`email.<locale>.subject.txt`, `email.<locale>.html`, `email.<locale>.txt`, `sms.<locale>.txt`,
`push.<locale>.txt` (first line the title), `webhook.<locale>.txt`. A locale without its own
file falls back to `en`, then `zh-CN`. The environment they render in (sandboxed, bounded,
email CSS inlined) is `templates.messages`.

Whatever a template raises while rendering becomes a `TemplateError`: a missing variable, a
syntax error or an unsafe attribute is the template's fault (preflight stops the campaign);
anything else (a division by zero for one user, a message too long) is a `TemplateDataError`,
so only that recipient's message fails, as does a part rendered over `MAX_RENDERED_CHARS`.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Template, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from yunying import templates
from yunying.errors import TemplateDataError, TemplateError
from yunying.messaging.sandbox import MAX_RENDERED_CHARS, TooLarge
from yunying.templates import TEMPLATES

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


def render(
    template: str,
    channel: str,
    locale: str,
    context: dict[str, Any],
    root: Path | None = None,
) -> Rendered:
    """Raises TemplateError (TemplateDataError when only this context breaks it); `root` is
    the template folder (the `template_dir` setting), by default the shipped templates."""
    env = templates.messages(root or TEMPLATES)
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
            raise TemplateDataError(
                f"{template}/push: title over {PUSH_TITLE_LIMIT} or body over "
                f"{PUSH_BODY_LIMIT} characters"
            )
        return Rendered(channel, subject=title.strip(), text=body.strip())
    return Rendered(channel, text=text)


def parts(channel: str) -> tuple[str, ...]:
    """The files a channel's message is rendered from, by suffix."""
    return ("subject.txt", "html", "txt") if channel == "email" else ("txt",)


def missing_files(template: str, channel: str, root: Path | None = None) -> list[str]:
    """The files of `template` for `channel` that no locale can fall back to (a render in a
    locale without its own file would fail), as paths under `root`."""
    folder = (root or TEMPLATES) / "messages" / template
    return [
        f"messages/{template}/{channel}.{FALLBACK_LOCALES[0]}.{part}"
        for part in parts(channel)
        if not any((folder / f"{channel}.{loc}.{part}").is_file() for loc in FALLBACK_LOCALES)
    ]


def locale_note(template: str, channel: str, locale: str, root: Path | None = None) -> str:
    """Which locale's files a message in `locale` renders from, said plainly: a locale without
    files of its own falls back silently, and a preview should show that."""
    folder = (root or TEMPLATES) / "messages" / template
    used = next(
        (loc for loc in (locale, *FALLBACK_LOCALES) if (folder / f"{channel}.{loc}.txt").is_file()),
        None,
    )
    if used is None or used == locale:
        return f"locale: {locale}"
    return f"locale: {locale} (the template has no {channel}.{locale} files: rendered in {used})"


def sms_segments(text: str) -> int:
    single, multi = (SMS_GSM7_LIMIT, 153) if set(text) <= GSM7 else (SMS_UCS2_LIMIT, 67)
    return 1 if len(text) <= single else -(-len(text) // multi)


def check_sms_length(text: str, max_segments: int = 2) -> None:
    if sms_segments(text) > max_segments:
        raise TemplateDataError(
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
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.name} line {exc.lineno}: {exc.message}") from None
    try:
        return _bounded_output(compiled, context)
    except UndefinedError as exc:
        raise TemplateError(f"{compiled.name}: {_masked(str(exc.message), context)}") from None
    except TemplateError:
        raise
    except SecurityError as exc:
        if not isinstance(exc, TooLarge):
            raise TemplateError(f"{compiled.name}: {exc}") from None
        raise TemplateDataError(_reason(compiled, exc, context)) from None
    except Exception as exc:
        # A template that breaks on one user's data fails that message, never the batch.
        raise TemplateDataError(_reason(compiled, exc, context)) from None


def _bounded_output(compiled: Template, context: dict[str, Any]) -> str:
    parts: list[str] = []
    size = 0
    for part in compiled.generate(context):
        size += len(part)
        if size > MAX_RENDERED_CHARS:
            raise TemplateDataError(
                f"{compiled.name}: rendered over {MAX_RENDERED_CHARS} characters"
            )
        parts.append(part)
    return "".join(parts)


def _reason(compiled: Template, exc: BaseException, context: dict[str, Any]) -> str:
    """`<file> line <n>: <error>: <message>`, with the recipient's values masked: a reason is
    stored and logged, and must not carry an email, a phone or a token."""
    line = next(
        (
            frame.tb_lineno
            for frame in _frames(exc.__traceback__)
            if frame.tb_frame.f_code.co_filename == compiled.filename
        ),
        None,
    )
    where = f"{compiled.name} line {line}" if line else str(compiled.name)
    return f"{where}: {type(exc).__name__}: {_masked(str(exc), context)[:200]}"


def _masked(message: str, context: dict[str, Any]) -> str:
    for value in context.values():
        if isinstance(value, str) and len(value) >= 3:
            message = message.replace(value, "***")
    return message


def _frames(tb: types.TracebackType | None) -> list[types.TracebackType]:
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames[::-1]
