"""Campaign files (reactivation and reward): TOML validated into a model, with errors that
name the file and the field, before anything is sent or paid."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from yunying.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


def load_model_file(path: Path, model: type[Model], kind: str) -> Model:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{kind} file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{kind} file {path}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or '(file)'!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{kind} file {path}: {problems}") from None


def find_named(folder: Path, name: str, model: type[Model], kind: str) -> Model:
    """`<folder>/<name>.toml`, whose `name` field must match its file name."""
    loaded = load_model_file(folder / f"{name}.toml", model, kind)
    if getattr(loaded, "name", None) != name:
        raise ConfigError(
            f"{kind} file {name}.toml: field 'name' is {getattr(loaded, 'name', None)!r}"
        )
    return loaded
