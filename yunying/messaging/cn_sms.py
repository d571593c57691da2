"""Mainland SMS through Aliyun (dysmsapi 2017-05-25) and Tencent Cloud (sms 2021-01-11):
signed requests, batch calls, template parameters, and the status lookups that settle a
message whose outcome a crash left unknown.

- Aliyun, RPC signature v1 (https://help.aliyun.com/document_detail/56189.html):
  Signature = base64(HMAC-SHA1(secret + "&", "POST&%2F&" + pct(sorted, pct-encoded query))).
  `SendBatchSms` (https://help.aliyun.com/zh/sms/developer-reference/api-dysmsapi-2017-05-25-sendbatchsms)
  takes up to 100 numbers with a sign name and parameters each; `QuerySendDetails` lists what
  was sent to a number on a day (SendStatus 1 waiting for receipt, 2 failed, 3 delivered).
- Tencent, TC3-HMAC-SHA256 (https://cloud.tencent.com/document/api/382/52071):
  `SendSms` (https://cloud.tencent.com/document/api/382/55981) takes up to 200 numbers that
  share one TemplateParamSet, so a batch is the messages whose parameters are equal;
  `PullSmsSendStatusByPhoneNumber` (https://cloud.tencent.com/document/api/382/55982) lists
  the receipts of a number since a time, with the SessionContext the send carried.

Neither takes an idempotency key: a message claimed again after a crash is looked up first
and only sent when the provider has no record of it (the rule providers.Twilio follows).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
from jinja2 import StrictUndefined, Template, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from yunying.errors import TemplateError
from yunying.messaging.batch_channel import (
    BatchApi,
    BatchChannel,
    Prepared,
    in_batches,
    size_of,
)
from yunying.messaging.cn_sms_config import CnSmsSettings, SmsTemplateMapping
from yunying.messaging.outbox import Claimed, Outcome
from yunying.messaging.providers import HttpRequest, OutgoingMessage
from yunying.messaging.status import Verdict

CHINA = ZoneInfo("Asia/Shanghai")  # both providers date their records in Beijing time
TENCENT_TOTAL_LIMIT = 500  # characters of a whole message, sign and parameters included

_params_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


_PLAIN_NAME = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render_param(expression: str, context: Mapping[str, Any]) -> str:
    """`{{ name }}` is looked up directly (Jinja's render costs ~60 us a message, most of a
    batch's CPU); anything else renders through the sandbox. Both say the same when the
    name is missing (a test holds them together)."""
    name = _plain_name(expression)
    if name is None:
        return _compiled(expression).render(context)
    if name not in context:
        raise UndefinedError(f"'{name}' is undefined")
    value = context[name]
    return str(value)  # as Jinja prints it: None is "None", and then checked as any value


@cache
def _plain_name(expression: str) -> str | None:
    plain = _PLAIN_NAME.fullmatch(expression)
    return plain.group(1) if plain else None


@cache
def _compiled(expression: str) -> Template:
    """Compiling costs about a millisecond: once per expression, not per message."""
    return _params_env.from_string(expression)


class ParamError(ValueError):
    """A template parameter is missing, empty or over the provider's limit."""


# Signatures ---------------------------------------------------------------------------------


_RESERVED_RUN = re.compile(r"[^A-Za-z0-9\-_.~]+")


def pct(value: str) -> str:
    """Aliyun's percent-encoding: RFC 3986 unreserved characters stay, space is %20; the
    same as urllib's quote(value, safe="~"), which took most of a 100-number SendBatchSms's
    CPU. Runs of other characters are escaped once each and cached: a batch's JSON repeats
    the same few (`","`, a sign name)."""
    return _RESERVED_RUN.sub(_escaped_run, value)


def _escaped_run(match: re.Match[str]) -> str:
    return _escapes(match.group())


@lru_cache(maxsize=4096)
def _escapes(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def _pct_json_str(text: str) -> str:
    """pct of a string's JSON; a phone number's digits need no escaping."""
    return f"%22{text}%22" if text.isdigit() and text.isascii() else pct(_dumps(text))


_MAINLAND_LIST = re.compile(r"(?:\+86[0-9]+,)*\+86[0-9]+")


def _pct_phone_json(addresses: list[str]) -> str:
    """pct of the JSON list of Aliyun's numbers; mainland numbers, the usual batch, with a
    few string operations on the whole list instead of some per number."""
    joined = ",".join(addresses)
    if _MAINLAND_LIST.fullmatch(joined):
        return f"%5B%22{joined.replace('+86', '').replace(',', '%22%2C%22')}%22%5D"
    return _pct_json_list([_pct_json_str(aliyun_phone(address)) for address in addresses])


def _pct_json_list(items: list[str]) -> str:
    """pct of a JSON list from its items' pct: orjson writes `[a,b]`, without spaces."""
    return f"%5B{'%2C'.join(items)}%5D"


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items()))


