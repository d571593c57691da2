"""The mainland SMS fast paths held to their reference: percent-encoding against urllib's,
a `{{ name }}` parameter against Jinja's sandbox."""

import random
from urllib.parse import quote

import pytest
from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from yunying.messaging.cn_sms import pct, render_param


def test_pct_is_urllib_quote_with_tilde_safe() -> None:
    rnd = random.Random(7)
    alphabet = [chr(i) for i in range(300)] + ["派", "😀", "é", "%"]
    cases = ["a b", "*", "~-_.", "/=&+", "派", "%", "100%派 x*~", "", '{"days":"10"}']
    cases += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30))) for _ in range(2000)]
    assert [pct(c) for c in cases] == [quote(c, safe="~") for c in cases]


@pytest.mark.parametrize("value", [None, 10, "x", 1.5, True, "  padded ", "<b>"])
def test_a_plain_name_renders_as_jinja_does(value: object) -> None:
    jinja = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    for expression in ("{{ a }}", "{{a}}", "{{  a  }}"):
        assert render_param(expression, {"a": value}) == jinja.from_string(expression).render(
            a=value
        )


def test_a_missing_name_fails_as_jinja_does() -> None:
    jinja = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    with pytest.raises(UndefinedError) as reference:
        jinja.from_string("{{ nope }}").render({})
    with pytest.raises(UndefinedError) as fast:
        render_param("{{ nope }}", {})
    assert fast.value.message == reference.value.message
    assert render_param("{{ a | upper }}", {"a": "x"}) == "X"  # anything else goes through Jinja
