"""The Chinese providers and group-chat robots the local server plays (see local_server.py).

Each endpoint checks a request the way its provider documents it (key, signature, body) and
answers with the provider's documented success and error bodies:

- `POST /cgi-bin/webhook/send?key=` — a WeCom group robot;
- `POST /robot/send?access_token=&timestamp=&sign=` — a DingTalk custom robot;
- `POST /open-apis/bot/v2/hook/<id>` — a Feishu custom bot;
- `POST /` with a form body — Aliyun dysmsapi (SendSms, SendBatchSms, QuerySendDetails);
- `POST /` with `X-TC-Action` — Tencent Cloud SMS (SendSms, PullSmsSendStatusByPhoneNumber);
- `POST /v3/push` — JPush; `POST /v1/projects/<p>/messages:send` and `POST /token` — FCM HTTP v1
  and Google's OAuth2 token endpoint;
- `GET /cgi-bin/token`, `POST /cgi-bin/message/{template,subscribe}/send` — WeChat.

`busy` answers the next posts with each robot's flow-control code, as a throttled robot does.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

Answer = tuple[int, dict[str, Any]]


@dataclass
class ChatRobots:
    wecom_keys: set[str] = field(default_factory=set)
    dingtalk: dict[str, str | None] = field(default_factory=dict)  # access_token -> secret
    feishu: dict[str, str | None] = field(default_factory=dict)  # hook id -> secret
    received: list[dict[str, Any]] = field(default_factory=list)
    # robot kind -> how many of its next posts are answered with its flow-control code
    busy: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _throttled(self, kind: str) -> bool:
        with self._lock:
            if self.busy.get(kind, 0) > 0:
                self.busy[kind] -= 1
                return True
            return False

    def _receive(self, kind: str, robot: str, body: dict[str, Any], query: dict[str, str]) -> None:
        with self._lock:
            self.received.append({"kind": kind, "robot": robot, "body": body, "query": query})

    def post(self, path: str, raw: bytes) -> Answer | None:
        parsed = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        if parsed.path == "/cgi-bin/webhook/send":
            return self._wecom(query, raw)
        if parsed.path == "/robot/send":
            return self._dingtalk(query, raw)
        if parsed.path.startswith("/open-apis/bot/v2/hook/"):
            return self._feishu(parsed.path.rsplit("/", 1)[1], query, raw)
        return None

    def _wecom(self, query: dict[str, str], raw: bytes) -> Answer:
        key = query.get("key", "")
        if key not in self.wecom_keys:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [..]"}
        body = _json_object(raw)
        content = (body or {}).get("markdown", {}).get("content")
        if body is None or body.get("msgtype") != "markdown" or not content:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if len(content.encode()) > 4096:
            return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
        if self._throttled("wecom"):
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        self._receive("wecom", key, body, query)
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _dingtalk(self, query: dict[str, str], raw: bytes) -> Answer:
        token = query.get("access_token", "")
        if token not in self.dingtalk:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        secret = self.dingtalk[token]
        if secret is not None:
            stamp = query.get("timestamp", "")
            if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > 3_600_000:
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            to_sign = f"{stamp}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(secret.encode(), to_sign, "sha256").digest())
            if not hmac.compare_digest(expected.decode(), query.get("sign", "")):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
        body = _json_object(raw)
        if body is None or body.get("msgtype") not in ("text", "markdown", "link", "actionCard"):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        if self._throttled("dingtalk"):
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        self._receive("dingtalk", token, body, query)
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _feishu(self, hook: str, query: dict[str, str], raw: bytes) -> Answer:
        if hook not in self.feishu:
            return 404, {
                "code": 19001,
                "data": {},
                "msg": "param invalid: incoming webhook access token invalid",
            }
        body = _json_object(raw)
        if body is None or body.get("msg_type") not in ("text", "post", "interactive"):
            return 400, {"code": 9499, "data": {}, "msg": "Bad Request"}
        secret = self.feishu[hook]
        if secret is not None:
            stamp = str(body.get("timestamp", ""))
            key = f"{stamp}\n{secret}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 3600
            if not fresh or not hmac.compare_digest(expected, str(body.get("sign", ""))):
                return 200, {
                    "code": 19021,
                    "data": {},
                    "msg": "sign match fail or timestamp is not within one hour from current time",
                }
        if self._throttled("feishu"):
            return 200, {"code": 11232, "data": {}, "msg": "frequency limited psm"}
        self._receive("feishu", hook, body, query)
        return 200, {"code": 0, "data": {}, "msg": "success"}


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _pct(value: str) -> str:
    return quote(value, safe="~")


@dataclass
class SmsRecord:
    phone: str
    code: str
    params: Any
    sign: str
    sent_at: float
    ref: str
    context: str = ""


@dataclass
class SmsBook:
    """What an SMS provider has sent, as its status queries see it."""

    sent: list[SmsRecord] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # API action -> requests
    reject: set[str] = field(default_factory=set)  # numbers the provider calls invalid
    blacklist: set[str] = field(default_factory=set)  # numbers that unsubscribed (退订)
    busy: int = 0  # the next this many sends are refused by flow control
    lookups_down: bool = False  # the status query answers 503 (sends still work)
    late_answers: int = 0  # the next this many sends are taken, then answered this late:
    late_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, record: SmsRecord) -> None:
        with self._lock:
            self.sent.append(record)

    def count(self, action: str) -> None:
        with self._lock:
            self.calls[action] += 1

    def answer_late(self) -> None:
        """After a send is taken: a slow answer, which a client may give up waiting for."""
        with self._lock:
            late, self.late_answers = self.late_answers > 0, max(self.late_answers - 1, 0)
        if late:
            time.sleep(self.late_seconds)

    def throttled(self) -> bool:
        with self._lock:
            if self.busy > 0:
                self.busy -= 1
                return True
            return False

    @property
    def double_sends(self) -> int:
        with self._lock:
            phones = Counter((r.phone, r.code) for r in self.sent)
        return sum(n - 1 for n in phones.values() if n > 1)

    def to(self, phone: str) -> list[SmsRecord]:
        with self._lock:
            return [r for r in self.sent if r.phone == phone]


@dataclass
class AliyunSmsServer:
    """dysmsapi 2017-05-25 over RPC (POST form to `/`), signature v1 checked."""

    accounts: dict[str, str] = field(default_factory=dict)  # AccessKeyId -> secret
    sign_names: set[str] = field(default_factory=set)
    templates: dict[str, set[str]] = field(default_factory=dict)  # code -> parameter names
    book: SmsBook = field(default_factory=SmsBook)
    _nonces: set[str] = field(default_factory=set)

    def handle(self, form: dict[str, str]) -> Answer:
        action = form.get("Action", "")
        self.book.count(action)
        problem = self._authenticate(form)
        if problem:
            return problem
        if action == "QuerySendDetails":
            if self.book.lookups_down:
                return 503, _aliyun_error("ServiceUnavailable", "The request has failed.")
            return self._query(form)
        if action not in ("SendSms", "SendBatchSms"):
            return 404, _aliyun_error(
                "InvalidAction.NotFound", f"Specified api is not found, {action}"
            )
        if self.book.throttled():
            return 200, _aliyun_error(
                "Throttling.User", "Request was denied due to user flow control."
            )
        if action == "SendSms":
            phones = form.get("PhoneNumbers", "").split(",")
            signs = [form.get("SignName", "")] * len(phones)
            params = [_loads(form.get("TemplateParam", "{}"))] * len(phones)
        else:
            phones = _loads(form.get("PhoneNumberJson", "[]"))
            signs = _loads(form.get("SignNameJson", "[]"))
            params = _loads(form.get("TemplateParamJson", "[]"))
            if not (len(phones) == len(signs) == len(params)) or len(phones) > 100:
                return 200, _aliyun_error("isv.INVALID_PARAMETERS", "参数异常")
        code = form.get("TemplateCode", "")
        if code not in self.templates:
            return 200, _aliyun_error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        if any(sign not in self.sign_names for sign in signs):
            return 200, _aliyun_error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if any(not isinstance(p, dict) or set(p) != self.templates[code] for p in params):
            return 200, _aliyun_error("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if any(phone in self.book.reject for phone in phones):
            return 200, _aliyun_error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        biz_id = f"{uuid.uuid4().int % 10**18}^0"
        for phone, sign, values in zip(phones, signs, params, strict=True):
            self.book.record(
                SmsRecord(phone, code, values, sign, time.time(), biz_id, form.get("OutId", ""))
            )
        self.book.answer_late()
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4())}

    def _authenticate(self, form: dict[str, str]) -> Answer | None:
        secret = self.accounts.get(form.get("AccessKeyId", ""))
        if secret is None:
            return 404, _aliyun_error(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        for name in (
            "Format",
            "SignatureMethod",
            "SignatureNonce",
            "SignatureVersion",
            "Timestamp",
            "Version",
        ):
            if not form.get(name):
                return 400, _aliyun_error(
                    "MissingParameter", f"{name} is mandatory for this action."
                )
        stamp = dt.datetime.strptime(form["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        if abs(time.time() - stamp.timestamp()) > 900:
            return 400, _aliyun_error(
                "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        if form["SignatureNonce"] in self._nonces:
            return 400, _aliyun_error(
                "SignatureNonceUsed", "Specified signature nonce was used already."
            )
        params = {k: v for k, v in form.items() if k != "Signature"}
        canonical = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in sorted(params.items()))
        to_sign = f"POST&%2F&{_pct(canonical)}"
        digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), form.get("Signature", "")):
            return 400, _aliyun_error(
                "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
            )
        self._nonces.add(form["SignatureNonce"])
        return None

    def _query(self, form: dict[str, str]) -> Answer:
        day = form.get("SendDate", "")
        details = [
            {
                "PhoneNum": r.phone,
                "SendStatus": 3,
                "ErrCode": "DELIVERED",
                "TemplateCode": r.code,
                "Content": f"【{r.sign}】{json.dumps(r.params, ensure_ascii=False)}",
                "SendDate": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.sent_at + 8 * 3600)),
                "ReceiveDate": time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.gmtime(r.sent_at + 8 * 3600)
                ),
                "OutId": r.context,
            }
            for r in self.book.to(form.get("PhoneNumber", ""))
            if time.strftime("%Y%m%d", time.gmtime(r.sent_at + 8 * 3600)) == day
        ]
        return 200, {
            "Code": "OK",
            "Message": "OK",
            "RequestId": str(uuid.uuid4()),
            "TotalCount": len(details),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": details[:50]},
        }


def _aliyun_error(code: str, message: str) -> dict[str, Any]:
    return {"Code": code, "Message": message, "RequestId": str(uuid.uuid4())}


@dataclass
class TencentSmsServer:
    """sms 2021-01-11 (JSON POST to `/`), TC3-HMAC-SHA256 checked."""

    accounts: dict[str, str] = field(default_factory=dict)  # SecretId -> SecretKey
    app_ids: set[str] = field(default_factory=set)
    sign_names: set[str] = field(default_factory=set)
    templates: dict[str, int] = field(default_factory=dict)  # TemplateId -> parameter count
    book: SmsBook = field(default_factory=SmsBook)

    def handle(self, headers: Mapping[str, str], raw: bytes) -> Answer:
        action = headers.get("X-TC-Action", "")
        self.book.count(action)
        problem = self._authenticate(headers, raw)
        if problem:
            return 200, _tencent_error(*problem)
        body = _json_object(raw) or {}
        if body.get("SmsSdkAppId") not in self.app_ids:
            return 200, _tencent_error(
                "FailedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail."
            )
        if action == "PullSmsSendStatusByPhoneNumber":
            if self.book.lookups_down:
                return 503, _tencent_error("InternalError", "An internal error has occurred.")
            return self._pull(body)
        if action != "SendSms":
            return 200, _tencent_error("InvalidAction", f"The action {action} is not found.")
        if self.book.throttled():
            return 200, _tencent_error(
                "RequestLimitExceeded", "Your current request times exceed the limit."
            )
        phones = [_mainland_e164(str(n)) for n in body.get("PhoneNumberSet", [])]
        params = body.get("TemplateParamSet", [])
        if not 1 <= len(phones) <= 200:
            return 200, _tencent_error(
                "LimitExceeded.PhoneNumberCountLimit", "At most 200 numbers."
            )
        if body.get("SignName") not in self.sign_names:
            return 200, _tencent_error(
                "FailedOperation.SignatureIncorrectOrUnapproved", "signature unapproved"
            )
        template = str(body.get("TemplateId", ""))
        if template not in self.templates:
            return 200, _tencent_error(
                "FailedOperation.TemplateIncorrectOrUnapproved", "template unapproved"
            )
        if len(params) != self.templates[template]:
            return 200, _tencent_error(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "the number of parameters does not match the template",
            )
        statuses = []
        for phone in phones:
            status = {
                "PhoneNumber": phone,
                "Fee": 1,
                "SessionContext": body.get("SessionContext", ""),
                "IsoCode": "CN",
            }
            if phone in self.book.reject:
                status |= {
                    "SerialNo": "",
                    "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                    "Message": "手机号格式错误",
                }
            elif phone in self.book.blacklist:
                status |= {
                    "SerialNo": "",
                    "Code": "FailedOperation.PhoneNumberInBlacklist",
                    "Message": "手机号在免打扰名单库中",
                }
            else:
                serial = f"2019:{uuid.uuid4().int % 10**19}"
                status |= {"SerialNo": serial, "Code": "Ok", "Message": "send success"}
                self.book.record(
                    SmsRecord(
                        phone,
                        template,
                        params,
                        body["SignName"],
                        time.time(),
                        serial,
                        body.get("SessionContext", ""),
                    )
                )
            statuses.append(status)
        self.book.answer_late()
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}

    def _authenticate(self, headers: Mapping[str, str], raw: bytes) -> tuple[str, str] | None:
        auth = headers.get("Authorization", "")
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/sms/tc3_request,"
            r" SignedHeaders=([a-z;-]+), Signature=([0-9a-f]{64})",
            auth,
        )
        if match is None:
            return "AuthFailure.InvalidAuthorization", "Authorization header is malformed."
        secret_id, day, signed, signature = match.groups()
        secret = self.accounts.get(secret_id)
        if secret is None:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found."
        stamp = int(headers.get("X-TC-Timestamp", "0"))
        if abs(time.time() - stamp) > 300:
            return "AuthFailure.SignatureExpire", "Signature expired."
        lower = {k.lower(): v for k, v in headers.items()}
        names = signed.split(";")
        # Header names and values are lowercased and trimmed (TC3's canonical headers).
        canonical_headers = "".join(f"{n}:{lower.get(n, '').strip().lower()}\n" for n in names)
        canonical = "\n".join(
            ["POST", "/", "", canonical_headers, signed, hashlib.sha256(raw).hexdigest()]
        )
        scope = f"{day}/sms/tc3_request"
        to_sign = "\n".join(
            ["TC3-HMAC-SHA256", str(stamp), scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = f"TC3{secret}".encode()
        for part in (day, "sms", "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return (
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated.",
            )
        return None

    def _pull(self, body: dict[str, Any]) -> Answer:
        since = int(body.get("BeginTime", 0))
        receipts = [
            {
                "UserReceiveTime": int(r.sent_at),
                "CountryCode": "86",
                "SubscriberNumber": r.phone[3:],
                "PhoneNumber": r.phone,
                "SerialNo": r.ref,
                "ReportStatus": "SUCCESS",
                "Description": "用户短信送达成功",
                "SessionContext": r.context,
            }
            for r in self.book.to(_mainland_e164(str(body.get("PhoneNumber", ""))))
            if r.sent_at >= since
        ]
        limit = int(body.get("Limit", 100))
        return 200, {
            "Response": {"PullSmsSendStatusSet": receipts[:limit], "RequestId": str(uuid.uuid4())}
        }


def _tencent_error(code: str, message: str) -> dict[str, Any]:
    return {
        "Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}
    }


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


@dataclass
class PushBook:
    delivered: list[dict[str, Any]] = field(default_factory=list)  # request bodies accepted
    dead: set[str] = field(default_factory=set)  # tokens the provider no longer knows
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.delivered.append(body)


@dataclass
class JPushServer:
    """JPush REST v3 `POST /v3/push`, Basic appKey:masterSecret."""

    app_key: str = ""
    master_secret: str = ""
    book: PushBook = field(default_factory=PushBook)

    def handle(self, headers: Mapping[str, str], raw: bytes) -> Answer:
        pair = base64.b64encode(f"{self.app_key}:{self.master_secret}".encode()).decode()
        if headers.get("Authorization") != f"Basic {pair}":
            return 401, {"error": {"code": 1004, "message": "Authen failed"}}
        body = _json_object(raw) or {}
        ids = body.get("audience", {}).get("registration_id", [])
        if body.get("platform") is None or not ids or "notification" not in body:
            return 400, {"error": {"code": 1003, "message": "Parameter value is invalid"}}
        live = [i for i in ids if i not in self.book.dead]
        if not live:
            return 400, {"error": {"code": 1011, "message": "cannot find user by this audience"}}
        self.book.record(body)
        return 200, {"sendno": "0", "msg_id": str(uuid.uuid4().int % 10**17)}


@dataclass
class FcmServer:
    """FCM HTTP v1 `POST /v1/projects/<p>/messages:send` and Google's OAuth2 token endpoint
    (`POST /token`, a JWT bearer grant signed RS256 with the service account's key)."""

    project: str = ""
    public_keys: dict[str, Any] = field(default_factory=dict)  # client_email -> RSA key
    tokens: set[str] = field(default_factory=set)  # access tokens issued and still valid
    grants: int = 0
    book: PushBook = field(default_factory=PushBook)

    def token(self, raw: bytes) -> Answer:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            header, claims, signature = (
                _b64url(part) for part in form.get("assertion", "").split(".")
            )
            payload = json.loads(claims)
            key = self.public_keys[payload["iss"]]
            signed = form["assertion"].rsplit(".", 1)[0].encode()
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, InvalidSignature):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if json.loads(header).get("alg") != "RS256" or payload.get("exp", 0) < time.time():
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        if "https://www.googleapis.com/auth/firebase.messaging" not in payload.get("scope", ""):
            return 400, {"error": "invalid_scope"}
        token = f"ya29.{uuid.uuid4().hex}"
        self.tokens.add(token)
        self.grants += 1
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def send(self, path: str, headers: Mapping[str, str], raw: bytes) -> Answer:
        if path != f"/v1/projects/{self.project}/messages:send":
            return 404, _fcm_error(404, "NOT_FOUND", "Requested entity was not found.", None)
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens:
            return 401, _fcm_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None
            )
        message = (_json_object(raw) or {}).get("message", {})
        if not message.get("token") or "notification" not in message:
            return 400, _fcm_error(400, "INVALID_ARGUMENT", "Invalid message.", "INVALID_ARGUMENT")
        if message["token"] in self.book.dead:
            return 404, _fcm_error(
                404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"
            )
        self.book.record(message)
        return 200, {"name": f"projects/{self.project}/messages/0:{uuid.uuid4().hex}"}


def _fcm_error(code: int, status: str, message: str, error_code: str | None) -> dict[str, Any]:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
        if error_code
        else []
    )
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class WeChatServer:
    """`GET /cgi-bin/token` and `POST /cgi-bin/message/{template,subscribe}/send`."""

    app_id: str = ""
    app_secret: str = ""
    tokens: set[str] = field(default_factory=set)  # valid access tokens
    token_fetches: int = 0
    unfollowed: set[str] = field(default_factory=set)  # 43004
    refused: set[str] = field(default_factory=set)  # 43101
    book: PushBook = field(default_factory=PushBook)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, query: dict[str, str]) -> Answer:
        if query.get("grant_type") != "client_credential":
            return 200, {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != self.app_id:
            return 200, {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != self.app_secret:
            return 200, {"errcode": 40125, "errmsg": "invalid appsecret"}
        token = uuid.uuid4().hex
        with self._lock:
            self.tokens = {token}  # a new token ends the old one, as WeChat's /cgi-bin/token does
            self.token_fetches += 1
        return 200, {"access_token": token, "expires_in": 7200}

    def expire(self) -> None:
        with self._lock:
            self.tokens = set()

    def send(self, kind: str, query: dict[str, str], raw: bytes) -> Answer:
        if query.get("access_token") not in self.tokens:
            return 200, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
        body = _json_object(raw) or {}
        if not body.get("touser") or not body.get("template_id") or not body.get("data"):
            return 200, {"errcode": 47003, "errmsg": "argument invalid!"}
        if any(not isinstance(v, dict) or "value" not in v for v in body["data"].values()):
            return 200, {"errcode": 47003, "errmsg": "argument invalid! data.value empty"}
        if body["touser"] in self.unfollowed:
            return 200, {"errcode": 43004, "errmsg": "require subscribe"}
        if body["touser"] in self.refused:
            return 200, {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
        self.book.record({**body, "kind": kind})
        return 200, {"errcode": 0, "errmsg": "ok", "msgid": uuid.uuid4().int % 10**12}


@dataclass
class CnProviders:
    """Every Chinese provider the local server plays; `post` answers the requests that are
    theirs and returns None for the rest."""

    robots: ChatRobots = field(default_factory=ChatRobots)
    aliyun: AliyunSmsServer = field(default_factory=AliyunSmsServer)
    tencent: TencentSmsServer = field(default_factory=TencentSmsServer)
    jpush: JPushServer = field(default_factory=JPushServer)
    fcm: FcmServer = field(default_factory=FcmServer)
    wechat: WeChatServer = field(default_factory=WeChatServer)

    def post(self, path: str, headers: Mapping[str, str], raw: bytes) -> Answer | None:
        plain = urlparse(path).path
        if plain in ("/cgi-bin/message/template/send", "/cgi-bin/message/subscribe/send"):
            query = {k: v[0] for k, v in parse_qs(urlparse(path).query).items()}
            return self.wechat.send(plain.split("/")[3], query, raw)
        if plain == "/v3/push":
            return self.jpush.handle(headers, raw)
        if plain == "/token":
            return self.fcm.token(raw)
        if plain.startswith("/v1/projects/"):
            return self.fcm.send(plain, headers, raw)
        if urlparse(path).path == "/" and "X-TC-Action" in headers:
            return self.tencent.handle(headers, raw)
        if urlparse(path).path == "/" and headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
            return self.aliyun.handle(form)
        return self.robots.post(path, raw)

    def get(self, path: str, headers: Mapping[str, str]) -> Answer | None:
        if urlparse(path).path == "/cgi-bin/token":
            query = {k: v[0] for k, v in parse_qs(urlparse(path).query).items()}
            return self.wechat.token(query)
        return None


def _mainland_e164(number: str) -> str:
    """Tencent reads a mainland number given as 0086…, 86… or 11 digits as +86… and answers
    it so (SendSms, PhoneNumberSet: https://cloud.tencent.com/document/api/382/55981)."""
    if re.fullmatch(r"1\d{10}", number):
        return f"+86{number}"
    if re.fullmatch(r"(0086|86)1\d{10}", number):
        return f"+86{number[-11:]}"
    return number
