import datetime as dt

from yunying.demo.company import generate, make_user

END = dt.date(2026, 11, 1)


def test_same_seed_same_company() -> None:
    assert make_user(5, 7, END, 120) == make_user(5, 7, END, 120)
    assert make_user(5, 7, END, 120) != make_user(5, 8, END, 120)


def test_shapes_are_realistic() -> None:
    users = list(generate(800, seed=3, end=END))
    zones = {u.user["tz"] for u in users}
    locales = {u.user["lang"] for u in users}
    assert zones == {"Asia/Shanghai", "America/Los_Angeles", "Europe/London"}
    assert locales == {"zh-CN", "en"}
    last_seen = [max(e["ts"] for e in u.events if e["ts"][:4] != "2024") for u in users]
    days_idle = [(END - dt.date.fromisoformat(ts[:10])).days for ts in last_seen]
    assert sum(d <= 2 for d in days_idle) > 50  # active
    assert sum(7 <= d <= 30 for d in days_idle) > 50  # silent
    assert sum(d > 30 for d in days_idle) > 50  # churned
    opens = [
        e["ts"][:10]
        for u in users
        for e in u.events
        if e["type"] == "app_open" and not e["ts"].startswith("2024-13")
    ]
    weekend = sum(dt.date.fromisoformat(day).weekday() >= 5 for day in opens)
    weekday = len(opens) - weekend
    assert weekend / 2 > weekday / 5  # busier weekends
    assert any(u.orders for u in users)
    assert sum(1 for u in users if not u.user["email_ok"]) > 10  # opt-outs
