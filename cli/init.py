"""`yunying init`: write yunying.toml for the company's own data, checking each source.

Every answer comes from a flag, else a prompt when the terminal is interactive, else its
default. A required field the table has no column for is asked for in a terminal, offering
the table's columns; without one, the error names the `--map` flag to pass. A terminal is
also offered the optional user fields (cli/init_fields.py), and a channel without consent
is warned about. Each source is
sampled through its mapping (up to a thousand records) before anything is written: a
mapping to a missing column, a missing file or an unreachable database stops `init` with
the reason, and the file is not written. A new store starts with sending off.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cli.init_fields import by_name, consent_warnings, offer_optional, status_warning
from yunying.config import Settings, describe_validation_error
from yunying.errors import ConfigError, YunyingError
from yunying.lifecycle.activity import describe_activity
from yunying.sources.config import FIELDS, SqlSource
from yunying.sources.mapping import REQUIRED
from yunying.sources.sample import (
    CONTACT_FIELDS,
    SHOWN_RECORDS,
    mask_record,
    sample_source,
    source_columns,
)

ENTITIES = ("users", "orders", "events")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="where to write (default yunying.toml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument(
        "--check",
        action="store_true",
        help="read a few rows of each source of the existing settings; write nothing",
    )
    parser.add_argument("--timezone", help="the company's IANA time zone, e.g. America/New_York")
    parser.add_argument("--locale", help="default locale of users without one, e.g. en")
    parser.add_argument("--currency", help="ISO 4217 code of the company's money, e.g. USD")
    for name in ("new", "active", "churn", "returned"):
        parser.add_argument(f"--{name}-days", type=int, help=f"lifecycle.{name}_days")
    parser.add_argument("--sql", help="SQLAlchemy URL of the company's database (read-only)")
    for entity in ENTITIES:
        parser.add_argument(f"--{entity}-table", help=f"the table holding {entity}")
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ENTITY.FIELD=COLUMN",
        help="a mapping, e.g. users.user_id=customer_id (repeatable)",
    )


def run_init(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    path = args.config or Path("yunying.toml")
    if args.check:
        from yunying.config import load_settings

        settings = load_settings()
        unread = _show_samples(settings, out)
        _say_activity(settings, unread, out)
        return 2 if unread else 0
    if path.exists() and not args.force:
        raise ConfigError(f"{path} exists: pass --force to overwrite it")
    interactive = sys.stdin.isatty()
    ask = _asker(interactive)
    data: dict[str, Any] = {
        "timezone": _given(args.timezone, ask, "Time zone (IANA name)", "Asia/Shanghai"),
        "default_locale": _given(args.locale, ask, "Default locale", "zh-CN"),
        "currency": _given(args.currency, ask, "Currency (ISO 4217)", "CNY").upper(),
    }
    defaulted = [
        f"{flag} {data[key]}"
        for flag, key, given in (
            ("--timezone", "timezone", args.timezone),
            ("--locale", "default_locale", args.locale),
            ("--currency", "currency", args.currency),
        )
        if given is None and not interactive
    ]
    if defaulted:
        out(
            f"NOTE: not given, the defaults are written: {', '.join(defaulted)}. The time zone"
            " dates every stored day and cannot change once data is pulled."
        )
    lifecycle: dict[str, Any] = {}
    for name, default in (("new", 7), ("active", 7), ("churn", 30), ("returned", 7)):
        given = getattr(args, f"{name}_days")
        answer = _given(
            None if given is None else str(given), ask, f"lifecycle.{name}_days", str(default)
        )
        try:
            lifecycle[f"{name}_days"] = int(answer)
        except ValueError:
            raise ConfigError(f"lifecycle.{name}_days: {answer!r} is not a whole number") from None
    data["lifecycle"] = lifecycle
    url = _as_url(_given(args.sql, ask, "Your database's URL (empty: none)", ""))
    data["sources"] = _sources(args, url, ask, interactive) if url else []
    try:
        settings = Settings(**data)
    except Exception as exc:  # pydantic's ValidationError, said field by field
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            raise ConfigError(describe_validation_error(exc)) from None
        raise
    if _show_samples(settings, out):
        out(f"\n{path} not written: fix the source(s) above and run `yunying init` again.")
        return 2
    _say_activity(settings, set(), out)
    path.write_text(to_toml(data), encoding="utf-8")
    out(f"\nwrote {path}. Next:")
    out("  yunying db upgrade && yunying run pull")
    out(
        "  yunying run lifecycle --from <first date> --date <last date>   (computes, sends nothing)"
    )
    out("Sending is off on a new store: messages go to files until `yunying sending enable`.")
    return 0


def _say_activity(settings: Settings, unread: set[str], out: Callable[[str], None]) -> None:
    """How activity is derived, from the entities whose sources could be read."""
    read = {s.entity for s in settings.sources if s.name not in unread}
    note = describe_activity(read, settings.lifecycle)
    if note and unread:
        names = ", ".join(sorted(unread))
        out(f"\nActivity, from the sources read ({names} could not be): {note}.")
    elif note:
        out(f"\nActivity: {note}.")


def _show_samples(settings: Settings, out: Callable[[str], None]) -> set[str]:
    """Each source's columns, the optional fields read by name, a few mapped records and
    every reason a record would be rejected for; the names of the sources not read, or read
    with no valid row."""
    unread = set()
    for source in settings.sources:
        out(f"\nsource {source.name} ({source.entity}, {source.kind}):")
        try:
            sample = sample_source(source, settings.zone, defaults=settings.record_defaults)
        except YunyingError as exc:
            out(f"  PROBLEM: {exc}")
            unread.add(source.name)
            continue
        out(f"  columns: {', '.join(sample.columns) or '(no rows)'}")
        named = by_name(source.entity, source.mapping, sample.columns)
        if named:
            out(f"  read from columns of the same name: {', '.join(named)}")
        for row in sample.mapped[:SHOWN_RECORDS]:
            shown = mask_record(row, CONTACT_FIELDS)
            out(f"  a mapped record: {json.dumps(shown, default=str, ensure_ascii=False)}")
        out(f"  {len(sample.mapped)} of {sample.read} rows read are valid")
        if sample.read and not sample.mapped:
            out("  PROBLEM: no row read is valid: check the mapping against the reasons below")
            unread.add(source.name)
        for reason in sample.reasons:
            out(f"  {reason.count} would be rejected: {reason.reason}")
            out(f"      e.g. {reason.example_of}: {reason.example}")
        if sample.naive_times:
            out(
                f"  {sample.naive_times} of {sample.read} rows have a time without an offset,"
                " read as UTC: if they are local times, add"
                f' naive_times_in = "{settings.timezone}" (their zone) to this source'
            )
        if source.entity == "users":
            assume = settings.consent.assume_opt_in_when_missing
            for warning in consent_warnings(source.mapping, sample.columns, assume):
                out(f"  {warning}")
        if source.entity == "orders":
            for warning in status_warning(source.mapping, sample.columns):
                out(f"  {warning}")
    return unread


def _sources(
    args: argparse.Namespace, url: str, ask: Callable[[str, str], str], interactive: bool
) -> list[dict[str, Any]]:
    mappings: dict[str, dict[str, str]] = {entity: {} for entity in ENTITIES}
    for item in args.map:
        key, _, column = item.partition("=")
        entity, _, field = key.partition(".")
        if entity not in mappings or field not in FIELDS[entity] or not column:
            raise ConfigError(
                f"--map {item!r}: expected ENTITY.FIELD=COLUMN, ENTITY one of {', '.join(ENTITIES)}"
            )
        mappings[entity][field] = column
    _database_exists(url)
    tables = _table_names(url) if interactive else []
    offered = f"; its tables: {', '.join(tables)}" if tables else ""
    sources = []
    missing: list[str] = []
    for entity in ENTITIES:
        question = f"Table of {entity} (empty: none{offered})"
        table = _given(getattr(args, f"{entity}_table"), ask, question, "")
        while interactive and tables and table and table not in tables:
            print(f"  the database has no table {table!r}")
            table = ask(question, "")
        if table:
            source: dict[str, Any] = {
                "kind": "sql",
                "name": f"db-{entity}",
                "entity": entity,
                "url": url,
                "table": table,
            }
            missing += _map_required(source, mappings[entity], ask, interactive)
            if mappings[entity]:
                source["mapping"] = mappings[entity]
            sources.append(source)
    if missing:
        raise ConfigError("; ".join(missing) + ". Nothing was written")
    return sources


def _map_required(
    source: dict[str, Any],
    mapping: dict[str, str],
    ask: Callable[[str, str], str],
    interactive: bool,
) -> list[str]:
    """Each required field whose column the table lacks: asked for (offering the table's
    columns) in a terminal, else named with the flag that maps it. Returns what is missing."""
    entity, table = source["entity"], source["table"]
    try:
        columns = source_columns(SqlSource(**source, mapping=mapping))
    except (YunyingError, ValueError):  # ValueError: pydantic's, on a bad URL
        return []  # the sample's check, or the settings', says what is wrong
    missing = []
    for field in REQUIRED[entity]:
        while columns and mapping.get(field, field) not in columns:
            if not interactive:
                missing.append(
                    f"{entity}.{field}: table {table} has no column {mapping.get(field, field)!r};"
                    f" pass --map {entity}.{field}=<column> (its columns: {', '.join(columns)})"
                )
                break
            answer = ask(f"Column of {entity}.{field} in {table} ({', '.join(columns)})", "")
            if answer in columns:
                mapping[field] = answer
            else:
                print(f"  {table} has no column {answer!r}")
    if interactive and columns and entity == "users":
        offer_optional(table, mapping, columns, ask)
    return missing


def _database_exists(url: str) -> None:
    """A SQLite URL names a file that must exist: SQLite would make an empty one."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # the settings' own check names it
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return
    path = path.removeprefix("file:").split("?", 1)[0]
    if not Path(path).is_file():
        raise ConfigError(f"--sql {url!r}: no such file: {Path(path).resolve()}")


