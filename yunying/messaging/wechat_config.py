"""The `[wechat]` settings: official-account template messages (公众号模板消息) or
mini-program subscribe messages (小程序订阅消息) to a user's `openid`.

```toml
[wechat]
kind = "official_account"             # or "mini_program"
app_id = "wx..."
app_secret = "..."                    # YUNYING_WECHAT__APP_SECRET

[wechat.templates.winback]            # campaign template -> the approved WeChat template
template_id = "..."
data = { thing1 = "{{ campaign }}", number2 = "{{ days_inactive }}" }
link = "pages/index/index"            # a mini-program page, or an official account's URL
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator


class WeChatTemplate(BaseModel):
    model_config = {"extra": "forbid"}

    template_id: str = Field(min_length=1)
    data: dict[str, str] = Field(min_length=1)  # the template's keyword -> Jinja over the message
    link: str | None = None


class WeChatSettings(BaseModel):
    model_config = {"extra": "forbid"}

    kind: Literal["official_account", "mini_program"] | None = None  # None: no WeChat channel
    url: str = "https://api.weixin.qq.com"
    app_id: str | None = None
    app_secret: SecretStr | None = None
    templates: dict[str, WeChatTemplate] = Field(default_factory=dict)
    # A token is refreshed this long before WeChat says it expires (7,200 s), so no send
    # carries one that dies on the way.
    refresh_before_seconds: int = Field(default=300, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> WeChatSettings:
        if self.kind is None:
            return self
        missing = [name for name in ("app_id", "app_secret") if not getattr(self, name)]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} for WeChat ({self.kind})")
        if not self.templates:
            raise ValueError("templates: map each campaign template to a WeChat template_id")
        return self
