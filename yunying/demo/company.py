"""The synthetic company: users, events and orders with realistic shapes, deterministic for a
seed, generated one user at a time so any scale streams through constant memory.

Shapes: signups spread over `history_days` with growth towards the end; each user's daily
activity probability decays with their own half-life (so users go silent and churn at
different rates); some come back; weekends are busier; orders follow a log-normal amount;
users live in three time zones and two locales. About 0.5% of records are malformed on
purpose, so the demo exercises the rejected-records path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

ZONES = [
    ("Asia/Shanghai", "zh-CN", 0.8),
    ("America/Los_Angeles", "en", 0.1),
    ("Europe/London", "en", 0.1),
]
HALF_LIVES = [4, 10, 25, 60, 200]
MALFORMED_RATE = 0.005
EVENT_NAMES = ["view_item", "view_item", "search", "add_to_cart", "share"]


@dataclass
class SyntheticUser:
    user: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)


def generate(
    users: int, seed: int, end: dt.date, history_days: int = 120
) -> Iterator[SyntheticUser]:
    """Yield one user at a time with their events and orders up to the end of `end` (UTC)."""
    for index in range(users):
        yield make_user(index, seed, end, history_days)


def make_user(index: int, seed: int, end: dt.date, history_days: int) -> SyntheticUser:
    rng = random.Random(f"{seed}:{index}")
    uid = f"u{index:07d}"
    zone_name, locale, _ = rng.choices(ZONES, weights=[z[2] for z in ZONES])[0]
    zone = ZoneInfo(zone_name)
    signup_days_ago = int(history_days * rng.random() ** 1.6)
    signup_local = dt.datetime.combine(end - dt.timedelta(days=signup_days_ago), dt.time())
    signup_local += dt.timedelta(seconds=rng.randrange(8 * 3600, 23 * 3600))
    signup_at = signup_local.replace(tzinfo=zone).astimezone(dt.UTC)
    user: dict[str, Any] = {
        "id": uid,
        "created": signup_at.isoformat(),
        "tz": zone_name,
        "lang": locale,
        "email": f"{uid}@example.com" if rng.random() < 0.9 else None,
        "phone": f"+86138{index:08d}" if rng.random() < 0.7 else None,
        "push_token": hashlib.sha1(f"push{seed}{index}".encode()).hexdigest()
        if rng.random() < 0.6
        else None,
        "email_ok": int(rng.random() > 0.05),
        "sms_ok": int(rng.random() > 0.1),
        "push_ok": int(rng.random() > 0.08),
        "device": f"d{rng.randrange(users_per_device_space(index))}",
        "ip": f"ip{rng.randrange(1 << 20)}",
    }
    result = SyntheticUser(user)
    p0 = rng.uniform(0.25, 0.85)
    half_life = rng.choice(HALF_LIVES)
    comeback_day = rng.randrange(20, 90) if rng.random() < 0.15 else None
    event_seq = 0
    for age in range(signup_days_ago + 1):
        local_date = end - dt.timedelta(days=signup_days_ago - age)
        decay = 0.5 ** (age / half_life)
        if comeback_day is not None and age >= comeback_day:
            decay = max(decay, 0.6 * 0.5 ** ((age - comeback_day) / half_life))
        weekly = 1.25 if local_date.weekday() >= 5 else (0.9 if local_date.weekday() == 0 else 1.0)
        if age > 0 and rng.random() >= min(0.95, p0 * decay * weekly):
            continue
        start = dt.datetime.combine(local_date, dt.time(7)).replace(tzinfo=zone)
        moment = signup_at if age == 0 else start + dt.timedelta(seconds=rng.randrange(16 * 3600))
        for name in ["app_open", *rng.choices(EVENT_NAMES, k=rng.randrange(0, 4))]:
            moment += dt.timedelta(seconds=rng.randrange(5, 600))
            result.events.append(_event(uid, event_seq, name, moment))
            event_seq += 1
        if rng.random() < 0.07:
            moment += dt.timedelta(seconds=rng.randrange(30, 900))
            result.events.append(_event(uid, event_seq, "purchase", moment))
            event_seq += 1
            amount = round(math.exp(rng.gauss(4.0, 0.8)), 2)
            result.orders.append(
                {
                    "order_no": f"o{index:07d}-{len(result.orders):04d}",
                    "uid": uid,
                    "amount": str(amount),
                    "currency": "CNY",
                    "status": "refunded" if rng.random() < 0.03 else "paid",
                    "paid_at": moment.astimezone(dt.UTC).isoformat(),
                }
            )
    _corrupt(rng, result)
    return result


def users_per_device_space(index: int) -> int:
    # A device space much larger than the population, so shared devices stay rare.
    return max(1000, index * 50)


def _event(uid: str, seq: int, name: str, moment: dt.datetime) -> dict[str, Any]:
    return {
        "event_uuid": f"{uid}-e{seq}",
        "uid": uid,
        "type": name,
        "ts": moment.astimezone(dt.UTC).isoformat(),
    }


def _corrupt(rng: random.Random, result: SyntheticUser) -> None:
    if rng.random() < MALFORMED_RATE:
        result.user["email"] = "not-an-email"
    for event in result.events:
        if rng.random() < MALFORMED_RATE:
            kind = rng.randrange(3)
            if kind == 0:
                event["ts"] = "2024-13-45T25:61:00"
            elif kind == 1:
                event["uid"] = None
            else:
                event["type"] = "bad\ufffdname"
    for order in result.orders:
        if rng.random() < MALFORMED_RATE * 4:
            order["amount"] = str(-abs(float(order["amount"])))
