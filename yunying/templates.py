"""The Jinja environments, one per kind of template, each built once per process.

- `messages(root)`: campaign messages, written by ops (`templates/messages/`, or the
  `template_dir` setting): Jinja's sandbox with bounds (messaging/sandbox.py), email CSS
  inlined as files load; HTML files autoescaped.
- `reports()`: the daily report and campaign reviews (`templates/reports/`); HTML files
  autoescaped, text files not.
- `rewards()`: the published winners page (`templates/rewards/`); HTML autoescaped.
- `web_pages()`: the recipient-facing pages of `yunying web` (`templates/web/`); every
  template autoescaped.

All of them use StrictUndefined: a value a template names but is not given fails the render
instead of printing nothing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from yunying.messaging.sandbox import BoundedSandbox, CssInliningLoader

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def _html_only(name: str | None) -> bool:
    return bool(name and name.endswith(".html"))


@cache
def messages(root: Path = TEMPLATES) -> SandboxedEnvironment:
    return BoundedSandbox(
        loader=CssInliningLoader(root),
        autoescape=_html_only,
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=False,
    )


@cache
def reports() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES / "reports"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def rewards() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES / "rewards"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )


@cache
def web_pages() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES / "web"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )
