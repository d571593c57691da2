"""The `[[notify]]` settings: where ops are told what happened, validated at start-up.

```toml
[[notify]]
kind = "dingtalk"                 # wecom | dingtalk | feishu | apprise
url = "https://oapi.dingtalk.com/robot/send?access_token=..."
secret = "SEC..."                 # DingTalk and Feishu signing secret (加签 / 签名校验)
events = ["failure", "payout"]    # default: every event
```
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator

Event = Literal["report", "failure", "payout", "review"]
EVENTS: tuple[Event, ...] = ("report", "failure", "payout", "review")
RobotKind = Literal["wecom", "dingtalk", "feishu", "apprise"]


class NotifyTarget(BaseModel):
    model_config = {"extra": "forbid"}

    kind: RobotKind
    # The robot's webhook address. It carries the robot's key or token: it is a secret too
    # and is never logged (logs name the target by `name`).
    url: SecretStr
    secret: SecretStr | None = None
    name: str = ""  # how logs and results name it; default: the kind and its position
    events: list[Event] = Field(default_factory=lambda: list(EVENTS), min_length=1)

    @model_validator(mode="after")
    def _url_fits_kind(self) -> NotifyTarget:
        url = self.url.get_secret_value()
        if self.kind == "apprise":
            _check_apprise_url(url)
            if self.secret is not None:
                raise ValueError("secret: an Apprise URL carries its own credentials")
            return self
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url: a {self.kind} robot's webhook is an http(s) address")
        query = parse_qs(parts.query)
        if self.kind == "wecom" and not query.get("key"):
            raise ValueError("url: a WeCom robot's webhook ends in ?key=<robot key>")
        if self.kind == "dingtalk" and not query.get("access_token"):
            raise ValueError("url: a DingTalk robot's webhook ends in ?access_token=<token>")
        if self.kind == "feishu" and "/bot/v2/hook/" not in parts.path:
            raise ValueError("url: a Feishu robot's webhook is .../open-apis/bot/v2/hook/<id>")
        if self.kind == "wecom" and self.secret is not None:
            raise ValueError("secret: WeCom group robots are not signed; remove it")
        return self


def _check_apprise_url(url: str) -> None:
    import apprise  # imported here: its plugins load slowly, and only Apprise users should wait

    if not apprise.Apprise().add(url):
        raise ValueError("url: Apprise does not recognise this URL (see appriseit.com/services)")


def labelled(targets: list[NotifyTarget]) -> list[tuple[str, NotifyTarget]]:
    """Each target with the name logs use: its own, or e.g. `dingtalk#2`."""
    return [(t.name or f"{t.kind}#{i}", t) for i, t in enumerate(targets, start=1)]
