"""The outbox: eligibility, exactly-once sends over real channels, reconciliation after a crash."""

import datetime as dt
import heapq
import json
import threading
import time
from collections import Counter
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, select, text

from tests.builders import DAY, silent_users
from tests.rig import SmtpSink
from yunying.config import Settings, load_settings
from yunying.demo.local_server import LocalServer
from yunying.lifecycle.holdout import in_holdout
from yunying.lifecycle.states import compute_lifecycle
from yunying.messaging import send as sending
from yunying.messaging.campaign import Campaign
from yunying.messaging.channels import SmtpChannel, bad_address, channels_for
from yunying.messaging.manual import unsubscribe
from yunying.messaging.outbox import (
    LEASE,
    NO_LONGER_REACHABLE,
    REACHED_SINCE,
    Outcome,
    claim,
    counts,
    hand_over,
    next_deferred_at,
    plan,
    reclaim,
)
from yunying.messaging.providers import OutgoingMessage
from yunying.messaging.unsubscribe import make_token, unsubscribe_key, verify_token
from yunying.sources.validate.rules import holdout_bucket
from yunying.store.engine import session_scope, utcnow
from yunying.store.models import OutboxMessage, Suppression, User

NOON_IN_SHANGHAI = dt.datetime(2026, 11, 2, 4, 0)


def secret_of(settings: Settings) -> bytes:
    return unsubscribe_key(settings)


def campaign(**changes: object) -> Campaign:
    base = {
        "name": "winback",
        "segment": ["silent"],
        "channels": ["push", "sms", "email"],
        "template": "winback",
        "holdout_percent": 10,
        "frequency_cap_days": 7,
    }
    return Campaign.model_validate({**base, **changes})


def through(settings: Settings, server: SmtpSink, **smtp: object) -> Settings:
    """`settings` sending email through the local SMTP `server`."""
    changes = {"host": "127.0.0.1", "port": server.port, **smtp}
    return settings.model_copy(update={"smtp": settings.smtp.model_copy(update=changes)})


def send_all(
    engine: Engine,
    settings: Settings,
    chosen: Campaign,
    now: dt.datetime = NOON_IN_SHANGHAI,
    worker: str = "w1",
    limit: int = 50,
) -> Counter[str]:
    return sending.send_all(engine, settings, chosen, DAY, worker, limit, now)


def test_plan_applies_holdout_optout_suppression_and_frequency_cap(
    engine: Engine, settings: Settings
) -> None:
    users = silent_users(engine, settings, 400)
    # The rules below are checked on users outside the holdout, whose status they decide.
    opted_out, contacted, plain = [
        u for u in users if not in_holdout(holdout_bucket(u), "winback", 10)
    ][:3]
    with session_scope(engine) as session:
        session.add(
            Suppression(user_id=opted_out, channel="any", reason="test", created_at=utcnow())
        )
        session.add(
            OutboxMessage(
                key="other:1",
                campaign="other",
                business_date=dt.date(2026, 10, 30),  # not tonight: the frequency cap applies
                user_id=contacted,
                channel="email",
                status="sent",
                created_at=utcnow(),
                sent_at=dt.datetime(2026, 10, 30),
            )
        )
    chosen = campaign(channels=["email"])
    with session_scope(engine) as session:
        first = plan(session, chosen, DAY)
        again = plan(session, chosen, DAY)
        rows = {
            r.user_id: r
            for r in session.scalars(
                select(OutboxMessage).where(OutboxMessage.campaign == "winback")
            )
        }
    assert first == again  # planning twice adds nothing
    assert sum(first.values()) == 400
    # The SQL holdout is the same function as the Python one, user by user.
    assert {u for u, r in rows.items() if r.status == "holdout"} == {
        u for u in users if in_holdout(holdout_bucket(u), "winback", 10)
    }
    assert rows[opted_out].status == rows[contacted].status == "suppressed"
    assert "opted out" in (rows[opted_out].reason or "")
    assert rows[contacted].reason == "contacted within 7 days"
    assert (rows[plain].status, rows[plain].key) == ("queued", f"winback:{DAY}:{plain}")


def test_file_channels_send_each_message_exactly_once(engine: Engine, settings: Settings) -> None:
    silent_users(engine, settings, 120)
    chosen = campaign()
    with session_scope(engine) as session:
        planned = plan(session, chosen, DAY)
    sent = send_all(engine, settings, chosen)
    assert sent["sent"] == planned["queued"]
    with session_scope(engine) as session:  # the whole run again: nothing more is sent
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen) == Counter()
    lines = (settings.outbox_path / "push.jsonl").read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == len(set(keys)) == sent["sent"]


