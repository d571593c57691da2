"""Every Jinja environment comes from yunying/templates.py, built once, strict and escaping."""

import ast
from collections.abc import Callable
from pathlib import Path

import pytest
from jinja2 import Environment, StrictUndefined

from yunying import templates

LIBRARY = Path(templates.__file__).parent
FACTORIES: dict[str, Callable[[], Environment]] = {
    "messages": templates.messages,
    "reports": templates.reports,
    "rewards": templates.rewards,
    "web_pages": templates.web_pages,
}
# Compiles provider parameter expressions from the SMS settings, not template files.
OWN_ENVIRONMENT = {"messaging/cn_sms.py"}


@pytest.mark.parametrize("factory", FACTORIES.values(), ids=FACTORIES.keys())
def test_an_environment_is_built_once_strict_and_escapes_html(
    factory: Callable[[], Environment],
) -> None:
    env = factory()
    assert factory() is env
    assert env.undefined is StrictUndefined
    assert callable(env.autoescape) and env.autoescape("page.html")


def test_no_other_module_builds_a_jinja_environment() -> None:
    builders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        name = path.relative_to(LIBRARY).as_posix()
        if name == "templates.py" or name in OWN_ENVIRONMENT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = node.func
                callee = called.attr if isinstance(called, ast.Attribute) else None
                callee = called.id if isinstance(called, ast.Name) else callee
                if callee and (callee.endswith("Environment") or callee.endswith("Sandbox")):
                    builders.append(f"{name}:{node.lineno} {callee}")
    assert builders == []
