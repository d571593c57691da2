"""The sandbox ops-authored message templates run in, and how their files load.

The sandbox is Jinja's, bounded: no expression may build more than `MAX_ITEMS` characters or
items, and no rendered part may exceed `MAX_RENDERED_CHARS` (checked by render.py). Email
HTML is styled by `messages/email.css` and the template's own `<style>` block: mail clients
drop <style>, so the rules are inlined into `style` attributes once, when a file is loaded.
"""

from __future__ import annotations

import logging
import operator
import re
import string
from collections.abc import Callable, Iterable, Sized
from pathlib import Path
from typing import Any

import premailer
from jinja2 import FileSystemLoader, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.sandbox import SandboxedEnvironment

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


# What one expression may build (characters of a string, items of a list or range) and what
# one rendered part may hold: far above any real message, far below what hurts a worker.
MAX_ITEMS = 100_000
MAX_RENDERED_CHARS = 500_000
MAX_EXPONENT = 1_000
# A width or precision in a format spec (`%99999d`, `{:>99999}`) of five digits or more.
WIDE_FORMAT = re.compile(r"\d{5,}|\*")


class TooLarge(SecurityError):
    """The sandbox refused to build a string, list or range larger than MAX_ITEMS."""


def _refuse_over(size: int, what: str) -> None:
    if size > MAX_ITEMS:
        raise TooLarge(f"{what} would build {size} items, over the limit of {MAX_ITEMS}")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, Sized) else 0


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _checked_binop(name: str, left: Any, right: Any) -> Any:
    if name == "*":
        for sequence, times in ((left, right), (right, left)):
            if _is_sequence(sequence) and isinstance(times, int):
                _refuse_over(len(sequence) * times, "repeating a sequence")
    elif name == "+" and _is_sequence(left) and _is_sequence(right):
        _refuse_over(len(left) + len(right), "joining two sequences")
    elif name == "**" and isinstance(left, int) and isinstance(right, int):
        if abs(left) > 1 and right > MAX_EXPONENT:
            raise TooLarge(f"an exponent over {MAX_EXPONENT}")
    elif name == "%" and isinstance(left, str) and WIDE_FORMAT.search(left):
        raise TooLarge("a format width or precision of five digits or more")
    return BINOPS[name](left, right)


BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": operator.mul,
    "+": operator.add,
    "**": operator.pow,
    "%": operator.mod,
}


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    _refuse_over(len(numbers), "range()")
    return numbers


def _replaced_size(text: str, old: str, new: str) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    return len(text) + found * (len(new) - len(old))


def _width(value: Any) -> int:
    return value if isinstance(value, int) else len(str(value))


# str methods whose numeric argument is the length they build.
WIDENING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


def _check_str_method(method: Any, args: tuple[Any, ...]) -> None:
    """Refuse a str method call that would build an oversized string."""
    method = getattr(method, "__wrapped__", method)  # the sandbox wraps str.format
    text = getattr(method, "__self__", None)
    if not isinstance(text, str):
        return
    name = getattr(method, "__name__", "")
    if name in WIDENING_METHODS and args:
        width = _width(args[0])
        _refuse_over(width * (text.count("\t") + 1) if name == "expandtabs" else width, name)
    elif name in ("format", "format_map"):
        if any(
            spec and WIDE_FORMAT.search(spec) for _, _, spec, _ in string.Formatter().parse(text)
        ):
            raise TooLarge("a format width or precision of five digits or more")
    elif name == "replace" and len(args) >= 2:
        _refuse_over(_replaced_size(text, str(args[0]), str(args[1])), "replace()")
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, list | tuple):
            _refuse_over(sum(map(_size, items)) + len(items) * len(text), "join()")


def _bounded_filter(name: str) -> Callable[..., Any]:
    """A built-in filter that first checks the size of what it would build."""
    original = FILTERS[name]
    skip = 1 if hasattr(original, "jinja_pass_arg") else 0  # the context Jinja passes first

    def bounded(*args: Any, **kwargs: Any) -> Any:
        value, *rest = args[skip:]
        if name == "center" and rest:
            _refuse_over(_width(rest[0]), "the center filter")
        elif name == "indent":
            width = rest[0] if rest else kwargs.get("width", 4)
            lines = str(value).count("\n") + 1
            _refuse_over(len(str(value)) + lines * _width(width), "the indent filter")
        elif name == "replace" and len(rest) >= 2:
            _refuse_over(_replaced_size(str(value), str(rest[0]), str(rest[1])), "replace")
        elif name == "join":
            items = list(value) if isinstance(value, Iterable) else []
            separator = rest[0] if rest else kwargs.get("d", "")
            _refuse_over(sum(map(_size, items)) + len(items) * _size(separator), "join")
            args = (*args[:skip], items, *rest)
        elif name == "format" and WIDE_FORMAT.search(str(value)):
            raise TooLarge("a format width or precision of five digits or more")
        return original(*args, **kwargs)

    if skip:
        bounded.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


class BoundedCodeGenerator(CodeGenerator):
    """Checks the length of every `~` concatenation (Jinja joins those outside any hook)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus limits on what a template may allocate."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset(BINOPS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs
        for name in ("center", "indent", "replace", "join", "format"):
            self.filters[name] = _bounded_filter(name)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return _checked_binop(operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_str_method(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)

    def checked_concat(self, value: Any) -> Any:
        _refuse_over(_size(value), "joining strings with ~")
        return value
