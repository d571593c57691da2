"""The `[push]` settings: app push through JPush (极光, mainland China) or FCM HTTP v1.

```toml
[push]
provider = "jpush"                       # or "fcm"
jpush_app_key = "..."                    # JPush: Basic appKey:masterSecret
jpush_master_secret = "..."              # (YUNYING_PUSH__JPUSH_MASTER_SECRET)
fcm_service_account_file = "/etc/yunying/fcm.json"   # FCM: a service account key; the
                                         # project is the key's project_id
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, model_validator

DEFAULT_URL = {"jpush": "https://api.jpush.cn", "fcm": "https://fcm.googleapis.com"}
SERVICE_ACCOUNT_FIELDS = ("type", "project_id", "private_key", "client_email", "token_uri")


class PushSettings(BaseModel):
    model_config = {"extra": "forbid"}

    provider: Literal["jpush", "fcm"] | None = None  # None: push goes the other ways
    url: str | None = None  # None: the provider's public endpoint
    jpush_app_key: str | None = None
    jpush_master_secret: SecretStr | None = None
    fcm_service_account_file: Path | None = None

    @model_validator(mode="after")
    def _complete_for_its_provider(self) -> PushSettings:
        if self.provider == "jpush":
            missing = [n for n in ("jpush_app_key", "jpush_master_secret") if not getattr(self, n)]
            if missing:
                raise ValueError(f"missing {', '.join(missing)} for provider jpush")
        if self.provider == "fcm":
            self.service_account()  # a bad key file stops start-up, not the first send
        return self

    def service_account(self) -> dict[str, Any]:
        path = self.fcm_service_account_file
        if path is None:
            raise ValueError("missing fcm_service_account_file for provider fcm")
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            problem = type(exc).__name__
            raise ValueError(
                f"fcm_service_account_file: cannot read a JSON key from {path}: {problem}"
            ) from None
        missing = [
            f for f in SERVICE_ACCOUNT_FIELDS if not (isinstance(info, dict) and info.get(f))
        ]
        if missing or info.get("type") != "service_account":
            raise ValueError(
                f"fcm_service_account_file: {path} is not a service account key"
                f" (missing {', '.join(missing) or 'type = service_account'})"
            )
        return dict(info)

    @property
    def endpoint(self) -> str:
        return (self.url or DEFAULT_URL[self.provider or "jpush"]).rstrip("/")
