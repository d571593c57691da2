"""The mainland SMS fast paths held to their reference: percent-encoding against urllib's,
a `{{ name }}` parameter against Jinja's sandbox."""

import json
import random
from urllib.parse import parse_qs, quote

import pytest
from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from yunying.messaging.batch_channel import Outcomes, Prepared, in_batches
from yunying.messaging.cn_sms import (
    AliyunSms,
    TencentSms,
    _dumps,
    _pct_json_list,
    _pct_json_str,
    _pct_phone_json,
    aliyun_phone,
    aliyun_signature,
    e164_phone,
    pct,
    prepare,
    render_param,
)
from yunying.messaging.cn_sms_config import CnSmsSettings
from yunying.messaging.outbox import Claimed, Outcome
from yunying.messaging.providers import OutgoingMessage
from yunying.messaging.render import Rendered


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


# The batch fast paths, held to the plain computation they replace ---------------------------


def _message(i: int, phone: str, **context: object) -> OutgoingMessage:
    return OutgoingMessage(
        Claimed(i, f"c:2026-11-01:u{i}", f"u{i}", "sms", 1),
        phone,
        Rendered("sms", text="x"),
        "x",
        {"template": "winback", **context},
    )


def _settings(provider: str, **params: str) -> CnSmsSettings:
    return CnSmsSettings.model_validate(
        {
            "provider": provider,
            "access_key_id": "id",
            "access_key_secret": "secret",
            "sign_name": "运营示例",
            "sdk_app_id": "1400000001",
            "templates": {"winback": {"code": "SMS_1", "params": params}},
        }
    )


def test_json_lists_are_encoded_as_a_whole_would_be() -> None:
    rnd = random.Random(3)
    alphabet = list('0123456789+-" \\/派é~%') + [chr(i) for i in range(0, 40)]
    for _ in range(300):
        items = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) for _ in range(5)]
        items += [str(rnd.randint(10**10, 10**11))]
        assert _pct_json_list([_pct_json_str(i) for i in items]) == pct(_dumps(items))


@pytest.mark.parametrize(
    "phones",
    [
        ["+8613900000000", "+8613911112222"],
        ["+8613900000000"],
        ["+8613900000000", "+14155550100", "+85291234567"],
        ["+86139 0000 0000", "+8613900000000"],
        ["13900000000", "+8613900000000"],
    ],
)
def test_the_phone_list_is_encoded_as_its_json_would_be(phones: list[str]) -> None:
    expected = pct(_dumps([aliyun_phone(phone) for phone in phones]))
    assert _pct_phone_json(phones) == expected


def test_a_batch_with_several_parameter_sets_keeps_each_numbers_own() -> None:
    settings = _settings("aliyun", days="{{ days }}")
    messages = [_message(i, f"+8613900000{i:03d}", days=i % 3) for i in range(7)]
    ready, failed = prepare(settings, messages)
    assert not failed and len(ready) == 3  # one group per distinct value
    api = AliyunSms(settings)
    [batch] = api.batches(ready)
    request = api.send_request(batch)
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    signed = {k: v for k, v in form.items() if k != "Signature"}
    assert form["Signature"] == aliyun_signature("POST", signed, "secret")
    phones, params = json.loads(form["PhoneNumberJson"]), json.loads(form["TemplateParamJson"])
    pairs = dict(zip(phones, params, strict=True))
    assert pairs == {f"13900000{i:03d}": {"days": str(i % 3)} for i in range(7)}
    assert json.loads(form["SignNameJson"]) == ["运营示例"] * 7


def test_prepare_groups_equal_values_and_fails_the_bad_ones() -> None:
    settings = _settings("tencent", days="{{ days }}", name="{{ name | upper }}")
    messages = [_message(i, f"+86139{i:08d}", days=10, name="a") for i in range(3)]
    messages += [_message(3, "+8613900000003", name="a"), _message(4, "+8613900000004")]
    ready, failed = prepare(settings, messages)
    assert [len(group.messages) for group in ready] == [1, 1, 1]  # Jinja: one each
    assert {o.id for o in failed} == {3, 4}
    plain = _settings("tencent", days="{{ days }}")
    ready, failed = prepare(plain, messages)
    assert [len(group.messages) for group in ready] == [3]  # plain names: one group
    assert [o.id for o in failed] == [3, 4]
    assert "'days' is undefined" in str(failed[0].reason)


