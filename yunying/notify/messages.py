"""What ops are told in their group chat: short, numbers first, one link to act on.

No message carries a user's email, phone or openid: payouts and reviews give counts and
amounts only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from yunying.notify.robots import ChatMessage
from yunying.reports.words import Words


def report_headline(
    business_date: str, kpis: Mapping[str, Any], link: str | None, words: Words
) -> ChatMessage:
    """The daily report's headline (日报) in the company's locale: activity, growth, money,
    and raised anomaly flags."""
    count, pct = words.number, words.pct
    lines = [
        " · ".join(f"{words(kpi)} {count(kpis[kpi])}" for kpi in ("dau", "wau", "mau")),
        f"{words('new_users')} {count(kpis['new_users'])}"
        f" · {words('d1_retention')} {pct(_rate(kpis['d1_retention']))}",
        f"{words('revenue')} {words.money(Decimal(str(kpis['revenue'])))}"
        f" · {words('orders')} {count(kpis['orders'])}",
    ]
    raised = [
        f"{words(flag['kpi'])} {words.kpi_value(flag['kpi'], flag['value'])}"
        for flag in kpis.get("flags", [])
        if flag.get("status") in ("new", "continuing")
    ]
    if raised:
        lines.append(words("chat_flags", items=", ".join(raised)))
    return ChatMessage(f"{words('title')} {business_date}", lines, link, words("chat_open_report"))


def _rate(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def run_failed(
    run_name: str,
    flow_name: str,
    state: str,
    why: str,
    link: str | None,
    rerun: str | None = None,
) -> ChatMessage:
    """A failed or crashed run: which, why, and what to do (`what_to_do`)."""
    return ChatMessage(
        f"Yunying: {run_name} {state.lower()}",
        [f"Flow {flow_name} ended {state}: {why[:300]}", what_to_do(why, link, rerun)],
        link,
        "Open the run",
    )


def what_to_do(why: str, link: str | None, rerun: str | None) -> str:
    """After a failed run: that retrying is safe, from the UI or with `rerun` for a run of the
    command line (its temporary server and UI are gone); but when the run's message `why`
    names a command that sends failed messages again, that one (a plain rerun sends nothing
    that failed)."""
    resend = re.search(r"`(yunying run [^`]+ --resend-failed)`", why)
    if resend:
        return f"Once the cause is fixed, run: {resend.group(1)}"
    if link is None and rerun:
        return (
            "Running it again is safe: every task is idempotent."
            f" Once the cause is fixed, run: {rerun}"
        )
    return "Retrying it from the UI is safe: every task is idempotent (see README, Operations)."


def payout_waiting(
    campaign: str, winners: int, flagged: int, total: str, remaining: str, link: str | None
) -> ChatMessage:
    """A payout plan paused for approval, with the link to the paused run."""
    return ChatMessage(
        f"Payout waiting for approval: {campaign} (奖励发放待审批)",
        [
            f"{winners} winners, {flagged} flagged by fraud screens (not paid unless included)",
            f"To pay {total} against {remaining} budget remaining",
            "Approve or reject with Resume in the Prefect UI.",
        ],
        link,
        "Open the paused run",
    )


def campaign_review(
    campaign: str, objective: str, results: Mapping[str, object], link: str | None
) -> ChatMessage:
    """A campaign review (复盘): its objective, then each result as `name: value`."""
    lines = [f"Objective: {objective}"] if objective else []
    lines += [f"{name}: {value}" for name, value in results.items()]
    return ChatMessage(f"Campaign review: {campaign} (复盘)", lines, link, "Open the review")
