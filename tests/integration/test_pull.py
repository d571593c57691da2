import datetime as dt
import gc
import gzip
import json
import pickle
import sqlite3
import sys
import uuid
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Engine, func, select, text

from tests.builders import DAY, company_settings, pull_all
from yunying.config import Settings, load_settings
from yunying.demo.local_server import LocalServer
from yunying.demo.source_db import write_source_db
from yunying.demo.sources import EVENT_MAPPING
from yunying.errors import ConfigError, ProviderRejected, RateLimited, TransientError
from yunying.lifecycle.states import compute_lifecycle
from yunying.messaging.campaign import Campaign
from yunying.messaging.outbox import plan
from yunying.sources.config import FileSource, HttpSource, SqlSource
from yunying.sources.pull import pull_source
from yunying.sources.read import read_source
from yunying.sources.read.child import read_in_child
from yunying.sources.write.marks import set_watermark
from yunying.store.engine import create_store_engine, session_scope
from yunying.store.models import Event, Order, OutboxMessage, RejectedRecord, User, UserFacts


def _write_jsonl(path: Path, records: Iterable[object]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_sql_sources_load_good_rows_and_set_bad_ones_aside(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = company_settings(settings, tmp_path)
    stats = pull_all(engine, settings)
    source = sqlite3.connect(tmp_path / "source.db")
    src_events = source.execute("SELECT count(*) FROM src_events").fetchone()[0]
    events = stats["app-events"]
    assert events.pulled == src_events
    assert events.rejected > 0
    assert _count(engine, Event) == src_events - events.rejected
    assert _count(engine, RejectedRecord) == sum(s.rejected for s in stats.values())
    with session_scope(engine) as session:
        reasons = set(session.scalars(select(RejectedRecord.reason)))
    assert any("occurred_at" in r for r in reasons)
    assert any("negative amount" in r for r in reasons)

    # Facts kept at ingestion agree with a direct look at the source.
    expected = dict(
        source.execute(
            "SELECT uid, max(ts) FROM src_events WHERE uid IS NOT NULL AND ts NOT LIKE '2024-13%'"
            " AND type NOT LIKE '%' || char(65533) || '%' GROUP BY uid"
        ).fetchall()
    )
    with session_scope(engine) as session:
        facts = {
            u: t for u, t in session.execute(select(UserFacts.user_id, UserFacts.last_active_at))
        }
    assert facts.keys() >= expected.keys()
    for user_id, last in expected.items():
        assert facts[user_id].isoformat()[:19] == last[:19].replace("+00:00", "")


def test_rerun_duplicates_nothing(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    settings = company_settings(settings, tmp_path)
    pull_all(engine, settings)
    counts = (_count(engine, User), _count(engine, Event), _count(engine, Order))
    again = pull_all(engine, settings)
    assert (_count(engine, User), _count(engine, Event), _count(engine, Order)) == counts
    assert again["app-events"].inserted == 0


def test_pull_killed_midway_resumes_without_loss(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = company_settings(settings, tmp_path)
    source = settings.source("app-events").model_copy(update={"batch_size": 500})
    settings = settings.model_copy(update={"sources": [source]})

    class Killed(Exception):
        pass

    def die_after_three_batches(total: object) -> None:
        if getattr(total, "pulled", 0) >= 1500:
            raise Killed

    with pytest.raises(Killed):
        pull_source(
            engine,
            settings.source("app-events"),
            settings.pull_rules,
            "run-1",
            on_batch=die_after_three_batches,
        )
    assert 0 < _count(engine, Event) < 2000
    pull_source(engine, settings.source("app-events"), settings.pull_rules, "run-2")
    complete = _count(engine, Event)
    src = (
        sqlite3.connect(tmp_path / "source.db")
        .execute("SELECT count(*) FROM src_events")
        .fetchone()[0]
    )
    with session_scope(engine) as session:
        rejected = len(set(session.scalars(select(RejectedRecord.raw))))
    assert complete + rejected == src
    with session_scope(engine) as session:
        total_counted = session.scalar(select(func.sum(UserFacts.event_count)))
    assert total_counted == complete  # facts counted each event once


def test_a_pull_leaves_the_process_settings_alone(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # The garbage collector's thresholds and the GIL's switch interval are the process
    # owner's to set, not a library's.
    _write_jsonl(tmp_path / "events.jsonl", (
        {"event_id": f"e{i}", "user_id": "u1", "name": "x", "occurred_at": "2026-11-01T08:00:00Z"}
        for i in range(10)
    ))  # fmt: skip
    source = FileSource(name="events", entity="events", path=str(tmp_path / "events.jsonl"))
    before = gc.get_threshold(), sys.getswitchinterval()
    during: list[tuple[tuple[int, int, int], float]] = []
    pull_source(
        engine,
        source,
        settings.pull_rules,
        "t",
        on_batch=lambda _: during.append((gc.get_threshold(), sys.getswitchinterval())),
    )
    assert during == [before]


def test_facts_count_each_new_event_once_wherever_the_store_puts_it(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # PostgreSQL folds a batch into the facts from the pages its COPY filled; after a delete
    # and a VACUUM, new rows also go into older pages with room, and must be counted too.
    def export(name: str, first: int, count: int) -> None:
        _write_jsonl(tmp_path / name, (
            {"event_id": f"e{i}", "user_id": f"u{i % 40}", "name": "app_open",
             "occurred_at": f"2026-11-{1 + i // 40 % 20:02}T08:00:00Z"}
            for i in range(first, first + count)
        ))  # fmt: skip

    source = FileSource(name="events", entity="events", path=str(tmp_path / "events-*.jsonl"))
    settings = settings.model_copy(update={"sources": [source]})
    export("events-1.jsonl", 0, 4000)
    pull_source(engine, settings.source("events"), settings.pull_rules, "t")
    with session_scope(engine) as session:
        session.execute(text("DELETE FROM events WHERE event_id LIKE '%1' OR event_id LIKE '%3'"))
        session.execute(text("DELETE FROM user_facts"))
        session.execute(text("DELETE FROM active_days"))
    with engine.connect() as connection:
        vacuum = "VACUUM events" if engine.dialect.name == "postgresql" else "VACUUM"
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(vacuum))
    engine.dispose()  # a new connection asks the free space map where rows go

    export("events-2.jsonl", 4000, 3000)
    assert pull_source(engine, settings.source("events"), settings.pull_rules, "t").inserted == 3000
    with session_scope(engine) as session:
        counted = dict(session.execute(select(UserFacts.user_id, UserFacts.event_count)).all())
        days = session.scalar(text("SELECT COUNT(*) FROM active_days"))
    assert counted == {f"u{u}": 75 for u in range(40)}
    assert days == 40 * 20


def test_only_activity_events_count_as_activity(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    def export(name: str, events: list[tuple[str, str, str]]) -> None:
        _write_jsonl(tmp_path / name, (
            {"event_id": f"{user}-{day}-{kind}", "user_id": user, "name": kind,
             "occurred_at": f"2026-11-{day}T08:00:00Z"}
            for user, day, kind in events
        ))  # fmt: skip

    source = FileSource(name="events", entity="events", path=str(tmp_path / "events-*.jsonl"))
    lifecycle = settings.lifecycle.model_copy(update={"activity_events": ["app_open"]})
    settings = settings.model_copy(update={"sources": [source], "lifecycle": lifecycle})
    first = [("a", "10", "app_open"), ("a", "11", "push_sent"), ("b", "12", "push_sent")]
    export("events-1.jsonl", first)
    assert pull_source(engine, settings.source("events"), settings.pull_rules, "t").inserted == 3
    # A late copy of the first file with one more event in it: the known events are skipped.
    export("events-2.jsonl", [*first, ("a", "12", "app_open"), ("b", "13", "push_sent")])
    assert pull_source(engine, settings.source("events"), settings.pull_rules, "t").inserted == 2
    with session_scope(engine) as session:
        facts = session.execute(
            select(UserFacts.user_id, UserFacts.event_count, UserFacts.last_active_day)
        ).all()
        days = session.execute(text("SELECT user_id, day FROM active_days ORDER BY day")).all()
    assert [(u, n, str(d)) for u, n, d in facts] == [("a", 2, "2026-11-12")]
    assert [(u, str(d)) for u, d in days] == [("a", "2026-11-10"), ("a", "2026-11-12")]


@pytest.mark.parametrize(
    ("pagination", "path", "items_path"),
    [
        ("cursor", "/events", "items"),
        ("page", "/events/pages", "data.items"),
        ("link", "/events/linked", "items"),
    ],
    ids=["cursor", "page-number", "link-header"],
)
def test_http_source_pages_through_faults(
    engine: Engine, settings: Settings, tmp_path: Path, pagination: str, path: str, items_path: str
) -> None:
    settings = company_settings(settings, tmp_path, users=120)
    with LocalServer(source_db=tmp_path / "source.db", seed=3) as server:
        server.faults.error_rate = 0.15
        server.faults.rate_limit_rate = 0.1
        server.faults.retry_after_seconds = 0
        server.faults.drop_rate = 0.05
        source = HttpSource(
            name="api",
            entity="events",
            url=server.url + path,
            pagination=pagination,
            items_path=items_path,
            page_size=200,
            mapping=EVENT_MAPPING,
        )
        stats = pull_source(engine, source, settings.pull_rules, "t")
    src = (
        sqlite3.connect(tmp_path / "source.db")
        .execute("SELECT count(*) FROM src_events")
        .fetchone()[0]
    )
    assert stats.pulled == src
    assert _count(engine, Event) == src - stats.rejected


def test_http_source_follows_relative_link_headers(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    settings = company_settings(settings, tmp_path, users=30)
    with LocalServer(source_db=tmp_path / "source.db") as server:
        server.relative_links = True
        source = HttpSource(
            name="api", entity="events", url=f"{server.url}/events/linked",
            pagination="link", page_size=100, mapping=EVENT_MAPPING,
        )  # fmt: skip
        stats = pull_source(engine, source, settings.pull_rules, "t")
    src = sqlite3.connect(tmp_path / "source.db").execute("SELECT count(*) FROM src_events")
    assert stats.pulled == src.fetchone()[0] > 100


@pytest.mark.parametrize(
    ("path", "options"),
    [
        ("/events/pages", {"items_path": "data.items", "next_cursor_path": "page"}),
        (
            "/events/pages?page=1",
            {"items_path": "data.items", "pagination": "page", "page_param": "ignored"},
        ),
    ],
    ids=["cursor-names-the-wrong-field", "page-number-not-sent"],
)
def test_http_source_given_the_same_page_twice_stops_with_a_config_error(
    engine: Engine, settings: Settings, tmp_path: Path, path: str, options: dict[str, str]
) -> None:
    # Each would fetch page 1 for ever: the cursor it sends names the page it got, or the
    # API ignores the page parameter it sends (as one that repeats its last page would).
    settings = company_settings(settings, tmp_path, users=30)
    with LocalServer(source_db=tmp_path / "source.db") as server:
        source = HttpSource(
            name="api", entity="events", url=server.url + path, mapping=EVENT_MAPPING, **options
        )
        settings = settings.model_copy(update={"sources": [source]})
        with pytest.raises(ConfigError, match="the same page twice in a row"):
            pull_source(engine, settings.source("api"), settings.pull_rules, "t")


def test_http_source_answered_with_a_web_page_is_a_config_error(
    engine: Engine, settings: Settings
) -> None:
    with LocalServer() as server:
        source = HttpSource(name="api", entity="events", url=f"{server.url}/")
        settings = settings.model_copy(update={"sources": [source]})
        with pytest.raises(ConfigError, match=r"answered with no JSON \(text/html.*Sign in"):
            pull_source(engine, settings.source("api"), settings.pull_rules, "t")


def test_http_4xx_is_permanent_with_status_and_body(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with LocalServer() as server:
        source = HttpSource(name="api", entity="events", url=server.url + "/nope")
        with pytest.raises(ProviderRejected, match="404.*not found"):
            pull_source(engine, source, settings.pull_rules, "t")


def _reader_processes() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children()
        if "yunying.sources.read.child" in child.cmdline()
    ]


def test_an_http_source_is_read_in_a_process_of_its_own_stopped_with_the_pull(
    tmp_path: Path,
) -> None:
    write_source_db(tmp_path / "source.db", 60, 1, dt.date(2026, 11, 1))
    with LocalServer(source_db=tmp_path / "source.db") as server:
        source = HttpSource(
            name="api", entity="events", url=f"{server.url}/events", page_size=50,
            batch_size=100, mapping=EVENT_MAPPING,
        )  # fmt: skip
        batches = read_in_child(source, None)
        first = next(batches)
        assert len(first.records) == 100 and first.watermark == "100"
        assert len(_reader_processes()) == 1
        batches.close()  # the pull stops: so does its reader
        assert _reader_processes() == []

        batches = read_in_child(source, None)
        next(batches)
        _reader_processes()[0].kill()
        with pytest.raises(TransientError, match="api: its reader process ended"):
            list(batches)


def test_errors_cross_the_reader_process_whole() -> None:
    limited = pickle.loads(pickle.dumps(RateLimited("HTTP 429", 7.5)))
    assert (str(limited), limited.retry_after) == ("HTTP 429", 7.5)
    rejected = pickle.loads(pickle.dumps(ProviderRejected(404, "not found", "api:8080/v1")))
    assert (rejected.status, rejected.excerpt, str(rejected)) == (
        404,
        "not found",
        "api:8080/v1 answered HTTP 404: not found",
    )


def test_file_sources_csv_and_gzipped_jsonl(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    csv_path = tmp_path / "users-001.csv"
    csv_path.write_text(
        "user_id,signup_at,email,locale\n"
        "f1,2026-10-01T08:00:00+08:00,f1@example.com,zh-CN\n"
        "f2,yesterday,f2@example.com,en\n"
        "f3,2026-10-02T08:00:00Z,,en,extra\n"
        "f4,2026-10-03T08:00:00Z,f4@example.com,en\n",
        encoding="utf-8",
    )
    jsonl_path = tmp_path / "events-001.jsonl.gz"
    with gzip.open(jsonl_path, "wt", encoding="utf-8") as out:
        out.write(
            json.dumps(
                {
                    "event_id": "x1",
                    "user_id": "f1",
                    "name": "app_open",
                    "occurred_at": "2026-10-05T10:00:00Z",
                }
            )
            + "\n"
        )
        out.write("{not json\n")
        out.write(
            json.dumps(
                {"event_id": "x2", "user_id": "f4", "name": "app_open", "occurred_at": 1790000000}
            )
            + "\n"
        )
    sources = [
        FileSource(
            name="users-csv", entity="users", path=str(tmp_path / "users-*.csv"), format="csv"
        ),
        FileSource(name="events-jsonl", entity="events", path=str(tmp_path / "events-*.jsonl.gz")),
    ]
    settings = settings.model_copy(update={"sources": sources})
    users = pull_source(engine, settings.source("users-csv"), settings.pull_rules, "t")
    events = pull_source(engine, settings.source("events-jsonl"), settings.pull_rules, "t")
    assert (users.inserted, users.rejected) == (2, 2)
    assert (events.inserted, events.rejected) == (2, 1)
    # The watermark is the last file loaded: a rerun reads nothing again.
    assert pull_source(engine, settings.source("users-csv"), settings.pull_rules, "t").pulled == 0


def test_file_source_reads_a_late_file_whose_name_sorts_earlier(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    def export(day: int) -> None:
        (tmp_path / f"orders-2026-11-{day}.csv").write_text(
            f"order_id,user_id,amount,created_at\no{day},u1,5,2026-11-{day}T08:00:00Z\n"
        )

    source = FileSource(
        name="orders", entity="orders", path=str(tmp_path / "orders-*.csv"), format="csv"
    )
    settings = settings.model_copy(update={"sources": [source]})
    export(22)
    export(23)
    assert pull_source(engine, settings.source("orders"), settings.pull_rules, "t").inserted == 2
    export(20)  # arrives late
    assert pull_source(engine, settings.source("orders"), settings.pull_rules, "t").inserted == 1
    assert pull_source(engine, settings.source("orders"), settings.pull_rules, "t").pulled == 0
    assert _count(engine, Order) == 3


def test_file_source_from_before_the_loaded_files_list_keeps_its_place(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # Such a store has only the watermark: the last file it loaded, in name order.
    for day in (21, 22, 23):
        _write_jsonl(tmp_path / f"events-{day}.jsonl", [
            {"event_id": f"e{day}", "user_id": "u1", "name": "x",
             "occurred_at": f"2026-11-{day}T08:00:00Z"}
        ])  # fmt: skip
    with session_scope(engine) as session:
        set_watermark(session, "events", str(tmp_path / "events-22.jsonl"))
    source = FileSource(name="events", entity="events", path=str(tmp_path / "events-*.jsonl"))
    settings = settings.model_copy(update={"sources": [source]})
    assert (
        pull_source(engine, settings.source("events"), settings.pull_rules, "t").inserted == 1
    )  # only events-23
    assert pull_source(engine, settings.source("events"), settings.pull_rules, "t").pulled == 0


def test_files_starting_with_a_byte_order_mark_load(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "users.csv").write_text(
        "user_id,signup_at\nb1,2026-10-01T08:00:00Z\n", encoding="utf-8-sig"
    )
    event = {"event_id": "b1", "user_id": "b1", "name": "x", "occurred_at": "2026-10-01T09:00:00Z"}
    (tmp_path / "events.jsonl").write_text(json.dumps(event) + "\n", encoding="utf-8-sig")
    sources = [
        FileSource(name="users", entity="users", path=str(tmp_path / "users.csv"), format="csv"),
        FileSource(name="events", entity="events", path=str(tmp_path / "events.jsonl")),
    ]
    settings = settings.model_copy(update={"sources": sources})
    for source in sources:
        stats = pull_source(engine, settings.source(source.name), settings.pull_rules, "t")
        assert (stats.inserted, stats.rejected) == (1, 0), source.name


def test_event_names_with_control_characters_arrive_intact(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # Events reach the store as COPY text or JSON, where these characters are escaped.
    names = [
        "tab\there",
        "line\nbreak",
        "back\\slash",
        "carriage\rreturn",
        "签到 \\N",
        'a "quote"',
        "plain",
    ]
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {"event_id": f"n{i}", "user_id": "u1", "name": name,
                 "occurred_at": "2026-10-05T10:00:00Z"}
            ) + "\n"
            for i, name in enumerate(names)
        ),
        encoding="utf-8",
    )  # fmt: skip
    source = FileSource(name="odd-names", entity="events", path=str(path))
    stats = pull_source(engine, source, settings.pull_rules, "t")
    assert (stats.inserted, stats.rejected) == (len(names), 0)
    with session_scope(engine) as session:
        stored = dict(session.execute(select(Event.event_id, Event.name)).tuples().all())
    assert stored == {f"n{i}": name for i, name in enumerate(names)}


def test_rejected_records_are_kept_verbatim_with_their_reason(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # Rejects reach the store as one JSON array; each must come back as the record read.
    at = "2026-10-05T10:00:00Z"
    records = [
        {"event_id": "r1", "user_id": "u1", "name": 'tab\t "q" back\\slash \x00',
         "occurred_at": "not a time"},
        {"event_id": "r2", "user_id": "u 1", "name": "签到\n", "occurred_at": at},
        {"event_id": "r3", "user_id": "u1", "name": "nul\x00", "occurred_at": at},
        {"event_id": "ok", "user_id": "u1", "name": "app_open", "occurred_at": at},
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    half = {"event_id": "r5", "user_id": "u1", "name": "half \ud800", "occurred_at": at}
    lines = [json.dumps(r) for r in [*records, half]] + ['{"event_id": "r4", "name": "nul\x00"}']
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    source = FileSource(name="odd-rejects", entity="events", path=str(path))
    settings = settings.model_copy(update={"sources": [source]})
    stats = pull_source(engine, settings.source("odd-rejects"), settings.pull_rules, "run-7")
    assert (stats.inserted, stats.rejected) == (1, 5)
    with session_scope(engine) as session:
        stored = session.execute(
            select(RejectedRecord.raw, RejectedRecord.reason, RejectedRecord.source,
                   RejectedRecord.run_id, RejectedRecord.created_at)
        ).tuples().all()  # fmt: skip
    # What no store can hold (NUL, a lone surrogate) is stored as U+FFFD.
    odd = {
        raw: reason
        for raw, reason, *_ in stored
        if raw.startswith(('{"event_id": "r4"', '{"event_id": "r5"'))
    }
    assert odd == {
        '{"event_id": "r4", "name": "nul\ufffd"}\n': "json: Invalid control character at",
        json.dumps({**half, "name": "half \ufffd"}, ensure_ascii=False): "name: bad text encoding",
    }
    stored = [row for row in stored if row[0] not in odd]
    assert sorted(json.loads(raw)["event_id"] for raw, *_ in stored) == ["r1", "r2", "r3"]
    reasons = {"r1": "occurred_at:", "r2": "user_id:", "r3": "name: contains a NUL character"}
    for raw, reason, source_name, run_id, created_at in stored:
        record = json.loads(raw)
        assert record == records[int(record["event_id"][1]) - 1]
        assert reason.startswith(reasons[record["event_id"]])
        assert (source_name, run_id) == ("odd-rejects", "run-7")
        assert created_at.year >= 2026


def test_values_beyond_what_the_store_holds_are_rejected_not_fatal(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # PostgreSQL refuses a value longer than its column or an amount beyond numeric(14, 2)
    # for the whole batch; the validator must set such a record aside first.
    at = "2026-10-05T10:00:00Z"
    users = [
        {"user_id": "u1", "signup_at": at, "device_hash": "d" * 64, "email": "a" * 249 + "@x.io"},
        {"user_id": "u2", "signup_at": at, "device_hash": "d" * 65},
        {"user_id": "u3", "signup_at": at, "ip_hash": "i" * 65},
        {"user_id": "u4", "signup_at": at, "email": "a" * 250 + "@x.io"},
    ]
    orders = [
        {"order_id": "o1", "user_id": "u1", "amount": "999999999999.99", "created_at": at},
        {"order_id": "o2", "user_id": "u1", "amount": "1e30", "created_at": at},
        {"order_id": "o3", "user_id": "u1", "amount": 10**12, "created_at": at},
    ]
    sources = []
    for entity, records in (("users", users), ("orders", orders)):
        path = tmp_path / f"{entity}.jsonl"
        _write_jsonl(path, records)
        sources.append(FileSource(name=entity, entity=entity, path=str(path)))
    settings = settings.model_copy(update={"sources": sources})
    loaded = {
        s.name: pull_source(engine, settings.source(s.name), settings.pull_rules, "t")
        for s in sources
    }
    assert (loaded["users"].inserted, loaded["users"].rejected) == (1, 3)
    assert (loaded["orders"].inserted, loaded["orders"].rejected) == (1, 2)
    assert loaded["users"].reasons == {"device_hash": 1, "ip_hash": 1, "email": 1}
    with session_scope(engine) as session:
        assert session.scalars(select(User.user_id)).all() == ["u1"]
        assert session.scalars(select(Order.amount)).all() == [Decimal("999999999999.99")]


def test_incremental_sql_source_steps_over_rows_without_the_column(tmp_path: Path) -> None:
    # SQLite sorts NULL first: a batch of them must not become the watermark "None".
    source_db = tmp_path / "app.db"
    with sqlite3.connect(source_db) as connection:
        connection.execute("CREATE TABLE ev (id TEXT, uid TEXT, kind TEXT, at TEXT, seq INTEGER)")
        connection.executemany(
            "INSERT INTO ev VALUES (?, 'u1', 'x', '2026-10-01T00:00:00Z', ?)",
            [(f"e{n}", n if n > 0 else None) for n in range(-4, 11)],
        )
    source = SqlSource(
        name="app", entity="events", url=f"sqlite:///{source_db}", table="ev",
        incremental_column="seq", batch_size=5,
    )  # fmt: skip
    assert [batch.watermark for batch in read_source(source, None)] == [None, "5", "10"]
    again = [batch.records for batch in read_source(source, "10")]
    assert sum(map(len, again)) == 6  # the rows without a value, read each time, and seq 10


@pytest.mark.postgres
def test_postgresql_source_with_lookback_for_late_rows(
    engine: Engine, settings: Settings, postgres_server: str
) -> None:
    import sqlalchemy as sa

    schema = f"src_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        connection.execute(
            sa.text(
                f"CREATE TABLE {schema}.app_events (id TEXT PRIMARY KEY, uid TEXT, kind TEXT,"
                " at TIMESTAMPTZ, loaded_at TIMESTAMP)"
            )
        )
        connection.execute(
            sa.text(
                f"INSERT INTO {schema}.app_events SELECT 'e' || n, 'u' || (n % 7), 'app_open',"
                " TIMESTAMPTZ '2026-10-01 00:00+08' + n * INTERVAL '1 hour',"
                " TIMESTAMP '2026-10-01 00:00' + n * INTERVAL '1 minute'"
                " FROM generate_series(1, 500) n"
            )
        )
    source = SqlSource(
        name="pg-events",
        entity="events",
        url=f"{postgres_server}?options=-csearch_path%3D{schema}",
        table="app_events",
        incremental_column="loaded_at",
        lookback=600,
        batch_size=120,
        mapping={"event_id": "id", "user_id": "uid", "name": "kind", "occurred_at": "at"},
    )
    settings = settings.model_copy(update={"sources": [source]})
    try:
        first = pull_source(engine, settings.source("pg-events"), settings.pull_rules, "t")
        assert (first.inserted, first.rejected) == (500, 0)
        with admin.begin() as connection:  # a row arrives late, stamped before the watermark
            connection.execute(
                sa.text(
                    f"INSERT INTO {schema}.app_events VALUES ('late', 'u1', 'app_open',"
                    " '2026-10-02 00:00+08', TIMESTAMP '2026-10-01 08:15')"
                )
            )
        second = pull_source(engine, settings.source("pg-events"), settings.pull_rules, "t")
        assert second.inserted == 1  # found by the look-back window, nothing else duplicated
        assert _count(engine, Event) == 501
        with admin.begin() as connection:  # rows without the column sort last on PostgreSQL
            connection.execute(
                sa.text(
                    f"INSERT INTO {schema}.app_events SELECT 'n' || n, 'u1', 'app_open',"
                    " '2026-10-03 00:00+08', NULL FROM generate_series(1, 130) n"
                )
            )
        third = pull_source(engine, settings.source("pg-events"), settings.pull_rules, "t")
        fourth = pull_source(engine, settings.source("pg-events"), settings.pull_rules, "t")
        assert (third.inserted, fourth.inserted) == (130, 0)
        assert _count(engine, Event) == 631
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_http_source_bearer_auth_from_env(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = company_settings(settings, tmp_path, users=20)
    with LocalServer(source_db=tmp_path / "source.db") as server:
        server.bearer_token = "s3cret"
        source = HttpSource(
            name="api",
            entity="events",
            url=server.url + "/events",
            auth="bearer",
            token_env="APP_API_TOKEN",
            mapping=EVENT_MAPPING,
        )
        settings = settings.model_copy(update={"sources": [source]})
        with pytest.raises(ConfigError, match="APP_API_TOKEN is not set"):
            pull_source(engine, settings.source("api"), settings.pull_rules, "t")
        monkeypatch.setenv("APP_API_TOKEN", "wrong")
        with pytest.raises(ProviderRejected, match="401"):
            pull_source(engine, settings.source("api"), settings.pull_rules, "t")
        monkeypatch.setenv("APP_API_TOKEN", "s3cret")
        assert pull_source(engine, settings.source("api"), settings.pull_rules, "t").pulled > 0


def test_undecodable_bytes_are_rejected_not_loaded(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(
        b"event_id,user_id,name,occurred_at\n"
        b"a1,u1,app_open,2026-10-01T00:00:00Z\n"
        b"a2,u1,\xff\xfeopen,2026-10-01T00:00:00Z\n"
    )
    source = FileSource(name="csv", entity="events", path=str(path), format="csv")
    stats = pull_source(engine, source, settings.pull_rules, "t")
    assert (stats.inserted, stats.rejected, stats.reasons) == (1, 1, {"name": 1})


def test_sql_source_naming_a_missing_table_is_a_config_error(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # SQLite says so with an OperationalError, the class of a lost connection elsewhere.
    source_db = tmp_path / "app.db"
    sqlite3.connect(source_db).close()
    source = SqlSource(
        name="app", entity="events", url=f"sqlite:///{source_db}", table="src_evnets"
    )
    settings = settings.model_copy(update={"sources": [source]})
    with pytest.raises(ConfigError, match="source app: query failed: no such table: src_evnets"):
        pull_source(engine, settings.source("app"), settings.pull_rules, "t")


@pytest.mark.parametrize("how", ["query", "naive_times_in"])
def test_naive_local_times_of_a_zone_with_dst_are_dated_by_the_query_readme_shows(
    engine: Engine, settings: Settings, postgres_server: str, how: str
) -> None:
    """A shop writing Berlin wall-clock times without an offset: the README's query
    (`placed_at AT TIME ZONE 'Europe/Berlin'`), or the source's `naive_times_in`, dates every
    order on its Berlin day, on both sides of the October change and at midnight; the raw
    column would shift some a day."""
    import sqlalchemy as sa

    schema = f"src_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server)
    local_times = {
        "o1": ("2026-10-24 00:30", dt.date(2026, 10, 24)),  # CEST: 22:30 UTC the day before
        "o2": ("2026-10-25 23:59", dt.date(2026, 10, 25)),
        "o3": ("2026-10-26 00:10", dt.date(2026, 10, 26)),  # CET: 23:10 UTC the day before
        "o4": ("2026-07-01 12:00", dt.date(2026, 7, 1)),
    }
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        connection.execute(
            sa.text(
                f"CREATE TABLE {schema}.sales (ref TEXT, cust TEXT, total NUMERIC,"
                " placed_at TIMESTAMP)"
            )
        )
        for ref, (local, _) in local_times.items():
            connection.execute(
                sa.text(f"INSERT INTO {schema}.sales VALUES (:ref, 'c1', 10, :at)"),
                {"ref": ref, "at": dt.datetime.fromisoformat(local)},
            )
    in_berlin = "placed_at AT TIME ZONE 'Europe/Berlin'" if how == "query" else "placed_at"
    source = SqlSource(
        name="shop-orders",
        entity="orders",
        url=f"{postgres_server}?options=-csearch_path%3D{schema}",
        query=f"SELECT ref, cust, total, {in_berlin} AS placed_at FROM sales",
        naive_times_in=None if how == "query" else "Europe/Berlin",
        mapping={
            "order_id": "ref",
            "user_id": "cust",
            "amount": "total",
            "created_at": "placed_at",
        },
    )
    berlin = settings.model_copy(update={"timezone": "Europe/Berlin", "sources": [source]})
    try:
        pulled = pull_source(engine, berlin.source("shop-orders"), berlin.pull_rules, "t")
        assert (pulled.inserted, pulled.rejected) == (4, 0)
        with session_scope(engine) as session:
            days = dict(session.execute(select(Order.order_id, Order.day)).tuples().all())
        assert days == {ref: day for ref, (_, day) in local_times.items()}
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


BERLIN_LOCAL_TIMES = {
    "o1": ("2026-10-24 00:30", dt.date(2026, 10, 24), "2026-10-23 22:30:00"),  # CEST
    "o2": ("2026-10-25 02:30", dt.date(2026, 10, 25), "2026-10-25 00:30:00"),  # twice: first
    "o3": ("2026-10-26 00:10", dt.date(2026, 10, 26), "2026-10-25 23:10:00"),  # CET
    "o4": ("2026-10-26T09:00:00+08:00", dt.date(2026, 10, 26), "2026-10-26 01:00:00"),
}


def test_naive_times_in_reads_a_files_local_times_in_its_zone(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CSV export of Berlin wall-clock times (no query to give them an offset): with
    `naive_times_in`, each is read in Berlin across the October change; a time with an
    offset keeps it."""
    from cli.main import main

    export = tmp_path / "sales.csv"
    export.write_text(
        "ref,cust,total,placed\n"
        + "".join(f"{ref},c1,10,{local}\n" for ref, (local, _, _) in BERLIN_LOCAL_TIMES.items())
    )
    source = {
        "kind": "file", "name": "shop-orders", "entity": "orders", "path": str(export),
        "format": "csv", "naive_times_in": "Europe/Berlin",
        "mapping": {"order_id": "ref", "user_id": "cust", "amount": "total",
                    "created_at": "placed"},
    }  # fmt: skip
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps([source]))
    monkeypatch.setenv("YUNYING_TIMEZONE", "Europe/Berlin")
    assert main(["run", "pull"]) == 0
    capsys.readouterr()
    with session_scope(engine) as session:
        stored = {
            o.order_id: (o.day, f"{o.created_at:%Y-%m-%d %H:%M:%S}")
            for o in session.scalars(select(Order))
        }
    assert stored == {ref: (day, utc) for ref, (_, day, utc) in BERLIN_LOCAL_TIMES.items()}


def test_naive_times_in_names_an_unknown_zone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    source = {"kind": "file", "name": "f", "entity": "orders", "path": "x.csv",
              "naive_times_in": "Europe/Berln"}  # fmt: skip
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps([source]))
    assert main(["run", "pull"]) == 2
    assert "naive_times_in" in capsys.readouterr().err


def test_a_row_deleted_in_the_source_stays_and_a_status_change_takes_it_out(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """As the README says: a pull adds and updates, it never deletes; an order to be left out
    of revenue is marked refunded or cancelled in the source."""
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as db:
        db.execute("CREATE TABLE sales (ref TEXT, cust TEXT, total TEXT, at TEXT, state TEXT)")
        db.executemany(
            "INSERT INTO sales VALUES (?, 'c1', '10.00', '2026-10-02T10:00:00Z', 'paid')",
            [("o1",), ("o2",)],
        )
    source = SqlSource(
        name="shop", entity="orders", url=f"sqlite:///{shop}", table="sales",
        mapping={"order_id": "ref", "user_id": "cust", "amount": "total", "created_at": "at",
                 "status": "state"},
    )  # fmt: skip
    pull_source(engine, source, settings.pull_rules, "t")
    with sqlite3.connect(shop) as db:
        db.execute("DELETE FROM sales WHERE ref = 'o1'")
        db.execute("UPDATE sales SET state = 'refunded' WHERE ref = 'o2'")
    pull_source(engine, source, settings.pull_rules, "t")
    with session_scope(engine) as session:
        stored = dict(session.execute(select(Order.order_id, Order.status)).tuples().all())
        facts = session.execute(select(UserFacts.order_count, UserFacts.revenue)).one()
    assert stored == {"o1": "paid", "o2": "refunded"}
    assert tuple(facts) == (1, Decimal("10.00"))


def test_postgresql_source_lost_mid_read_is_transient(postgres_server: str) -> None:
    import sqlalchemy as sa

    schema = f"src_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        connection.execute(
            sa.text(f"CREATE TABLE {schema}.ev AS SELECT n FROM generate_series(1, 5000) n")
        )
    source = SqlSource(
        name="pg-events",
        entity="events",
        url=f"{postgres_server}?options=-csearch_path%3D{schema}&application_name={schema}",
        table="ev",
        batch_size=100,
    )
    try:
        batches = read_source(source, None)
        assert len(next(batches).records) == 100
        with admin.begin() as connection:  # the source database drops the connection
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": schema},
            )
        with pytest.raises(TransientError, match="unreachable"):
            for _ in batches:
                pass
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.mark.postgres
def test_postgresql_store_plans_each_statement_afresh(postgres_server: str) -> None:
    # psycopg prepares a statement on its fifth run, and PostgreSQL then keeps the plan made
    # when the tables were small: a pull's anti-join went on scanning all of active_days.
    engine = create_store_engine(postgres_server)
    try:
        with engine.connect() as connection:
            for _ in range(6):
                connection.execute(text("SELECT 1"))
            prepared = connection.scalar(text("SELECT COUNT(*) FROM pg_prepared_statements"))
        assert prepared == 0
    finally:
        engine.dispose()


def _users_and_their_silence(tmp_path: Path, users: list[dict[str, object]]) -> list[FileSource]:
    """A users file and an events file in which each user was last seen 10 days before DAY."""
    _write_jsonl(tmp_path / "users.jsonl", users)
    _write_jsonl(tmp_path / "events.jsonl", [
        {"event_id": f"{u['user_id']}-e", "user_id": u["user_id"], "name": "app_open",
         "occurred_at": f"{DAY - dt.timedelta(days=10)}T04:00:00Z"}
        for u in users
    ])  # fmt: skip
    return [
        FileSource(name="users", entity="users", path=str(tmp_path / "users.jsonl")),
        FileSource(name="events", entity="events", path=str(tmp_path / "events.jsonl")),
    ]


@pytest.mark.parametrize("assume", [None, "false", "true"], ids=["default", "false", "true"])
def test_consent_a_source_leaves_out_is_no_consent_unless_the_company_says_so(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    assume: str | None,
) -> None:
    if assume is not None:
        monkeypatch.setenv("YUNYING_CONSENT__ASSUME_OPT_IN_WHEN_MISSING", assume)
    reachable = {
        "signup_at": "2026-06-01T00:00:00Z",
        "email": "x@example.com",
        "phone": "+8613900000000",
    }
    users = [
        {"user_id": "said-yes", **reachable, "email_opt_in": True, "sms_opt_in": "0"},
        {"user_id": "said-no", **reachable, "email_opt_in": "false", "sms_opt_in": False},
        {"user_id": "said-nothing", **reachable},
        {"user_id": "said-blank", **reachable, "email_opt_in": "", "sms_opt_in": None},
    ]  # fmt: skip
    settings = load_settings().model_copy(
        update={"sources": _users_and_their_silence(tmp_path, users)}
    )
    pull_all(engine, settings)
    winback = Campaign(
        name="winback", segment=["silent"], channels=["sms", "email"], template="winback",
        holdout_percent=0,
    )  # fmt: skip
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
        plan(session, winback, DAY)
        planned = dict(session.execute(select(OutboxMessage.user_id, OutboxMessage.channel)).all())
    assumed = "sms" if assume == "true" else None  # the first channel of the campaign
    assert planned == {
        "said-yes": "email",
        "said-no": None,
        "said-nothing": assumed,
        "said-blank": assumed,
    }


def test_locales_without_templates_keep_the_user_in_the_default_locale(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUNYING_DEFAULT_LOCALE", "en-GB")  # normalised too
    given = {"a": "en-US", "b": "zh_CN", "c": "zh-Hans-CN", "d": "ja", "e": "zh-TW", "f": None}
    users = [
        {"user_id": user_id, "signup_at": "2026-06-01T00:00:00Z", "locale": locale}
        for user_id, locale in given.items()
    ]
    settings = load_settings().model_copy(
        update={"sources": _users_and_their_silence(tmp_path, users)}
    )
    stats = pull_all(engine, settings)["users"]
    assert (stats.inserted, stats.rejected) == (6, 0)
    with session_scope(engine) as session:
        stored = dict(session.execute(select(User.user_id, User.locale)).all())
    assert stored == {"a": "en", "b": "zh-CN", "c": "zh-CN", "d": "en", "e": "en", "f": "en"}


def _events(first: int, count: int) -> list[dict[str, str]]:
    return [
        {"event_id": f"e{i}", "user_id": f"u{i % 50}", "name": "app_open",
         "occurred_at": f"2026-11-{1 + i % 28:02}T0{i % 10}:00:00Z"}
        for i in range(first, first + count)
    ]  # fmt: skip


def _gzip_jsonl(path: Path, records: list[dict[str, str]]) -> bytes:
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
    path.write_bytes(whole)
    return whole


def _pull_flow(monkeypatch: pytest.MonkeyPatch, sources: list[object]) -> object:
    from flows.pull import pull_sources

    dumped = [source.model_dump() for source in sources]  # type: ignore[attr-defined]
    monkeypatch.setenv("YUNYING_SOURCES", json.dumps(dumped))
    return pull_sources(return_state=True)


def _pull_summary(state: object) -> tuple[dict[str, dict[str, object]], list[str]]:
    """What the run shows in the UI: its pull-summary artifact (a row per source) and its
    warnings."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        LogFilter,
        LogFilterFlowRunId,
        LogFilterLevel,
    )
    from prefect.logging.handlers import APILogWorker

    run_id = state.state_details.flow_run_id  # type: ignore[attr-defined]
    APILogWorker.drain_all(timeout=10)  # logs reach the API in batches
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                key=ArtifactFilterKey(any_=["pull-summary"]),
            )
        )
        logs = client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run_id]), level=LogFilterLevel(ge_=30)
            )
        )
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {str(row["source"]): row for row in rows}, [log.message for log in logs]


@pytest.mark.usefixtures("prefect")
def test_a_truncated_gzip_is_set_aside_and_the_pull_goes_on(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    _gzip_jsonl(tmp_path / "events-1.jsonl.gz", _events(0, 1000))
    whole = _gzip_jsonl(tmp_path / "events-2.jsonl.gz", _events(1000, 3000))
    (tmp_path / "events-2.jsonl.gz").write_bytes(whole[: len(whole) * 6 // 10])  # cut short
    _gzip_jsonl(tmp_path / "events-3.jsonl.gz", _events(4000, 1000))
    (tmp_path / "orders.csv").write_text(
        "order_id,user_id,amount,created_at\no1,u1,5,2026-11-02T08:00:00Z\n"
    )
    sources = [
        FileSource(name="events", entity="events", path=str(tmp_path / "events-*.jsonl.gz")),
        FileSource(name="orders", entity="orders", path=str(tmp_path / "orders.csv"), format="csv"),
    ]
    state = _pull_flow(monkeypatch, sources)
    assert state.is_completed()  # type: ignore[attr-defined]
    events, orders = state.result()  # type: ignore[attr-defined]
    assert orders["inserted"] == 1  # the source listed after the broken file
    with session_scope(engine) as session:
        stored = set(session.scalars(select(Event.event_id)))
        set_aside = session.execute(select(RejectedRecord.raw, RejectedRecord.reason)).all()
        marked = set(session.scalars(text("SELECT path FROM source_files WHERE source = 'events'")))
    readable = {e for e in stored if 1000 <= int(e[1:]) < 4000}
    assert 0 < len(readable) < 3000
    assert stored - readable == {f"e{i}" for i in (*range(1000), *range(4000, 5000))}
    assert readable == {f"e{i}" for i in range(1000, 1000 + len(readable))}  # no cut line
    path = str(tmp_path / "events-2.jsonl.gz")
    assert [json.loads(raw) for raw, _ in set_aside] == [{"file": path}]
    reason = set_aside[0][1]
    assert reason.startswith("file: cannot be read whole: truncated (Compressed file ended")
    assert f"its first {len(readable):,} rows loaded" in reason
    assert "not marked loaded, so it is read again on the next pull" in reason
    assert events["set_aside"] == [f"{path}: {reason.removeprefix('file: ')}"]
    summary, warnings = _pull_summary(state)
    assert summary["events"]["files set aside"] == 1
    assert f"source events: set aside {path}: cannot be read whole" in "\n".join(warnings)
    assert marked == {str(tmp_path / f"events-{n}.jsonl.gz") for n in (1, 3)}
    capsys.readouterr()
    assert main(["rejects", "events"]) == 0  # names the file to look at
    assert f"e.g. file {path}: file: cannot be read whole" in capsys.readouterr().out

    (tmp_path / "events-2.jsonl.gz").write_bytes(whole)  # the complete copy arrives
    again = pull_source(
        engine, next(s for s in sources if s.name == "events"), settings.pull_rules, "t"
    )
    assert (again.inserted, again.set_aside) == (3000 - len(readable), [])
    assert _count(engine, Event) == 5000
    assert (
        pull_source(
            engine, next(s for s in sources if s.name == "events"), settings.pull_rules, "t"
        ).pulled
        == 0
    )


@pytest.mark.usefixtures("prefect")
def test_a_source_failing_for_good_does_not_stop_the_others(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite3.connect(tmp_path / "app.db").close()
    _write_jsonl(tmp_path / "events.jsonl", _events(0, 10))
    sources = [
        SqlSource(name="app-users", entity="users", url=f"sqlite:///{tmp_path / 'app.db'}",
                  table="acounts"),
        FileSource(name="events", entity="events", path=str(tmp_path / "events.jsonl")),
    ]  # fmt: skip
    state = _pull_flow(monkeypatch, sources)
    assert _count(engine, Event) == 10  # the source after the failing one was pulled
    assert state.is_failed()  # type: ignore[attr-defined]
    assert "1 of 2 sources failed (the others were pulled): app-users:" in state.message  # type: ignore[attr-defined]
    assert "no such table: acounts" in state.message  # type: ignore[attr-defined]
    summary, _ = _pull_summary(state)
    assert "no such table: acounts" in str(summary["app-users"]["failed"])
    assert (summary["events"]["inserted"], summary["events"]["failed"]) == (10, "")


@pytest.mark.parametrize(
    ("auth", "secret", "wrong"),
    [
        ("basic", "reader:pa:ss wörd", "reader:pa:ss word"),  # a password may hold a colon
        ("header", "k-7f3a", "k-7f3b"),
    ],
    ids=["basic", "header"],
)
def test_http_source_basic_and_header_auth_as_the_api_checks_them(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    auth: str,
    secret: str,
    wrong: str,
) -> None:
    settings = company_settings(settings, tmp_path, users=20)
    with LocalServer(source_db=tmp_path / "source.db") as server:
        if auth == "basic":
            user, _, password = secret.partition(":")
            server.basic_auth = (user, password)
        else:
            server.api_key = ("X-Company-Key", secret)
        source = HttpSource(
            name="api", entity="events", url=f"{server.url}/events", auth=auth,
            token_env="APP_API_SECRET", header_name="X-Company-Key", mapping=EVENT_MAPPING,
        )  # fmt: skip
        settings = settings.model_copy(update={"sources": [source]})
        with pytest.raises(ConfigError, match="env var APP_API_SECRET is not set"):
            pull_source(engine, settings.source("api"), settings.pull_rules, "t")
        monkeypatch.setenv("APP_API_SECRET", wrong)
        with pytest.raises(ProviderRejected, match="401"):
            pull_source(engine, settings.source("api"), settings.pull_rules, "t")
        assert _count(engine, Event) == 0
        monkeypatch.setenv("APP_API_SECRET", secret)
        stats = pull_source(engine, settings.source("api"), settings.pull_rules, "t")
    src = sqlite3.connect(tmp_path / "source.db").execute("SELECT count(*) FROM src_events")
    assert stats.pulled == src.fetchone()[0] > 0


def test_sql_source_reads_a_query_incrementally_as_a_yunying_toml_declares_it(
    engine: Engine, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as connection:
        connection.executescript(
            "CREATE TABLE kinds (id INTEGER PRIMARY KEY, label TEXT);"
            "INSERT INTO kinds VALUES (1, 'app_open'), (2, 'purchase');"
            "CREATE TABLE ev (seq INTEGER, id TEXT, uid TEXT, kind INTEGER, at TEXT, staff INT);"
        )
        connection.executemany(
            "INSERT INTO ev VALUES (?, ?, ?, ?, '2026-11-01T08:00:00Z', ?)",
            [(n, f"e{n}", f"u{n % 3}", 1 + n % 2, int(n % 5 == 0)) for n in range(1, 21)],
        )
    config = tmp_path / "yunying.toml"
    config.write_text(
        "[[sources]]\n"
        'kind = "sql"\nname = "app-events"\nentity = "events"\n'
        f'url = "sqlite:///{app}"\n'
        # Staff accounts left out, the kind's name joined in: what a table alone cannot say.
        'query = """SELECT ev.seq, ev.id AS event_id, ev.uid AS user_id, kinds.label AS name,\n'
        '  ev.at AS occurred_at FROM ev JOIN kinds ON kinds.id = ev.kind WHERE ev.staff = 0"""\n'
        'incremental_column = "seq"\nbatch_size = 5\n'
    )
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    settings = load_settings().model_copy(update={"database_url": settings.database_url})
    first = pull_source(engine, settings.source("app-events"), settings.pull_rules, "t")
    assert (first.pulled, first.inserted, first.rejected, first.watermark) == (16, 16, 0, "19")
    with session_scope(engine) as session:
        names = dict(session.execute(select(Event.event_id, Event.name)).tuples().all())
    assert names["e1"] == "purchase" and names["e2"] == "app_open" and "e5" not in names
    with sqlite3.connect(app) as connection:
        connection.execute("INSERT INTO ev VALUES (21, 'e21', 'u1', 1, '2026-11-02T08:00:00Z', 0)")
    second = pull_source(engine, settings.source("app-events"), settings.pull_rules, "t")
    assert (second.pulled, second.inserted) == (2, 1)  # from the watermark on: seq 19 and 21
    assert _count(engine, Event) == 17


def test_a_file_that_is_no_gzip_at_all_is_set_aside_with_none_of_its_rows(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _write_jsonl(tmp_path / "events-1.jsonl.gz", _events(0, 5))  # named .gz, never compressed
    _gzip_jsonl(tmp_path / "events-2.jsonl.gz", _events(5, 5))
    source = FileSource(name="events", entity="events", path=str(tmp_path / "events-*.gz"))
    stats = pull_source(engine, source, settings.pull_rules, "t")
    assert (stats.pulled, stats.inserted, stats.rejected) == (5, 5, 0)
    [set_aside] = stats.set_aside
    assert set_aside.startswith(f"{tmp_path / 'events-1.jsonl.gz'}: cannot be read whole: Not a")
    assert "; none of its rows loaded" in set_aside