def test_email_files_are_valid_messages_with_one_click_unsubscribe(
    engine: Engine, settings: Settings
) -> None:
    silent_users(engine, settings, 30)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen)["sent"] == 30
    files = sorted((settings.outbox_path / "email").glob("*.eml"))
    assert len(files) == 30
    message = message_from_bytes(files[0].read_bytes(), policy=default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(message["List-Unsubscribe"]).strip("<>")
    assert url.startswith("http://127.0.0.1:8000/unsubscribe?token=")
    # The link's token unsubscribes that user, and the next plan honours it.
    print(unsubscribe(settings, url.split("token=")[1]))
    tomorrow = DAY + dt.timedelta(days=1)
    with session_scope(engine) as session:
        compute_lifecycle(session, tomorrow, settings.lifecycle)
        plan(
            session, campaign(channels=["email"], holdout_percent=0, frequency_cap_days=0), tomorrow
        )
        rows = session.execute(
            select(OutboxMessage.user_id, OutboxMessage.status).where(
                OutboxMessage.business_date == tomorrow
            )
        )
        statuses = {user_id: status for user_id, status in rows}
    unsubscribed = url.split("token=")[1]
    assert statuses.pop(verify_token(secret_of(settings), unsubscribed)[0]) == "suppressed"
    assert set(statuses.values()) == {"queued"}


def test_crash_between_send_and_record_does_not_resend(engine: Engine, settings: Settings) -> None:
    silent_users(engine, settings, 60)
    chosen = campaign(channels=["sms"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
        claimed = claim(session, chosen.name, DAY, "crashed-worker", 40, NOON_IN_SHANGHAI)
    # The crashed worker wrote half of its batch to the provider (here the JSONL file)
    # and died before recording anything.
    from yunying.messaging.channels import JsonLinesChannel
    from yunying.messaging.providers import OutgoingMessage
    from yunying.messaging.render import Rendered

    JsonLinesChannel(settings.outbox_path, "sms").send(
        [OutgoingMessage(c, "+86", Rendered("sms", text="hi"), "") for c in claimed[:20]]
    )
    assert send_all(engine, settings, chosen)["sent"] == 20  # the unclaimed rest
    after_lease = NOON_IN_SHANGHAI + LEASE + dt.timedelta(minutes=1)
    assert send_all(engine, settings, chosen, now=after_lease)["sent"] == 40
    keys = [
        json.loads(line)["key"]
        for line in (settings.outbox_path / "sms.jsonl").read_text().splitlines()
    ]
    assert len(keys) == len(set(keys)) == 60


def test_http_provider_with_5xx_and_429_delivers_each_once(
    engine: Engine, settings: Settings, local_server: LocalServer
) -> None:
    silent_users(engine, settings, 150)
    local_server.faults.error_rate = 0.3
    local_server.faults.rate_limit_rate = 0.1
    local_server.faults.retry_after_seconds = 0
    bad_key = f"winback:{DAY}:s00003"
    local_server.faults.reject_keys.add(bad_key)
    settings = settings.model_copy(
        update={
            "providers": settings.providers.model_copy(
                update={"push_url": local_server.url + "/v1/push", "webhook_secret": None}
            )
        }
    )
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    later = NOON_IN_SHANGHAI
    totals: Counter[str] = Counter()
    for _ in range(10):  # requeued messages become due after their backoff
        totals.update(send_all(engine, settings, chosen, now=later))
        later += dt.timedelta(minutes=5)
    with session_scope(engine) as session:
        final = counts(session, "winback", DAY)
        rejected = session.scalar(select(OutboxMessage).where(OutboxMessage.key == bad_key))
    assert final["sent"] == 149 and final["failed"] == 1
    assert rejected is not None and "HTTP 400" in (rejected.reason or "")
    assert local_server.recorder.refusals[bad_key] == 1  # a permanent 4xx is not retried
    assert set(local_server.recorder.deliveries) == {
        f"winback:{DAY}:s{i:05d}" for i in range(150) if i != 3
    }


def test_a_provider_answering_5xx_to_all_gets_at_most_20_requests_a_message(
    engine: Engine, settings: Settings, local_server: LocalServer
) -> None:
    """The README's figure: 4 requests a send, 5 sends, then the message fails for good."""
    silent_users(engine, settings, 3)
    local_server.faults.error_rate = 1.0
    providers = settings.providers.model_copy(
        update={"push_url": local_server.url + "/v1/push", "timeout_seconds": 0.3}
    )
    settings = settings.model_copy(update={"providers": providers})
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    later = NOON_IN_SHANGHAI
    for _ in range(8):  # each requeue is due after its backoff
        send_all(engine, settings, chosen, now=later)
        later += dt.timedelta(minutes=5)
    with session_scope(engine) as session:
        assert counts(session, "winback", DAY)["failed"] == 3
    assert local_server.recorder.unavailable == 3 * 4 * 5


def test_smtp_reuses_one_connection_per_batch_and_bounces_suppress(
    engine: Engine, settings: Settings, smtp_server: SmtpSink
) -> None:
    silent_users(engine, settings, 45)
    smtp_server.bounce.add("s7@example.com")
    settings = settings.model_copy(
        update={
            "smtp": settings.smtp.model_copy(update={"host": "127.0.0.1", "port": smtp_server.port})
        }
    )
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    totals = send_all(engine, settings, chosen, limit=20)
    assert totals == Counter({"sent": 44, "bounced": 1})
    assert len(smtp_server.messages) == 44
    assert smtp_server.connections == 3  # 45 messages in batches of 20
    with session_scope(engine) as session:
        suppression = session.get(Suppression, ("s00007", "email"))
    assert suppression is not None and suppression.reason == "hard bounce"
    assert smtp_server.messages[0]["List-Unsubscribe"]


def test_two_workers_at_once_never_send_twice(
    engine: Engine, settings: Settings, local_server: LocalServer
) -> None:
    silent_users(engine, settings, 300)
    local_server.faults.latency_seconds = 0.002
    local_server.dedupe_keys = False  # a message claimed twice would be delivered twice
    settings = settings.model_copy(
        update={
            "providers": settings.providers.model_copy(
                update={"webhook_url": local_server.url + "/v1/webhook"}
            )
        }
    )
    chosen = campaign(channels=["webhook"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    results: dict[str, Counter[str]] = {}
    workers = [
        threading.Thread(
            target=lambda w=w: results.__setitem__(
                w, send_all(engine, settings, chosen, worker=w, limit=25)
            )
        )
        for w in ("a", "b")
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert results["a"]["sent"] > 0 and results["b"]["sent"] > 0
    assert results["a"]["sent"] + results["b"]["sent"] == 300
    assert local_server.recorder.requests == len(local_server.recorder.deliveries) == 300
    assert local_server.recorder.double_sends == 0


def test_workers_claiming_at_the_same_moment_never_share_a_row(
    engine: Engine, settings: Settings
) -> None:
    """Six workers claim at the same instant, round after round: each row goes to one of them
    (on PostgreSQL thanks to FOR UPDATE SKIP LOCKED, on SQLite to its single writer)."""
    silent_users(engine, settings, 240)
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    workers = 6
    start = threading.Barrier(workers)
    claimed: dict[str, list[int]] = {f"w{i}": [] for i in range(workers)}

    def worker(name: str) -> None:
        for _ in range(4):
            start.wait()
            with session_scope(engine) as session:
                rows = claim(session, "winback", DAY, name, 10, NOON_IN_SHANGHAI)
            claimed[name] += [row.id for row in rows]

    threads = [threading.Thread(target=worker, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [row for rows in claimed.values() for row in rows]
    assert len(every) == len(set(every)) == 240


def test_eligibility_matches_a_reference_on_mixed_users(engine: Engine, settings: Settings) -> None:
    import random

    rng = random.Random(4)
    users = silent_users(engine, settings, 300)
    chosen = campaign(channels=["push", "sms", "email"], holdout_percent=15, frequency_cap_days=5)
    profile: dict[str, dict[str, object]] = {}
    with session_scope(engine) as session:
        for uid in users:
            p = {
                "email": rng.random() < 0.7,
                "email_opt_in": rng.random() < 0.8,
                "phone": rng.random() < 0.5,
                "sms_opt_in": rng.random() < 0.8,
                "push_token": rng.random() < 0.4,
                "push_opt_in": rng.random() < 0.8,
                "suppressed": rng.choice([None, None, None, "any", "push", "email"]),
                "last_sent_days_ago": rng.choice([None, None, 2, 4, 5, 6, 9]),
            }
            profile[uid] = p
            user = session.get(User, uid)
            assert user is not None
            user.email = user.email if p["email"] else None
            user.phone = user.phone if p["phone"] else None
            user.push_token = user.push_token if p["push_token"] else None
            user.email_opt_in, user.sms_opt_in, user.push_opt_in = (
                bool(p["email_opt_in"]),
                bool(p["sms_opt_in"]),
                bool(p["push_opt_in"]),
            )
            if p["suppressed"]:
                session.add(
                    Suppression(
                        user_id=uid, channel=str(p["suppressed"]), reason="t", created_at=utcnow()
                    )
                )
            if p["last_sent_days_ago"] is not None:
                sent_at = dt.datetime.combine(DAY, dt.time(12)) - dt.timedelta(
                    days=int(p["last_sent_days_ago"])
                )  # type: ignore[call-overload]
                session.add(
                    OutboxMessage(
                        key=f"old:{uid}",
                        campaign="old",
                        business_date=DAY - dt.timedelta(days=30),
                        user_id=uid,
                        channel="email",
                        status="sent",
                        created_at=sent_at,
                        sent_at=sent_at,
                    )
                )
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
        got = {
            r.user_id: (r.status, r.channel)
            for r in session.scalars(
                select(OutboxMessage).where(OutboxMessage.campaign == "winback")
            )
        }

    def expected(uid: str) -> tuple[str, str | None]:
        p = profile[uid]
        channel = None
        for name, contact, opt_in in (
            ("push", "push_token", "push_opt_in"),
            ("sms", "phone", "sms_opt_in"),
            ("email", "email", "email_opt_in"),
        ):
            if p[contact] and p[opt_in] and p["suppressed"] not in ("any", name):
                channel = name
                break
        if channel is None:
            return "suppressed", None
        days = p["last_sent_days_ago"]
        # capped when a message went out on or after midnight five days before the business date
        if days is not None and int(days) <= 5:  # type: ignore[call-overload]
            return "suppressed", channel
        if in_holdout(holdout_bucket(uid), "winback", 15):  # among those who would be sent
            return "holdout", channel
        return "queued", channel

    assert got == {uid: expected(uid) for uid in users}
    assert {status for status, _ in got.values()} == {"holdout", "suppressed", "queued"}


SENDER = """
import datetime as dt, json, sys
from yunying.config import load_settings
from yunying.messaging.campaign import Campaign
from yunying.messaging.send import send_all
from yunying.store.engine import create_store_engine
settings = load_settings()
campaign = Campaign.model_validate_json(sys.argv[1])
engine = create_store_engine(settings.store_url)
now = dt.datetime.fromisoformat(sys.argv[2])
day = dt.date.fromisoformat(sys.argv[3])
send_all(engine, settings, campaign, day, "doomed", int(sys.argv[4]), now)
"""


def test_sigkill_mid_batch_then_rerun_delivers_each_message_once(
    engine: Engine,
    settings: Settings,
    local_server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    silent_users(engine, settings, 120)
    chosen = campaign(channels=["webhook"], holdout_percent=0)
    with session_scope(engine) as session:
        planned = plan(session, chosen, DAY)["queued"]
    local_server.faults.latency_seconds = 0.02
    webhook = local_server.url + "/v1/webhook"
    monkeypatch.setenv("YUNYING_PROVIDERS__WEBHOOK_URL", webhook)
    script = tmp_path / "sender.py"
    script.write_text(SENDER)
    sender = subprocess.Popen(
        [
            sys.executable,
            str(script),
            chosen.model_dump_json(),
            NOON_IN_SHANGHAI.isoformat(),
            str(DAY),
            "10",
        ],
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while len(local_server.recorder.deliveries) < 35 and time.monotonic() < deadline:
        time.sleep(0.01)
    sender.send_signal(signal.SIGKILL)  # mid-batch: some sent, some claimed, none recorded
    sender.wait()
    assert 0 < len(local_server.recorder.deliveries) < planned

    settings = settings.model_copy(
        update={"providers": settings.providers.model_copy(update={"webhook_url": webhook})}
    )
    after_lease = NOON_IN_SHANGHAI + LEASE + dt.timedelta(minutes=1)
    send_all(engine, settings, chosen, now=after_lease)
    with session_scope(engine) as session:
        final = counts(session, "winback", DAY)
    assert final["sent"] == planned
    assert len(local_server.recorder.deliveries) == planned  # each user got exactly one message


class ClaimLostMidSend:
    """While this worker sends, its claim goes: an operator runs `yunying outbox reclaim`, or
    another worker whose clock is past the lease claims the rows."""

    def __init__(self, engine: Engine, inner: object, how: str) -> None:
        self.engine, self.inner, self.how = engine, inner, how

    def send(self, messages: list[OutgoingMessage]) -> list[Outcome]:
        with session_scope(self.engine) as session:
            if self.how == "operator reclaims":
                reclaim(session, "winback", DAY, blind_channels=())
            else:
                later = NOON_IN_SHANGHAI + LEASE + dt.timedelta(minutes=1)
                assert len(claim(session, "winback", DAY, "other", 100, later)) == 20
        return self.inner.send(messages)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("how", ["operator reclaims", "another worker claims"])
def test_a_worker_that_lost_its_claim_cannot_record(
    engine: Engine, settings: Settings, how: str
) -> None:
    silent_users(engine, settings, 20)
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    channels = channels_for(settings)
    late = {**channels, "push": ClaimLostMidSend(engine, channels["push"], how)}
    result = sending.send_batch(engine, settings, chosen, DAY, "late", late, 20, NOON_IN_SHANGHAI)
    assert result.claimed == 20 and result.refused == 20  # counted, and logged by the task
    with session_scope(engine) as session:
        left = counts(session, "winback", DAY)
    assert left["queued" if how == "operator reclaims" else "sending"] == 20

    after = NOON_IN_SHANGHAI + 3 * LEASE
    assert send_all(engine, settings, chosen, now=after, worker="next")["sent"] == 20
    lines = (settings.outbox_path / "push.jsonl").read_text().splitlines()
    assert len(lines) == 20  # the reclaimed rows were reconciled with the file, not resent


def test_a_long_paced_batch_renews_its_lease(engine: Engine, settings: Settings) -> None:
    """A paced batch outliving one lease keeps its rows: another worker claims none of them
    and the slow worker's outcomes are all recorded."""
    silent_users(engine, settings, 20)
    chosen = campaign(channels=["push"], holdout_percent=0, quiet_hours=False)
    settings = settings.model_copy(
        update={"providers": settings.providers.model_copy(update={"rate_limits": {"push": 4}})}
    )
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    lease = dt.timedelta(seconds=3)  # beats every 0.75 s: a loaded machine's hiccup is no lapse
    channels = channels_for(settings)
    stolen: list[int] = []
    done = threading.Event()

    def slow_worker_has_claimed() -> bool:
        with session_scope(engine) as session:
            claimed = session.scalar(
                select(OutboxMessage.id).where(OutboxMessage.status == "sending").limit(1)
            )
        return claimed is not None

    def other_worker() -> None:
        # The slow worker claims first, however long a loaded machine makes it take.
        while not (slow_worker_has_claimed() or done.is_set()):
            time.sleep(0.05)
        while not done.is_set():
            other = sending.send_batch(
                engine, settings, chosen, DAY, "other", channels, 20, lease=lease
            )
            stolen.append(other.claimed)
            time.sleep(0.1)

    thief = threading.Thread(target=other_worker)
    started = time.monotonic()
    thief.start()
    try:
        slow = sending.send_batch(
            engine,
            settings,
            chosen,
            DAY,
            "slow",
            channels,
            20,
            pace=lambda channel, n: time.sleep(1.5),
            lease=lease,
        )
    finally:
        done.set()
        thief.join()
    assert time.monotonic() - started > 2 * lease.total_seconds()  # it did outlive the lease
    assert slow.claimed == 20 and slow.refused == 0 and slow.by_status == {"sent": 20}
    assert sum(stolen) == 0


def test_an_smtp_batch_records_its_outcomes_as_it_goes(engine: Engine, settings: Settings) -> None:
    """Outcomes are recorded every `RECORD_EVERY` emails on the one connection: after a crash
    the emails the server took are `sent`, not `unknown` with the rest of the batch."""
    recorded_when: dict[int, int] = {}

    class Watching(SmtpSink):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with session_scope(engine) as store:
                recorded_when[len(self.messages)] = len(
                    store.scalars(select(OutboxMessage).where(OutboxMessage.status == "sent")).all()
                )
            return await super().handle_DATA(server, session, envelope)

    sink = Watching()
    sink.start()
    try:
        silent_users(engine, settings, 45)
        settings = through(settings, sink)
        chosen = campaign(channels=["email"], holdout_percent=0)
        with session_scope(engine) as session:
            plan(session, chosen, DAY)
        assert send_all(engine, settings, chosen, limit=45) == Counter({"sent": 45})
    finally:
        sink.stop()
    assert sink.connections == 1
    every = SmtpChannel.RECORD_EVERY
    # Before its nth message the server holds n; the store, all but those since the last group.
    assert all(recorded == n - n % every for n, recorded in recorded_when.items())


def test_a_server_refusing_to_relay_fails_the_sends_and_suppresses_no_one(
    engine: Engine, settings: Settings, smtp_server: SmtpSink
) -> None:
    """554 5.7.1 for every recipient is the server's setting, not bad addresses: the messages
    fail (resendable once it is fixed) and no user is suppressed as a hard bounce."""
    silent_users(engine, settings, 6)
    smtp_server.refuse_every_recipient = "554 5.7.1 Relay access denied"
    settings = through(settings, smtp_server)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen) == Counter({"failed": 6})
    with session_scope(engine) as session:
        assert session.scalars(select(Suppression)).all() == []
        reasons = set(session.scalars(select(OutboxMessage.reason)))
    assert reasons == {"SMTP 554 5.7.1 Relay access denied"}


def test_a_refusal_echoing_the_address_is_recorded_and_logged_masked(
    engine: Engine,
    settings: Settings,
    smtp_server: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Servers often quote the recipient in their reply; the reason is shown in artifacts,
    alerts and logs, where no raw email or phone number goes."""
    silent_users(engine, settings, 1)
    address = "s0@example.com"
    smtp_server.answer_recipient[address] = (
        f"550 5.7.1 <{address}>: Recipient refused by policy (+8613812345678)"
    )
    settings = through(settings, smtp_server)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    result = sending.send_batch(
        engine, settings, chosen, DAY, "w1", channels_for(settings), 10, NOON_IN_SHANGHAI
    )
    with session_scope(engine) as session:
        [reason] = session.scalars(select(OutboxMessage.reason))
    assert reason == "SMTP 550 5.7.1 <***@example.com>: Recipient refused by policy (+***78)"
    assert list(result.failures) == [reason]


@pytest.mark.parametrize(
    ("code", "reply", "bounce"),
    [
        (550, "5.1.1 <x@example.com>: Recipient address rejected: User unknown", True),
        (550, "5.2.1 Mailbox disabled", True),
        (550, "No such user here", True),
        (554, "5.7.1 Relay access denied", False),
        (550, "5.7.1 Client host rejected: cannot find your hostname", False),
        (550, "Relaying denied", False),
        (530, "5.7.0 Authentication required", False),
    ],
)
def test_only_a_refusal_of_the_address_is_a_hard_bounce(
    code: int, reply: str, bounce: bool
) -> None:
    assert bad_address(code, reply) is bounce


def test_an_email_the_server_may_have_taken_before_the_connection_died_is_never_resent(
    engine: Engine, settings: Settings, smtp_server: SmtpSink
) -> None:
    """A server that takes the message but answers after the client's timeout: that email is
    `unknown` (not resent), the rest of the batch goes out on the next run, each once."""
    silent_users(engine, settings, 4)
    smtp_server.delay_seconds = 1.0
    settings = through(settings, smtp_server, timeout_seconds=0.3)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen) == Counter({"unknown": 1, "retry": 3})
    smtp_server.delay_seconds = 0
    later = NOON_IN_SHANGHAI + dt.timedelta(minutes=5)  # the retries' backoff has passed
    assert send_all(engine, settings, chosen, now=later) == Counter({"sent": 3})
    recipients = [m["To"] for m in smtp_server.messages]
    assert len(recipients) == len(set(recipients)) == 4
    with session_scope(engine) as session:
        final = counts(session, "winback", DAY)
    assert (final["sent"], final["unknown"]) == (3, 1)


def test_a_connection_lost_before_the_data_retries_the_email(
    engine: Engine, settings: Settings, smtp_server: SmtpSink
) -> None:
    """A server too slow to answer RCPT never had the email: it is retried, not unknown."""
    silent_users(engine, settings, 3)
    smtp_server.slow_recipient["s0@example.com"] = 1.0
    settings = through(settings, smtp_server, timeout_seconds=0.3)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen) == Counter({"retry": 3})
    smtp_server.slow_recipient.clear()
    later = NOON_IN_SHANGHAI + dt.timedelta(minutes=5)
    assert send_all(engine, settings, chosen, now=later) == Counter({"sent": 3})
    assert sorted(m["To"] for m in smtp_server.messages) == [f"s{i}@example.com" for i in range(3)]


def test_a_421_for_one_recipient_reconnects_for_the_others(
    engine: Engine, settings: Settings, smtp_server: SmtpSink
) -> None:
    """smtplib closes the connection on a 421: the rest of the batch goes on a new one."""
    silent_users(engine, settings, 5)
    smtp_server.answer_recipient["s1@example.com"] = "421 4.7.0 Too many messages, try later"
    settings = through(settings, smtp_server)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen) == Counter({"sent": 4, "retry": 1})
    assert "s1@example.com" not in {m["To"] for m in smtp_server.messages}
    assert smtp_server.connections == 2


def test_the_file_outbox_writes_one_file_per_message_key(tmp_path: Path) -> None:
    """Users 'ops:45' and 'ops_45' each get their own .eml: ':' is written '_' in a file
    name, so a '_' of the key is escaped, never merged with it."""
    from yunying.messaging.channels import EmlFileChannel
    from yunying.messaging.outbox import Claimed
    from yunying.messaging.render import Rendered

    users = ["ops:45", "ops_45", "ops%5F45"]
    messages = [
        OutgoingMessage(
            Claimed(i, f"winback:{DAY}:{user}", user, "email", 1),
            f"{i}@example.com",
            Rendered("s", "t", "<p>h</p>"),
            "",
        )
        for i, user in enumerate(users)
    ]
    outcomes = EmlFileChannel(tmp_path, "ops@example.com").send(messages)
    files = {outcome.provider_ref for outcome in outcomes}
    assert len(files) == 3 and {o.status for o in outcomes} == {"sent"}
    written = [
        message_from_bytes((tmp_path / "email" / f).read_bytes(), policy=default)
        for f in sorted(files)
    ]
    assert sorted(str(m["To"]) for m in written) == [
        "0@example.com",
        "1@example.com",
        "2@example.com",
    ]
    assert f"winback_{DAY}_ops_45.eml" in files  # the common case stays readable


def test_a_server_that_hangs_up_every_few_messages_costs_no_message_an_attempt(
    engine: Engine, settings: Settings, smtp_server: SmtpSink
) -> None:
    """A relay that hangs up on each connection after five messages: the batch goes on over
    new connections, every message sent once, on its first attempt."""
    silent_users(engine, settings, 12)
    smtp_server.messages_per_connection = 5
    settings = through(settings, smtp_server)
    chosen = campaign(channels=["email"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen) == Counter({"sent": 12})
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(
        f"s{i}@example.com" for i in range(12)
    )
    assert smtp_server.connections == 3
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.campaign == "winback"))
        assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}


@pytest.mark.parametrize("recovery", ["lease lapses", "operator reclaims"])
def test_smtp_messages_a_crash_left_in_flight_are_unknown_never_resent(
    engine: Engine, settings: Settings, smtp_server: SmtpSink, recovery: str
) -> None:
    """Those handed to the server are `unknown`, never resent; the rest of the claimed batch,
    never handed, goes out with the next run."""
    silent_users(engine, settings, 10)
    settings = settings.model_copy(
        update={
            "smtp": settings.smtp.model_copy(update={"host": "127.0.0.1", "port": smtp_server.port})
        }
    )
    chosen = campaign(channels=["email"], holdout_percent=0)
    channels = channels_for(settings)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
        claimed = claim(session, chosen.name, DAY, "crashed", 10, NOON_IN_SHANGHAI)
    # The crashed worker got four messages to the SMTP server, then died unrecorded.
    from yunying.messaging.render import Rendered

    def handing(ids: list[int]) -> None:
        with session_scope(engine) as session:
            hand_over(session, ids, "crashed", NOON_IN_SHANGHAI)

    channels["email"].send(
        [
            OutgoingMessage(c, "x@example.com", Rendered("s", "t", "<p>h</p>"), "")
            for c in claimed[:4]
        ],
        on_handing=handing,
    )
    later = NOON_IN_SHANGHAI + dt.timedelta(minutes=1)
    if recovery == "lease lapses":
        later = NOON_IN_SHANGHAI + LEASE + dt.timedelta(minutes=1)
    else:
        with session_scope(engine) as session:
            done = reclaim(session, chosen.name, DAY, sending.blind_channels(channels))
        assert done == {"requeued": 6, "unknown": 4}
    assert send_all(engine, settings, chosen, now=later) == Counter({"sent": 6})
    assert len(smtp_server.messages) == 10  # no blind resend
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxMessage)).all()
    handed = {c.id for c in claimed[:4]}
    assert {r.id: r.status for r in rows} == {
        r.id: "unknown" if r.id in handed else "sent" for r in rows
    }
    assert all("not resent" in (r.reason or "") for r in rows if r.id in handed)


def test_an_smtp_send_killed_mid_batch_leaves_unknown_only_what_it_handed_the_server(
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL while the server takes the 30th email of a 45-email batch: the first group of
    RECORD_EVERY is recorded sent, the group being handed over is `unknown` (check the
    server's log), and the emails never handed are sent by the next run, each once."""
    import signal
    import subprocess
    import sys

    every = SmtpChannel.RECORD_EVERY
    kill_at = every + every // 2

    class KillingSink(SmtpSink):
        worker: subprocess.Popen[bytes] | None = None

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if self.worker is not None and len(self.messages) == kill_at - 1:
                self.worker.send_signal(signal.SIGKILL)
                self.worker.wait()
            return await super().handle_DATA(server, session, envelope)

    sink = KillingSink()
    sink.start()
    try:
        silent_users(engine, settings, 45)
        chosen = campaign(channels=["email"], holdout_percent=0)
        with session_scope(engine) as session:
            plan(session, chosen, DAY)
        monkeypatch.setenv("YUNYING_SMTP__HOST", "127.0.0.1")
        monkeypatch.setenv("YUNYING_SMTP__PORT", str(sink.port))
        script = tmp_path / "sender.py"
        script.write_text(SENDER)
        arguments = [chosen.model_dump_json(), NOON_IN_SHANGHAI.isoformat(), str(DAY), "45"]
        sink.worker = subprocess.Popen([sys.executable, str(script), *arguments])
        sink.worker.wait(timeout=60)
        assert sink.worker.returncode == -signal.SIGKILL
        sink.worker = None
        assert len(sink.messages) == kill_at

        channels = channels_for(load_settings())
        with session_scope(engine) as session:
            done = reclaim(session, chosen.name, DAY, sending.blind_channels(channels))
        assert done == {"requeued": 45 - 2 * every, "unknown": every}
        assert send_all(engine, load_settings(), chosen) == Counter({"sent": 45 - 2 * every})
    finally:
        sink.stop()
    recipients = [m["To"] for m in sink.messages]
    assert len(recipients) == len(set(recipients)) == kill_at + 45 - 2 * every
    with session_scope(engine) as session:
        final = counts(session, chosen.name, DAY)
    assert (final["sent"], final["unknown"]) == (every + 45 - 2 * every, every)


ZONES = {
    "kolkata": "Asia/Kolkata",  # +5:30
    "kathmandu": "Asia/Kathmandu",  # +5:45
    "honolulu": "Pacific/Honolulu",  # -10
    "new-york": "America/New_York",  # EDT -> EST at 06:00 UTC on 2026-11-01
}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def fixed_runs(first: dt.date, days: int) -> list[tuple[dt.datetime, dt.date]]:
    """prefect.yaml's send schedules: the nightly at 02:00 and the reactivation deployment at
    10:00 Shanghai, each for yesterday; from the 10:00 run of `first` (its nightly failed)."""
    runs = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        for hour in (2, 10):
            at = dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI).astimezone(dt.UTC)
            runs.append((at.replace(tzinfo=None), day - dt.timedelta(days=1)))
    return runs[1:]


def run_schedule(
    engine: Engine,
    settings: Settings,
    chosen: Campaign,
    runs: list[tuple[dt.datetime, dt.date]],
    follow_ups: bool,
) -> list[dt.datetime]:
    """Each run plans its business date and sends what is due, as the flow does; with
    `follow_ups`, a run leaving deferred messages adds a run at their first allowed moment
    (the flow schedules one of the reactivation deployment). Returns when runs happened."""
    pending = list(runs)
    heapq.heapify(pending)
    happened = []
    while pending:
        at, business = heapq.heappop(pending)
        happened.append(at)
        with session_scope(engine) as session:
            compute_lifecycle(session, business, settings.lifecycle)
            plan(session, chosen, business, now=at)
        sending.send_all(engine, settings, chosen, business, f"run-{at:%d%H%M}", 50, at)
        with session_scope(engine) as session:
            due = next_deferred_at(session, chosen.name, business)
        if follow_ups and due is not None and (due, business) not in pending:
            heapq.heappush(pending, (due, business))
    return happened


def zone_users(engine: Engine, settings: Settings) -> None:
    from tests.builders import load_records

    users = [
        {
            "user_id": name,
            "signup_at": "2026-06-01T00:00:00Z",
            "push_token": f"t-{name}",
            "timezone": zone,
        }
        for name, zone in ZONES.items()
    ]
    events = [
        {
            "event_id": f"e-{u['user_id']}",
            "user_id": u["user_id"],
            "name": "app_open",
            "occurred_at": "2026-10-20T12:00:00",
        }
        for u in users
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)


def test_deferred_messages_go_out_at_the_first_allowed_moment_in_every_zone(
    engine: Engine, settings: Settings
) -> None:
    """With the scheduled runs and the follow-up runs the flow schedules, each user gets one
    message at 08:00 local (or at once when not in quiet hours), across half- and
    quarter-hour offsets and New York's change from EDT to EST that night."""
    zone_users(engine, settings)
    chosen = campaign(channels=["push"], holdout_percent=0)
    runs = fixed_runs(dt.date(2026, 11, 1), 3)
    happened = run_schedule(engine, settings, chosen, runs, follow_ups=True)
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.campaign == "winback"))
        sent = {r.user_id: r.sent_at for r in rows if r.status == "sent"}
        statuses = counts(session, "winback", dt.date(2026, 11, 2))
    first_run = dt.datetime(2026, 11, 1, 2, 0)  # 10:00 Shanghai
    minutes = {user: at.replace(second=0, microsecond=0) for user, at in sent.items()}
    assert minutes == {
        "honolulu": first_run,  # 16:00 there: at once
        "kathmandu": dt.datetime(2026, 11, 1, 2, 15),  # 08:00 NPT
        "kolkata": dt.datetime(2026, 11, 1, 2, 30),  # 08:00 IST
        "new-york": dt.datetime(2026, 11, 1, 13, 0),  # 08:00 EST, not 12:00 (08:00 EDT)
    }
    # the follow-up runs: one at each of those moments, no more
    assert set(happened) - {at for at, _ in runs} == set(minutes.values()) - {first_run}
    assert statuses["suppressed"] == 4  # frequency cap: nobody hears twice


def test_a_deferred_message_is_not_sent_to_a_user_who_opted_out_meanwhile(
    engine: Engine, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Planned at 10:00 Shanghai, three users are in quiet hours and deferred. Before their
    08:00, Kathmandu clicks the unsubscribe link (`yunying unsubscribe`) and Kolkata's push
    consent is withdrawn in the company's data (the next pull): when their moment comes,
    neither gets the message; New York still does."""
    from cli.main import main
    from tests.builders import load_records

    zone_users(engine, settings)
    chosen = campaign(channels=["push"], holdout_percent=0)
    first_run = dt.datetime(2026, 11, 1, 2, 0)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
        plan(session, chosen, DAY, now=first_run)
    assert send_all(engine, settings, chosen, first_run) == Counter(deferred=3, sent=1)

    token = make_token(secret_of(settings), "kathmandu", "push", chosen.topic)
    assert main(["unsubscribe", token]) == 0
    assert "unsubscribed kathmandu from push" in capsys.readouterr().out
    with session_scope(engine) as session:
        kolkata = {"user_id": "kolkata", "signup_at": "2026-06-01T00:00:00Z"}
        load_records(session, settings.zone, "users", [{**kolkata, "push_opt_in": False}])

    assert send_all(engine, settings, chosen, dt.datetime(2026, 11, 1, 13, 5)) == Counter(sent=1)
    with session_scope(engine) as session:
        rows = {r.user_id: r for r in session.scalars(select(OutboxMessage))}
    for user in ("kathmandu", "kolkata"):
        assert (rows[user].status, rows[user].reason) == ("suppressed", NO_LONGER_REACHABLE)
        assert rows[user].sent_at is None
    assert rows["new-york"].status == rows["honolulu"].status == "sent"


def test_a_deferred_message_is_not_sent_after_another_campaign_reached_the_user(
    engine: Engine, settings: Settings
) -> None:
    """Kolkata's winback message waits for 08:00 there; meanwhile the next date's campaign,
    without quiet hours, reaches them. At 08:00 the waiting one is withdrawn: one marketing
    message, not two within the hour (a trial got two, 37 minutes apart)."""
    zone_users(engine, settings)
    waiting = campaign(channels=["push"], holdout_percent=0)
    other = campaign(name="promo", channels=["push"], holdout_percent=0, quiet_hours=False)
    first_run = dt.datetime(2026, 11, 1, 2, 0)
    with session_scope(engine) as session:
        compute_lifecycle(session, DAY, settings.lifecycle)
        plan(session, waiting, DAY, now=first_run)
    assert send_all(engine, settings, waiting, first_run)["deferred"] == 3
    next_day = DAY + dt.timedelta(days=1)
    with session_scope(engine) as session:
        compute_lifecycle(session, next_day, settings.lifecycle)
        plan(session, other, next_day, now=first_run)
    sending.send_all(engine, settings, other, next_day, "w2", 50, first_run)
    assert send_all(engine, settings, waiting, dt.datetime(2026, 11, 1, 13, 5)) == Counter()
    with session_scope(engine) as session:
        rows = {
            r.user_id: (r.status, r.reason)
            for r in session.scalars(
                select(OutboxMessage).where(OutboxMessage.campaign == "winback")
            )
        }
    assert rows["kolkata"] == ("suppressed", REACHED_SINCE)
    assert rows["new-york"] == ("suppressed", REACHED_SINCE)


def test_an_unknown_outcome_counts_as_contact_for_the_frequency_cap(
    engine: Engine, settings: Settings
) -> None:
    """An email whose connection dropped after its data may have arrived: the next date's
    plan caps the user as if it had, rather than sending the data a second time."""
    users = silent_users(engine, settings, 3)
    chosen = campaign(channels=["push"], holdout_percent=0)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
        claimed = claim(session, "winback", DAY, "gone", 10, NOON_IN_SHANGHAI)
        hand_over(session, [c.id for c in claimed[:1]], "gone")
        reclaim(session, "winback", DAY, blind_channels=("push",))
    next_day = DAY + dt.timedelta(days=1)
    with session_scope(engine) as session:
        compute_lifecycle(session, next_day, settings.lifecycle)
        plan(session, chosen, next_day)
        reasons = {
            row.user_id: row.reason
            for row in session.scalars(
                select(OutboxMessage).where(OutboxMessage.business_date == next_day)
            )
        }
    assert reasons[users[0]] == "contacted within 7 days"
    assert reasons[users[1]] is None and reasons[users[2]] is None


def test_deferred_messages_are_picked_up_by_later_dates_runs_or_expire(
    engine: Engine, settings: Settings
) -> None:
    """Without follow-up runs, the next scheduled run sends a message deferred on an earlier
    business date once it is due; one that no run reaches within the campaign's valid_hours
    expires with the reason (10:00 and 02:00 Shanghai are both quiet in Kolkata)."""
    zone_users(engine, settings)
    chosen = campaign(channels=["push"], holdout_percent=0, valid_hours=20)
    run_schedule(engine, settings, chosen, fixed_runs(dt.date(2026, 11, 1), 2), follow_ups=False)
    with session_scope(engine) as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.business_date == dt.date(2026, 10, 31))
        )
        first_date = {r.user_id: (r.status, r.sent_at, r.reason) for r in rows}
    status, sent_at, _ = first_date["new-york"]
    assert status == "sent" and sent_at is not None
    assert sent_at.replace(microsecond=0) == dt.datetime(2026, 11, 1, 18, 0)  # D+1's nightly
    for user in ("kolkata", "kathmandu"):
        status, _, reason = first_date[user]
        assert status == "expired" and "valid_hours" in (reason or "")
    with session_scope(engine) as session:
        next_date = {
            r.user_id: r.reason
            for r in session.scalars(
                select(OutboxMessage).where(OutboxMessage.business_date == dt.date(2026, 11, 1))
            )
        }
    # while a user's earlier message waits, the next date adds no second one
    assert (
        next_date["kolkata"]
        == next_date["kathmandu"]
        == ("an earlier message of this campaign is still pending")
    )


def test_daily_max_shares_the_days_turns_fairly(engine: Engine, settings: Settings) -> None:
    """30 silent users, at most 10 a day: over three days each gets exactly one turn, and the
    days do not always favour the same ids."""
    users = silent_users(engine, settings, 30)
    chosen = campaign(channels=["push"], holdout_percent=0, frequency_cap_days=0, daily_max=10)
    turns: list[set[str]] = []
    for offset in range(4):
        day = DAY + dt.timedelta(days=offset)
        with session_scope(engine) as session:
            compute_lifecycle(session, day, settings.lifecycle)
            assert plan(session, chosen, day)["queued"] == 10
            assert plan(session, chosen, day)["queued"] == 10  # a rerun picks the same ten
        noon = dt.datetime.combine(day, dt.time(4))
        assert sending.send_all(engine, settings, chosen, day, "w", 50, noon)["sent"] == 10
        with session_scope(engine) as session:
            today = select(OutboxMessage.user_id).where(OutboxMessage.business_date == day)
            turns.append(set(session.scalars(today)))
    assert set().union(*turns[:3]) == set(users)  # nobody starved
    assert sum(len(t) for t in turns[:3]) == 30  # nobody twice before everyone once
    assert turns[0] != set(users[:10])  # not simply the first ids
    assert len(turns[3]) == 10  # and the turns go round again


def test_days_since_the_last_visit_count_to_the_business_date_not_to_later_activity(
    engine: Engine, settings: Settings
) -> None:
    """A backfilled date, or orders pulled after midnight: activity after the business date
    must not make the message say a negative number of days."""
    from tests.builders import load_records

    users = silent_users(engine, settings, 4, locale="en")
    later = (DAY + dt.timedelta(days=5)).isoformat() + "T04:00:00"
    with session_scope(engine) as session:
        load_records(
            session,
            settings.zone,
            "events",
            [
                {"event_id": f"{u}-later", "user_id": u, "name": "app_open", "occurred_at": later}
                for u in users
            ],
        )
    chosen = campaign(channels=["email"], holdout_percent=0, quiet_hours=False)
    with session_scope(engine) as session:
        plan(session, chosen, DAY)
    assert send_all(engine, settings, chosen) == {"sent": 4}
    texts = [
        message_from_bytes(path.read_bytes(), policy=default).get_body(("plain",)).get_content()
        for path in (settings.outbox_path / "email").glob("*.eml")
    ]
    assert len(texts) == 4
    assert all("It has been 10 days since your last visit." in text for text in texts)


def test_planning_does_not_read_the_outbox_per_user_while_writing_it(
    engine: Engine, settings: Settings
) -> None:
    """Issue 26: checking each user against the outbox (cap, pending, taken tonight) inside
    the statement that inserts into it made PostgreSQL, whose statistics said the outbox was
    empty, rescan every row inserted so far for each user: at 1M users the plan ran for
    minutes. The statement that writes the outbox must not read it per row."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner: SQLite looks the outbox up by index")
    silent_users(engine, settings, 50)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE outbox"))
    plans: list[object] = []

    def explain(connection: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("INSERT INTO outbox "):
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plans.append(cursor.fetchone()[0])

    event.listen(engine, "before_cursor_execute", explain)
    try:
        with session_scope(engine) as session:
            planned = plan(session, campaign(holdout_percent=0), DAY)
    finally:
        event.remove(engine, "before_cursor_execute", explain)
    assert planned["queued"] == 50
    assert plans
    assert not [p for p in plans if _subplan_reads(p, "outbox")], plans


def _subplan_reads(node: object, table: str, in_subplan: bool = False) -> bool:
    if isinstance(node, list):
        return any(_subplan_reads(n, table, in_subplan) for n in node)
    if not isinstance(node, dict):
        return False
    in_subplan = in_subplan or "SubPlan" in str(node.get("Parent Relationship", ""))
    if in_subplan and node.get("Relation Name") == table:
        return True
    return any(_subplan_reads(v, table, in_subplan) for v in node.values())