def aliyun_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    return _sign_canonical(method, canonical_query(params), secret)


def _sign_canonical(method: str, canonical: str, secret: str) -> str:
    # pct(canonical) without a second pass: an encoded query holds only unreserved
    # characters, "%", "=" and "&" (tests reproduce the documented signatures).
    encoded = canonical.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
    to_sign = f"{method}&%2F&{encoded}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def tc3_signature(
    secret_key: str, service: str, host: str, timestamp: int, payload: bytes, content_type: str
) -> str:
    """TC3-HMAC-SHA256 over a POST to `/` signing content-type and host."""
    canonical_request = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    day = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")
    scope = f"{day}/{service}/tc3_request"
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )

    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    key = sign(sign(sign(f"TC3{secret_key}".encode(), day), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# Template parameters ----------------------------------------------------------------------


def template_params(
    mapping: SmsTemplateMapping, context: Mapping[str, Any], settings: CnSmsSettings
) -> dict[str, str]:
    """The provider's named parameters for one message, checked against its limits."""
    tencent = settings.provider == "tencent"
    limit = settings.param_max_length
    total = len(settings.sign_name or "")
    values: dict[str, str] = {}
    for name, expression in mapping.params.items():
        try:
            value = render_param(expression, context).strip()
        except UndefinedError as exc:
            raise ParamError(f"SMS parameter {name!r}: {exc.message}") from None
        size = len(value)
        if not size:
            raise ParamError(f"SMS parameter {name!r} is empty")
        if size > limit:
            raise ParamError(
                f"SMS parameter {name!r} has {size} characters, over the"
                f" {limit} allowed (cn_sms.param_max_length)"
            )
        if tencent and "://" in value and ("http://" in value or "https://" in value):
            raise ParamError(f"SMS parameter {name!r}: Tencent takes no links in parameters")
        total += size
        values[name] = value
    if tencent and total > TENCENT_TOTAL_LIMIT:
        raise ParamError(f"SMS over Tencent's {TENCENT_TOTAL_LIMIT} characters")
    return values


def sms_template_of(settings: CnSmsSettings, template: str) -> SmsTemplateMapping:
    """Preflight: the template's mapping to a provider template, or a TemplateError naming
    the setting."""
    mapping = settings.templates.get(template)
    if mapping is None:
        raise TemplateError(
            f"no cn_sms.templates entry for template {template!r}: map it to the"
            f" {settings.provider} template code and its parameters"
        )
    return mapping


def prepare(
    settings: CnSmsSettings, messages: list[OutgoingMessage]
) -> tuple[list[Prepared], list[Outcome]]:
    """Messages ready to send, grouped by template and parameters, and outcomes for those
    that cannot be (failed, with why)."""
    alike = _all_alike(settings, messages)
    if alike is not None:
        return [alike], []
    ready: list[Prepared] = []
    failed: list[Outcome] = []
    checkers: dict[object, _Checked | None] = {}
    for message in messages:
        template = message.context.get("template", "")
        if template in checkers:
            checked = checkers[template]
        else:
            mapping = settings.templates.get(str(template))
            checked = checkers[template] = _Checked(settings, mapping) if mapping else None
        if checked is None:
            reason = f"no cn_sms.templates entry for template {str(template)!r}"
            failed.append(Outcome(message.claimed.id, "failed", reason))
            continue
        group = checked.group(message.context)
        if isinstance(group, str):
            failed.append(Outcome(message.claimed.id, "failed", group))
            continue
        if not group.messages:
            ready.append(group)
        group.messages.append(message)
    return ready, failed


_CONTEXT = attrgetter("context")
_TEMPLATE = itemgetter("template")


def _all_alike(settings: CnSmsSettings, messages: list[OutgoingMessage]) -> Prepared | None:
    """The messages as one group when all have the same template and the same plain-name
    parameter values (str or int), as a night's batch mostly does: checked with maps in C
    instead of message by message. None sends them through the general path."""
    if not messages:
        return None
    contexts = list(map(_CONTEXT, messages))
    try:
        templates = list(map(_TEMPLATE, contexts))
    except (KeyError, TypeError):
        return None
    mapping = settings.templates.get(str(templates[0]))
    if mapping is None or templates.count(templates[0]) != len(templates):
        return None
    names = [_plain_name(expression) for expression in mapping.params.values()]
    if None in names:
        return None
    if names:
        try:
            values = list(map(itemgetter(*names), contexts))
        except (KeyError, TypeError):
            return None
        flat = chain.from_iterable(values) if len(names) > 1 else values
        # str and int only: equal values then mean equal parameters (not so for 1 and True).
        if not set(map(type, flat)) <= {str, int} or values.count(values[0]) != len(values):
            return None
    group = _Checked(settings, mapping).group(contexts[0])
    if isinstance(group, str):
        return None  # the general path fails each message with the reason
    group.messages = list(messages)
    return group


class _Checked:
    """One template mapping's parameters, checked once per distinct set of values: a send's
    messages mostly share theirs, and rendering and checking them for each message was a
    third of a batch's CPU."""

    def __init__(self, settings: CnSmsSettings, mapping: SmsTemplateMapping) -> None:
        self.settings, self.mapping = settings, mapping
        names = [_plain_name(expression) for expression in mapping.params.values()]
        plain = [name for name in names if name is not None]
        self.lookup = itemgetter(*plain) if plain and len(plain) == len(names) else None
        self.single = len(names) == 1
        self.known: dict[object, Prepared | str] = {}

    def group(self, context: Mapping[str, Any]) -> Prepared | str:
        """The group of the messages with these parameters, or why they fail."""
        if self.lookup is None:
            return self._check(context)  # Jinja expressions: rendered for each message
        try:
            values = self.lookup(context)
        except KeyError:
            return self._check(context)  # names the missing parameter
        # A plain name renders as str(value): the checks see only these strings.
        key = str(values) if self.single else tuple(map(str, values))
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self._check(context)
        return found

    def _check(self, context: Mapping[str, Any]) -> Prepared | str:
        try:
            params = template_params(self.mapping, context, self.settings)
        except ParamError as exc:
            return str(exc)
        return Prepared([], self.mapping.code, params)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()  # UTF-8 as is, like ensure_ascii=False


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)  # a 200-number answer: ~5x faster than json.loads
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


# Aliyun -----------------------------------------------------------------------------------

# Codes that may pass on a later try: flow control and the provider's own trouble.
ALIYUN_TRANSIENT = {
    "Throttling.User",
    "Throttling.Api",
    "isp.SYSTEM_ERROR",
    "isp.RAM_PERMISSION_DENY",
}


def e164_phone(address: str) -> str:
    """A number in E.164. A mainland number may be stored as 11 digits or with 86 / 0086 in
    front; both providers take those forms, but Tencent answers in E.164 (SendSms,
    PhoneNumberSet) and Aliyun's QuerySendDetails takes the 11 digits only."""
    digits = address.replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        return digits
    if digits.startswith("0086"):
        return "+" + digits[2:]
    if len(digits) == 13 and digits.startswith("861"):
        return "+" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return digits


def aliyun_phone(address: str) -> str:
    """Mainland numbers as 11 digits; others with their country code, without `+`."""
    number = e164_phone(address)
    return number[3:] if number.startswith("+86") else number.lstrip("+")


@dataclass(frozen=True)
class AliyunSms:
    settings: CnSmsSettings
    split_refused = True  # one invalid number refuses a whole SendBatchSms

    def _request(
        self,
        params: dict[str, str],
        now: dt.datetime | None = None,
        encoded: Mapping[str, str] | None = None,
    ) -> HttpRequest:
        """`encoded`: parameters given already percent-encoded (their names are plain)."""
        now = now or dt.datetime.now(dt.UTC)
        common = {
            "AccessKeyId": self.settings.access_key_id or "",
            "Format": "JSON",
            "RegionId": self.settings.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        secret = self.settings.access_key_secret
        pairs = {pct(k): pct(v) for k, v in {**common, **params}.items()}
        pairs.update(encoded or {})
        canonical = "&".join(f"{k}={v}" for k, v in sorted(pairs.items()))  # the body too
        signature = _sign_canonical("POST", canonical, secret.get_secret_value() if secret else "")
        body = f"{canonical}&Signature={pct(signature)}".encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return HttpRequest("POST", self.settings.endpoint + "/", headers, body)

    def batches(self, ready: list[Prepared]) -> list[list[Prepared]]:
        by_code: dict[str, list[Prepared]] = {}
        for group in ready:
            by_code.setdefault(group.code, []).append(group)
        size = self.settings.batch_size
        return [batch for same in by_code.values() for batch in in_batches(same, size)]

    def send_request(self, batch: list[Prepared]) -> HttpRequest:
        sign = self.settings.sign_name or ""
        size = size_of(batch)
        if size == 1:
            [group] = batch
            return self._request(
                {
                    "Action": "SendSms",
                    "PhoneNumbers": aliyun_phone(group.message.address),
                    "SignName": sign,
                    "TemplateCode": group.code,
                    "TemplateParam": _dumps(group.params),
                    "OutId": group.message.claimed.key[:256],
                }
            )
        # The JSON lists percent-encoded from their items': encoding 100 numbers' JSON
        # whole was most of the call's CPU.
        params: list[str] = []
        for group in batch:
            params += [pct(_dumps(group.params))] * len(group.messages)
        addresses = [address for group in batch for address in map(_ADDRESS, group.messages)]
        return self._request(
            {"Action": "SendBatchSms", "TemplateCode": batch[0].code},
            encoded={
                "PhoneNumberJson": _pct_phone_json(addresses),
                "SignNameJson": _pct_json_list([pct(_dumps(sign))] * size),
                "TemplateParamJson": _pct_json_list(params),
            },
        )

    def verdicts(
        self, batch: list[Prepared], status: int, body: bytes
    ) -> list[tuple[Verdict, str]]:
        answer = _json(body)
        code = str(answer.get("Code", ""))
        size = size_of(batch)
        if code == "OK":
            return [("sent", str(answer.get("BizId", "")))] * size
        if status == 429 or status >= 500 or code in ALIYUN_TRANSIENT:
            return [("retry", f"{code or status} {answer.get('Message', '')}".strip())] * size
        return [("failed", f"{code or status} {answer.get('Message', '')}".strip())] * size

    def lookups(self, item: Prepared, now: dt.datetime) -> list[HttpRequest]:
        """Today's and yesterday's records for the number (a crash may straddle midnight)."""
        today = now.astimezone(CHINA).date()
        return [
            self._request(
                {
                    "Action": "QuerySendDetails",
                    "PhoneNumber": aliyun_phone(item.message.address),
                    "SendDate": day.strftime("%Y%m%d"),
                    "PageSize": "50",
                    "CurrentPage": "1",
                }
            )
            for day in (today, today - dt.timedelta(days=1))
        ]

    def found(self, item: Prepared, body: bytes) -> str | None:
        answer = _json(body)
        details = answer.get("SmsSendDetailDTOs", {}).get("SmsSendDetailDTO", [])
        for sent in details if isinstance(details, list) else []:
            # Waiting for its receipt (1) or delivered (3): sent; failed (2) may go again.
            if sent.get("TemplateCode") == item.code and sent.get("SendStatus") in (1, 3):
                return f"aliyun-{sent.get('PhoneNum')}-{sent.get('SendDate')}"
        return None


# Tencent ----------------------------------------------------------------------------------

TENCENT_TRANSIENT_PREFIXES = (
    "RequestLimitExceeded",
    "InternalError",
    "LimitExceeded.AppGlobalDailyLimit",
)
# Per-number answers that mean the user asked not to get SMS from us (退订): suppress them.
TENCENT_SUPPRESS = {"FailedOperation.PhoneNumberInBlacklist"}
TENCENT_CONTENT_TYPE = "application/json; charset=utf-8"
_PHONE, _CODE, _SERIAL = (itemgetter(name) for name in ("PhoneNumber", "Code", "SerialNo"))
_ADDRESS = attrgetter("address")


@dataclass(frozen=True)
class TencentSms:
    settings: CnSmsSettings
    split_refused = False  # answers per number; a refused call is refused for all

    def _request(
        self, action: str, payload: dict[str, Any], now: float | None = None
    ) -> HttpRequest:
        stamp = int(now if now is not None else time.time())
        body = orjson.dumps(payload)
        host = urlsplit(self.settings.endpoint).netloc
        secret = self.settings.access_key_secret
        signature = tc3_signature(
            secret.get_secret_value() if secret else "",
            "sms",
            host,
            stamp,
            body,
            TENCENT_CONTENT_TYPE,
        )
        day = dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d")
        headers = {
            "Authorization": (
                f"TC3-HMAC-SHA256 Credential={self.settings.access_key_id}/{day}/sms/tc3_request,"
                f" SignedHeaders=content-type;host, Signature={signature}"
            ),
            "Content-Type": TENCENT_CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": action,
            "X-TC-Timestamp": str(stamp),
            "X-TC-Version": "2021-01-11",
            "X-TC-Region": self.settings.region_id,
        }
        return HttpRequest("POST", self.settings.endpoint + "/", headers, body)

    def batches(self, ready: list[Prepared]) -> list[list[Prepared]]:
        """One TemplateParamSet per call: messages with the same code and parameters."""
        alike: dict[tuple[str, tuple[str, ...], str], list[Prepared]] = {}
        for group in ready:
            context = session_context(group.messages[0].claimed)
            alike.setdefault((group.code, tuple(group.params.values()), context), []).append(group)
        size = self.settings.batch_size
        return [batch for same in alike.values() for batch in in_batches(same, size)]

    def send_request(self, batch: list[Prepared]) -> HttpRequest:
        first = batch[0]
        return self._request(
            "SendSms",
            {
                "PhoneNumberSet": [
                    e164_phone(m.address) for group in batch for m in group.messages
                ],
                "SmsSdkAppId": self.settings.sdk_app_id,
                "SignName": self.settings.sign_name,
                "TemplateId": first.code,
                "TemplateParamSet": list(first.params.values()),
                # Returned with each receipt: how a lookup tells this campaign's send.
                "SessionContext": session_context(first.messages[0].claimed),
            },
        )

    def verdicts(
        self, batch: list[Prepared], status: int, body: bytes
    ) -> list[tuple[Verdict, str]]:
        answer = _json(body).get("Response", {})
        error = answer.get("Error") if isinstance(answer, dict) else None
        size = size_of(batch)
        if status == 429 or status >= 500 or not isinstance(answer, dict):
            return [("retry", f"HTTP {status}")] * size
        if error:
            code, text = str(error.get("Code", "")), str(error.get("Message", ""))
            verdict: Verdict = "retry" if code.startswith(TENCENT_TRANSIENT_PREFIXES) else "failed"
            return [(verdict, f"{code} {text}")] * size
        statuses = answer.get("SendStatusSet")
        statuses = statuses if isinstance(statuses, list) else []
        messages = [m for group in batch for m in group.messages]
        phones = list(map(e164_phone, map(_ADDRESS, messages)))
        try:  # every number "Ok", answered in the order sent: checked and read in C
            in_order = list(map(_PHONE, statuses)) == phones
            if in_order and list(map(_CODE, statuses)).count("Ok") == len(statuses):
                return list(zip(repeat("sent"), map(str, map(_SERIAL, statuses))))
        except (KeyError, TypeError):
            pass  # a status without those fields: looked up one by one below
        by_phone = {s.get("PhoneNumber"): s for s in statuses if isinstance(s, dict)}
        return [_tencent_verdict(by_phone.get(phone)) for phone in phones]

    def lookups(self, item: Prepared, now: dt.datetime) -> list[HttpRequest]:
        since = int((now - dt.timedelta(days=1)).timestamp())
        return [
            self._request(
                "PullSmsSendStatusByPhoneNumber",
                {
                    "BeginTime": since,
                    "Offset": 0,
                    "Limit": 100,
                    "PhoneNumber": e164_phone(item.message.address),
                    "SmsSdkAppId": self.settings.sdk_app_id,
                },
            )
        ]

    def found(self, item: Prepared, body: bytes) -> str | None:
        answer = _json(body).get("Response", {})
        context = session_context(item.message.claimed)
        for receipt in answer.get("PullSmsSendStatusSet", []) if isinstance(answer, dict) else []:
            if (
                receipt.get("SessionContext") == context
                and receipt.get("ReportStatus") == "SUCCESS"
            ):
                return str(receipt.get("SerialNo", ""))
        return None


def session_context(claimed: Claimed) -> str:
    """What a send carries and its receipts return: the message's campaign and business date,
    read from its row, never cut out of its key (a user id may contain ':')."""
    if claimed.business_date is None:
        return claimed.key
    return f"{claimed.campaign}:{claimed.business_date.isoformat()}"


def _tencent_verdict(status: dict[str, Any] | None) -> tuple[Verdict, str]:
    if status is not None and status.get("Code") == "Ok":
        return "sent", str(status.get("SerialNo", ""))
    return _tencent_refusal(status)


def _tencent_refusal(status: dict[str, Any] | None) -> tuple[Verdict, str]:
    """The verdict on a number's status other than "Ok"."""
    if status is None:
        return "retry", "no status for this number in the answer"
    code, text = str(status.get("Code", "")), status.get("Message", "")
    if code in TENCENT_SUPPRESS:
        return "bounced", f"{code} {text}"
    if code.startswith(TENCENT_TRANSIENT_PREFIXES):
        return "retry", f"{code} {text}"
    return "failed", f"{code} {text}"


# The channel --------------------------------------------------------------------------------


def api_for(settings: CnSmsSettings) -> BatchApi:
    return AliyunSms(settings) if settings.provider == "aliyun" else TencentSms(settings)


class CnSmsChannel(BatchChannel):
    """Mainland SMS in as few provider calls as each provider allows (see batch_channel.py).
    When a whole Aliyun batch is refused, its messages are sent one by one, so one bad
    number does not fail the other 99."""

    def __init__(
        self, settings: CnSmsSettings, timeout: float, concurrency: int, attempts: int = 4
    ) -> None:
        super().__init__(
            api_for(settings), partial(prepare, settings), timeout, concurrency, attempts
        )
