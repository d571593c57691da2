"""Settings whose secrets may live in Prefect Secret blocks.

A secret setting may name a block instead of holding the secret, e.g.
`smtp.password = "prefect-secret:smtp-password"` (see yunying.config). Flows load their
settings here, so the block is read through the Prefect API they run against; Yunying itself
never imports Prefect.
"""

from __future__ import annotations

from typing import Any, cast

from prefect.blocks.system import Secret

from yunying import config
from yunying.config import Settings
from yunying.errors import ConfigError


def read_secret_block(name: str) -> str:
    """The string a Secret block holds (Prefect's "Secret" block type: docs.prefect.io,
    "Blocks", `Secret.load(name)`)."""
    try:
        # Flows and the CLI are synchronous: load() returns the block, not a coroutine.
        block = cast("Secret[Any]", Secret.load(name))
    except ValueError:  # Prefect: "Unable to find block document named ..."
        raise ConfigError(
            f"no Prefect Secret block named {name!r}: create it in the Prefect UI (Blocks, "
            f"Secret) or with `Secret(value=...).save({name!r})`"
        ) from None
    # Not Secret.get(): it parses the text as JSON, so a password "123456" would be a number.
    value = block.value.get_secret_value()
    if not isinstance(value, str):
        raise ConfigError(
            f"the Prefect Secret block {name!r} holds a {type(value).__name__}, not a string"
        )
    return value


def load_settings(**overrides: Any) -> Settings:
    """`yunying.config.load_settings`, reading the Secret blocks secret settings name."""
    return config.load_settings(resolve_secret=read_secret_block, **overrides)