@pytest.mark.parametrize(
    ("values", "groups"),
    [
        ([10, 10, 10], [3]),
        ([10, 10, "10"], [3]),  # the same parameter, through the general path
        ([1, True, 1], [2, 1]),  # equal in Python, "1" and "True" to the provider
        ([10, 10, 11], [2, 1]),
    ],
)
def test_a_batch_is_one_group_only_when_every_parameter_is_the_same(
    values: list[object], groups: list[int]
) -> None:
    settings = _settings("tencent", days="{{ days }}", name="{{ name }}")
    messages = [_message(i, f"+86139{i:08d}", days=v, name="a") for i, v in enumerate(values)]
    ready, failed = prepare(settings, messages)
    assert not failed and [len(group.messages) for group in ready] == groups
    for group in ready:
        assert all(group.params["days"] == str(m.context["days"]) for m in group.messages)


def test_tencent_verdicts_read_any_order_and_each_numbers_code() -> None:
    settings = _settings("tencent", days="{{ days }}")
    messages = [_message(i, f"+86139{i:08d}", days=1) for i in range(4)]
    ready, _ = prepare(settings, messages)
    statuses = [
        {"PhoneNumber": m.address, "SerialNo": f"s{i}", "Code": "Ok"}
        for i, m in enumerate(messages)
    ]
    body = json.dumps({"Response": {"SendStatusSet": statuses}}).encode()
    api = TencentSms(settings)
    assert api.verdicts(ready, 200, body) == [("sent", f"s{i}") for i in range(4)]
    reversed_ok = json.dumps({"Response": {"SendStatusSet": statuses[::-1]}}).encode()
    assert api.verdicts(ready, 200, reversed_ok) == [("sent", f"s{i}") for i in range(4)]
    statuses[1]["Code"] = "FailedOperation.PhoneNumberInBlacklist"
    shuffled = json.dumps({"Response": {"SendStatusSet": statuses[::-1]}}).encode()
    assert [v for v, _ in api.verdicts(ready, 200, shuffled)] == ["sent", "bounced", "sent", "sent"]
    missing = json.dumps({"Response": {"SendStatusSet": statuses[:3]}}).encode()
    assert api.verdicts(ready, 200, missing)[3][0] == "retry"


def test_outcomes_read_back_as_added() -> None:
    outcomes = Outcomes([Outcome(1, "failed", "bad number")])
    outcomes.sent([2, 3], ["r2", "r3"])
    outcomes.add(4, "retry", "HTTP 503")
    expected = [
        Outcome(1, "failed", "bad number"),
        Outcome(2, "sent", None, "r2"),
        Outcome(3, "sent", None, "r3"),
        Outcome(4, "retry", "HTTP 503"),
    ]
    assert list(outcomes) == expected and len(outcomes) == 4
    assert outcomes[1] == expected[1] and outcomes[1:3] == expected[1:3]
    assert type(outcomes[0]) is type(next(iter(outcomes))) is Outcome


def test_groups_pack_into_batches_and_are_cut_at_the_size() -> None:
    groups = [Prepared([_message(i, "+1") for i in range(n)], "c") for n in (3, 5, 1)]
    batches = in_batches(groups, 4)
    assert [[len(g.messages) for g in batch] for batch in batches] == [[3, 1], [4], [1]]
    ids = [m.claimed.id for batch in batches for g in batch for m in g.messages]
    assert ids == [0, 1, 2, 0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize(
    ("stored", "e164", "aliyun"),
    [
        ("13900000001", "+8613900000001", "13900000001"),
        ("8613900000001", "+8613900000001", "13900000001"),
        ("008613900000001", "+8613900000001", "13900000001"),
        ("+86 139-0000-0001", "+8613900000001", "13900000001"),
        ("+14155550100", "+14155550100", "14155550100"),
    ],
)
def test_a_mainland_number_in_any_stored_form_is_one_number(
    stored: str, e164: str, aliyun: str
) -> None:
    """Tencent answers in E.164 and Aliyun's QuerySendDetails takes 11 digits: each form a
    company stores is sent, and matched, as that one number."""
    assert (e164_phone(stored), aliyun_phone(stored)) == (e164, aliyun)
