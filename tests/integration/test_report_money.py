"""Money in the report: the company's currency formatted by Babel, other currencies apart or
converted at a configured rate, reward points kept as points, ROI per reward campaign."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.builders import load_records
from yunying.config import Settings, load_settings
from yunying.errors import ConfigError
from yunying.reports.daily_email import publish_report
from yunying.reports.kpis import DailyKpis, compute_kpis, money_for
from yunying.store.engine import session_scope
from yunying.store.models import RewardBudget, RewardLedgerEntry

DAY = dt.date(2026, 10, 31)
USD_AMOUNTS = ["1000.25", "800.40", "380.00"]  # 2,180.65 in all


def _orders(engine: Engine, settings: Settings, currencies: dict[str, list[str]]) -> None:
    users = [{"user_id": f"m{i}", "signup_at": "2026-08-01T00:00:00Z"} for i in range(10)]
    orders = [
        {
            "order_id": f"{currency}-{i}",
            "user_id": f"m{i}",
            "amount": amount,
            "currency": currency,
            "created_at": f"{DAY}T04:00:00Z",  # noon in Shanghai
        }
        for currency, amounts in currencies.items()
        for i, amount in enumerate(amounts)
    ]
    events = [
        {
            "event_id": f"e{i}",
            "user_id": f"m{i}",
            "name": "app_open",
            "occurred_at": f"{DAY}T04:00:00Z",
        }
        for i in range(10)
    ]
    with session_scope(engine) as session:
        load_records(session, settings.zone, "users", users)
        load_records(session, settings.zone, "events", events)
        load_records(session, settings.zone, "orders", orders)


def _report(engine: Engine, settings: Settings) -> tuple[DailyKpis, str, str]:
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, settings.zone, money_for(settings))
    with session_scope(engine) as session:
        files = publish_report(session, settings, kpis)
    html = files.html_path.read_text(encoding="utf-8")
    eml = files.eml_path.read_bytes().decode() if files.eml_path else ""
    return kpis, html, eml


def test_a_store_of_usd_orders_is_reported_in_dollars_not_yuan(
    engine: Engine, settings: Settings
) -> None:
    _orders(engine, settings, {"USD": USD_AMOUNTS})
    usd = settings.model_copy(update={"currency": "USD", "default_locale": "en"})
    kpis, html, _ = _report(engine, usd)
    assert kpis.revenue == Decimal("2180.65") and kpis.revenue_other == {}
    assert "$2,180.65" in html and "¥" not in html
    assert "$218.06" in html  # ARPU = 2,180.65 / 10 active users, rounded half to even


def test_other_currencies_are_reported_apart_never_summed(
    engine: Engine, settings: Settings
) -> None:
    _orders(engine, settings, {"USD": USD_AMOUNTS, "CNY": ["100.00", "50.50"]})
    kpis, html, _ = _report(engine, settings)  # company currency CNY, zh-CN, no rate
    assert kpis.revenue == Decimal("150.50")
    assert kpis.revenue_other == {"USD": Decimal("2180.65")}
    assert kpis.counted_payers == 2 and kpis.arppu == Decimal("75.25")
    assert "¥150.50" in html and "US$2,180.65" in html and "¥2,331.15" not in html
    assert "USD 收入（未换算，不计入合计）" in html


def test_other_currencies_are_converted_at_a_configured_rate(
    engine: Engine, settings: Settings
) -> None:
    _orders(engine, settings, {"USD": USD_AMOUNTS, "CNY": ["100.00"]})
    rated = settings.model_copy(update={"exchange_rates": {"USD": Decimal("7.1")}})
    kpis, html, _ = _report(engine, rated)
    assert kpis.revenue == Decimal("15582.62")  # 2,180.65 x 7.1 + 100
    assert kpis.revenue_other == {}
    assert "¥15,582.62" in html


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("currency", "XYZ", "invalid setting 'currency': unknown currency 'XYZ'"),
        ("default_locale", "fr", "invalid setting 'default_locale'"),
        ("exchange_rates", '{"USD": 0}', "invalid setting 'exchange_rates.USD'"),
    ],
    ids=["currency", "locale", "rate"],
)
def test_bad_money_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"YUNYING_{name.upper()}", value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings()


def _payouts(engine: Engine) -> None:
    """A points lottery (510 points paid of 1,000, one more after the date) and a cash
    campaign (200 paid of 500); their winners order after the payout."""
    paid = dt.datetime(2026, 10, 31, 2, 0)  # 10:00 in Shanghai, on DAY
    later = dt.datetime(2026, 11, 2, 2, 0)
    entries = [
        ("checkin", "m0", "points", "100", paid),
        ("checkin", "m1", "points", "410", paid - dt.timedelta(days=3)),
        ("checkin", "m2", "points", "50", later),  # after the date: not in its report
        ("cashback", "m3", "cash", "200", paid),
    ]
    with session_scope(engine) as session:
        session.add(RewardBudget(campaign="checkin", total=Decimal(1000)))
        session.add(RewardBudget(campaign="cashback", total=Decimal(500)))
        for i, (campaign, user, unit, amount, at) in enumerate(entries):
            session.add(
                RewardLedgerEntry(
                    key=f"k{i}",
                    campaign=campaign,
                    user_id=user,
                    reward=unit,
                    amount=Decimal(amount),
                    status="paid",
                    created_at=at,
                    paid_at=at,
                )
            )


def test_points_stay_points_and_roi_is_per_reward_campaign_in_cash(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # m0..m3 each order once at noon on DAY (after the 10:00 payouts): CNY 100, 200, 300, 400
    _orders(engine, settings, {"CNY": ["100", "200", "300", "400"]})
    _payouts(engine)
    kpis, html, _ = _report(engine, settings)
    rewards = {r.campaign: r for r in kpis.rewards}
    points, cash = rewards["checkin"], rewards["cashback"]
    assert (points.unit, points.paid_today, points.paid_total, points.budget) == (
        "points",
        Decimal(100),
        Decimal(510),
        Decimal(1000),
    )
    assert points.cash_cost is None and points.roi is None  # no point value configured
    assert points.revenue == Decimal(300)  # m0 and m1 ordered after their payouts
    assert (cash.unit, cash.paid_today, cash.paid_total, cash.cash_cost) == (
        "cash",
        Decimal(200),
        Decimal(200),
        Decimal(200),
    )
    assert cash.revenue == Decimal(400) and cash.roi == pytest.approx(1.0)  # (400-200)/200
    assert "510 积分" in html and "1,000 积分" in html and "¥510.00" not in html
    assert "¥200.00" in html and "100.0%" in html

    valued = settings.model_copy(
        update={"point_value": Decimal("0.5"), "report_dir": tmp_path / "v"}
    )
    with session_scope(engine) as session:
        kpis = compute_kpis(session, DAY, valued.zone, money_for(valued))
    points = next(r for r in kpis.rewards if r.campaign == "checkin")
    assert points.cash_cost == Decimal("255.00")  # 510 points at 0.5 each
    assert points.roi == pytest.approx((300 - 255) / 255)
