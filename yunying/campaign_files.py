"""Campaign files (reactivation and reward): TOML validated into a model, with errors that
name the file and the field, before anything is sent or paid."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, TypeVar, get_args

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
            f"field {'.'.join(str(p) for p in e['loc']) or '(file)'!r}: {_problem(model, e)}"
            for e in exc.errors()
        )
        raise ConfigError(f"{kind} file {path}: {problems}") from None


def _problem(model: type[BaseModel], error: Any) -> str:
    """pydantic's message, but a misspelt key gets the keys it could be, as segment files'."""
    if error["type"] != "extra_forbidden":
        return str(error["msg"])
    owner = _model_at(model, error["loc"][:-1])
    if owner is None:
        return "unknown key"
    keys = sorted(field.alias or name for name, field in owner.model_fields.items())
    close = difflib.get_close_matches(str(error["loc"][-1]), keys)
    hint = f" (did you mean {' or '.join(repr(key) for key in close)}?)" if close else ""
    return f"unknown key; use {', '.join(keys)}{hint}"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    owner = model
    for part in loc:
        if isinstance(part, int):  # an item of the list named before it
            continue
        field = owner.model_fields.get(part)
        nested = _model_in(field.annotation) if field else None
        if nested is None:
            return None
        owner = nested
    return owner


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model in `Model`, `list[Model]`, `Model | None`, ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def find_named(folder: Path, name: str, model: type[Model], kind: str) -> Model:
    """`<folder>/<name>.toml`, whose `name` field must match its file name."""
    known = sorted(p.stem for p in folder.glob("*.toml"))
    stem = Path(name).name.removesuffix(".toml")
    if not stem or stem != name:  # empty, a path or a file name: say which name to give
        hint = f"give its name, {stem!r}" if stem in known else f"the {kind}s are {known}"
        raise ConfigError(f"{kind} name {name!r} is not a {kind}'s name: {hint}")
    path = folder / f"{name}.toml"
    if not path.exists():
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{kind} file {path} does not exist: {hint}the {kind}s there are {', '.join(known)}"
            if known
            else f"{kind} file {path} does not exist, and {folder} holds no {kind} files"
        )
    loaded = load_model_file(path, model, kind)
    if getattr(loaded, "name", None) != name:
        raise ConfigError(
            f"{kind} file {name}.toml: field 'name' is {getattr(loaded, 'name', None)!r};"
            f" it must match the file name: {name!r}"
        )
    return loaded
