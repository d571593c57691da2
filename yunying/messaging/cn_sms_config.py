"""The `[cn_sms]` settings: mainland SMS through Aliyun (dysmsapi) or Tencent Cloud.

Mainland SMS sends a pre-approved template (模板审核) under a pre-approved sign name (短信签名)
with named parameters, never free text. Each campaign template maps to the provider's code:

```toml
[cn_sms]
provider = "aliyun"                  # or "tencent"
access_key_id = "LTAI..."            # Tencent: the SecretId
access_key_secret = "..."            # Tencent: the SecretKey (YUNYING_CN_SMS__ACCESS_KEY_SECRET)
sign_name = "运营示例"
sdk_app_id = "1400000000"            # Tencent only: the SmsSdkAppId

[cn_sms.templates.winback]           # campaign template name -> the provider's template
code = "SMS_123456789"               # Tencent: the numeric TemplateId
params = { days = "{{ days_inactive }}" }   # provider parameter -> Jinja over the message
```
Tencent's parameters are positional: `params` keep their order ({1}, {2}, ...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

# Documented ceilings: Aliyun SendBatchSms takes at most 100 numbers a call; Tencent SendSms
# at most 200 (https://help.aliyun.com/zh/sms/developer-reference/api-dysmsapi-2017-05-25-sendbatchsms,
# https://cloud.tencent.com/document/api/382/55981).
MAX_BATCH = {"aliyun": 100, "tencent": 200}
DEFAULT_URL = {
    "aliyun": "https://dysmsapi.aliyuncs.com",
    "tencent": "https://sms.tencentcloudapi.com",
}
DEFAULT_REGION = {"aliyun": "cn-hangzhou", "tencent": "ap-guangzhou"}


class SmsTemplateMapping(BaseModel):
    model_config = {"extra": "forbid"}

    code: str = Field(min_length=1)
    params: dict[str, str] = Field(default_factory=dict)


class CnSmsSettings(BaseModel):
    model_config = {"extra": "forbid"}

    provider: Literal["aliyun", "tencent"] | None = None  # None: SMS goes the other ways
    url: str | None = None  # None: the provider's public endpoint
    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    sign_name: str | None = None
    sdk_app_id: str | None = None
    region: str | None = None
    templates: dict[str, SmsTemplateMapping] = Field(default_factory=dict)
    batch_size: int = Field(default=100, gt=0)
    # Aliyun: a notification template's variable holds 1-35 characters (its template rules).
    param_max_length: int = Field(default=35, gt=0)

    @model_validator(mode="after")
    def _complete_for_its_provider(self) -> CnSmsSettings:
        if self.provider is None:
            return self
        needed = ["access_key_id", "access_key_secret", "sign_name"]
        if self.provider == "tencent":
            needed.append("sdk_app_id")
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} for provider {self.provider}")
        if not self.templates:
            raise ValueError("templates: map each campaign template to the provider's code")
        if self.batch_size > MAX_BATCH[self.provider]:
            raise ValueError(
                f"batch_size: {self.provider} takes at most {MAX_BATCH[self.provider]} numbers"
            )
        return self

    @property
    def endpoint(self) -> str:
        return (self.url or DEFAULT_URL[self.provider or "aliyun"]).rstrip("/")

    @property
    def region_id(self) -> str:
        return self.region or DEFAULT_REGION[self.provider or "aliyun"]