def _table_names(url: str) -> list[str]:
    """The database's tables, to offer in the prompts; none when they cannot be listed."""
    from sqlalchemy import inspect

    from yunying.store.engine import create_store_engine

    try:
        engine = create_store_engine(url)
    except Exception:  # e.g. a driver not installed: the settings' own check names it
        return []
    try:
        return sorted(inspect(engine).get_table_names())
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def _as_url(given: str) -> str:
    """A path to an existing file, given where a database URL is asked for, as the SQLite
    URL of that file."""
    if given and "://" not in given and Path(given).expanduser().is_file():
        return f"sqlite:///{Path(given).expanduser().resolve()}"
    return given


def _given(value: str | None, ask: Callable[[str, str], str], question: str, default: str) -> str:
    """A flag's value when given (even empty: `--events-table ""` means none), else asked."""
    return value if value is not None else ask(question, default)


def _asker(interactive: bool) -> Callable[[str, str], str]:
    def ask(question: str, default: str) -> str:
        if not interactive:
            return default
        try:
            answer = input(f"{question} [{default}]: ").strip()
        except EOFError:
            raise ConfigError(f"no answer to {question!r}: nothing was written") from None
        return answer or default

    return ask


def to_toml(data: dict[str, Any]) -> str:
    """The few shapes init writes: scalars, tables of scalars, arrays of such tables."""
    lines = ['# Written by `yunying init`; see README "Configuration" for every setting.']
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            tables.extend((f"[{key}]", item) for item in value)
        else:
            lines.append(f"{key} = {_value(value)}")
    for key, table in tables:
        lines += ["", f"[{key}]"]
        lines += [f"{k} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string
