"""The report's words in the company's locale (`default_locale`: zh-CN or en), and its numbers,
money and dates formatted by Babel for that locale.

Words are a small table here rather than gettext catalogues: the report has a few dozen
labels, and a table keeps both languages side by side for whoever edits one of them.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent

from yunying.messaging.status import CONTACTED_PATTERN, Suppressed

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Daily report",
        "chat_flags": "Beyond normal (异常波动): {items}",
        "chat_open_report": "Open the report",
        "subject": "Yunying daily report {date} — {flags} flag(s)",
        "dau": "Daily active users",
        "wau": "Weekly active users",
        "mau": "Monthly active users",
        "new_users": "New users",
        "orders": "Orders",
        "revenue": "Revenue",
        "stickiness": "Stickiness (DAU/MAU)",
        "d1_retention": "D1 retention",
        "d7_retention": "D7 retention",
        "d30_retention": "D30 retention",
        "paying_users": "Paying users",
        "arpu": "ARPU",
        "arppu": "ARPPU",
        "revenue_other": "Revenue in {currency}, not converted and not in the totals",
        "headline_calm": "Nothing moved beyond its normal range today.",
        "headline_flags": "Beyond normal: {items}.",
        "headline_item": "{kpi} {value} is {direction} its normal range ({low}–{high}) {since}",
        "above": "above",
        "below": "below",
        "since_today": "since today",
        "since_day": "since {day}",
        "flags": "Flags",
        "kpi": "KPI",
        "value": "Value",
        "band": "Normal range",
        "status": "Status",
        "normal": "normal",
        "not enough history": "not enough history yet",
        "status_raised": "{direction} normal {since}",
        "method": "How the normal range is set",
        "method_text": (
            "expected = mean of the previous 7 days × the weekday's usual ratio to it (last "
            "{weeks} weeks); range = expected ± {z} robust standard deviations (at least "
            "±{floor}); tuned for about 0.6% false alarms per KPI and day"
        ),
        "trend": "Daily active users, last 30 days",
        "funnel": "Funnel",
        "funnel_text": (
            "Of {signed} users who signed up 7–13 days ago, {activated} came back in the "
            "7 days after and {ordered} ordered in their first 7 days."
        ),
        "signed_up": "signed up",
        "activated": "activated",
        "ordered": "ordered",
        "retention": "Retention of recent cohorts",
        "cohort": "Signup day",
        "users": "Users",
        "reactivation": "Reactivation (messages of {day}, 7 days on)",
        "campaign": "Campaign",
        "running": "Running campaigns: latest figures",
        "last_sent": "last sent",
        "review_at": "Review: {page} beside this report; Prefect artifact `{artifact}`.",
        "review_page": "the review (page)",
        "no_running": "No campaign is running.",
        "assigned": "Assigned to send",
        "held_out": "Held out",
        "came_back": "came back",
        "uplift": "Uplift",
        "ci": "95% interval",
        "pts": "{value} pts",
        "too_few": "too few users to tell ({n} needed in each arm)",
        "incremental": "Incremental revenue",
        "reactivation_note": (
            "Intent to treat: everyone assigned to be sent counts, sent or not ({sent} sent); "
            "the holdout is drawn among the same eligible users."
        ),
        "rewards": "Rewards",
        "paid_today": "Paid today",
        "paid_total": "Paid in all",
        "budget": "Budget",
        "cash_cost": "Cost",
        "reward_revenue": "Revenue of rewarded users since payout",
        "roi": "ROI",
        "roi_note": (
            "Reward campaigns have no holdout, so their ROI is not incremental. "
            "Points have a cash cost only when a point value is configured."
        ),
        "points": "{amount} points",
        "coupon": "{amount} in coupons",
        "lifecycle": "Users per lifecycle state",
        "lifecycle_none": "No lifecycle run for this date.",
        "transitions": "State changes on this date",
        "messages": "Messages of this date",
        "no_data": "No data for this date.",
        "archived": "Archived at",
        "new": "new",
        "active": "active",
        "returned": "returned",
        "silent": "silent",
        "churned": "churned",
        # Outbox statuses (messaging/outbox.py STATUSES), as the messages table shows them.
        "status_queued": "queued",
        "status_sending": "sending",
        "status_sent": "sent",
        "status_written_to_files": "written to files (sending off): sent to no one",
        "status_failed": "failed",
        "status_bounced": "bounced",
        "status_deferred": "deferred (quiet hours)",
        "status_expired": "expired",
        "status_unknown": "outcome unknown",
        "status_holdout": "held out",
        "status_suppressed": "suppressed",
        # Why a row was suppressed (messaging/status.py Suppressed, contacted_within).
        "reason_unreachable": "opted out or unreachable on every channel",
        "reason_topic_off": "turned this campaign's topic off",
        "reason_taken_tonight": "another campaign has this user tonight",
        "reason_pending": "an earlier message of this campaign is still pending",
        "reason_contacted": "contacted within {days} days (frequency cap)",
    },
    "zh-CN": {
        "title": "运营日报",
        "chat_flags": "异常波动：{items}",
        "chat_open_report": "查看日报",
        "subject": "运营日报 {date} — {flags} 项异常",
        "dau": "日活跃用户",
        "wau": "周活跃用户",
        "mau": "月活跃用户",
        "new_users": "新增用户",
        "orders": "订单数",
        "revenue": "收入",
        "stickiness": "黏性（日活/月活）",
        "d1_retention": "次日留存",
        "d7_retention": "7 日留存",
        "d30_retention": "30 日留存",
        "paying_users": "付费用户",
        "arpu": "ARPU",
        "arppu": "ARPPU",
        "revenue_other": "{currency} 收入（未换算，不计入合计）",
        "headline_calm": "今日各项指标均在正常范围内。",
        "headline_flags": "超出正常范围：{items}。",
        "headline_item": "{kpi} {value}，{since}{direction}正常范围（{low}–{high}）",
        "above": "高于",
        "below": "低于",
        "since_today": "今日",
        "since_day": "自 {day} 起",
        "flags": "异常波动",
        "kpi": "指标",
        "value": "数值",
        "band": "正常范围",
        "status": "状态",
        "normal": "正常",
        "not enough history": "历史数据不足",
        "status_raised": "{since}{direction}正常",
        "method": "正常范围的计算方法",
        "method_text": (
            "预期值 = 前 7 天均值 × 该星期几相对它的常见比例（近 {weeks} 周）；正常范围 = "
            "预期值 ± {z} 个稳健标准差（至少 ±{floor}）；按每项指标每天约 0.6% 的误报率调校"
        ),
        "trend": "近 30 日日活跃用户",
        "funnel": "转化漏斗",
        "funnel_text": (
            "7–13 天前注册的 {signed} 名用户中，{activated} 名在注册后 7 天内回访，"
            "{ordered} 名在注册起 7 天内下单。"
        ),
        "signed_up": "注册",
        "activated": "回访",
        "ordered": "下单",
        "retention": "近期注册用户留存",
        "cohort": "注册日",
        "users": "用户数",
        "reactivation": "召回效果（{day} 的消息，7 天后）",
        "campaign": "活动",
        "running": "进行中的活动：最新数据",
        "last_sent": "最近发送",
        "review_at": "复盘：本报告旁的 {page}；Prefect 产物 `{artifact}`。",
        "review_page": "复盘页面",
        "no_running": "没有进行中的活动。",
        "assigned": "计划发送",
        "held_out": "对照组",
        "came_back": "回访",
        "uplift": "提升",
        "ci": "95% 置信区间",
        "pts": "{value} 个百分点",
        "too_few": "人数太少，无法判断（每组至少需要 {n} 人）",
        "incremental": "增量收入",
        "reactivation_note": (
            "意向处理分析：凡计划发送的用户均计入，无论是否发出（已发出 {sent}）；"
            "对照组从同样符合条件的用户中抽取。"
        ),
        "rewards": "奖励发放",
        "paid_today": "今日发放",
        "paid_total": "累计发放",
        "budget": "预算",
        "cash_cost": "成本",
        "reward_revenue": "获奖用户发放后的收入",
        "roi": "投资回报率",
        "roi_note": (
            "奖励活动没有对照组，投资回报率不是增量口径。积分仅在设置了积分价值时计算现金成本。"
        ),
        "points": "{amount} 积分",
        "coupon": "{amount} 优惠券",
        "lifecycle": "各生命周期状态用户数",
        "lifecycle_none": "该日期没有生命周期计算。",
        "transitions": "当日状态变化",
        "messages": "当日消息",
        "no_data": "该日期暂无数据。",
        "archived": "存档于",
        "new": "新用户",
        "active": "活跃",
        "returned": "回流",
        "silent": "沉默",
        "churned": "流失",
        "status_queued": "排队中",
        "status_sending": "发送中",
        "status_sent": "已发送",
        "status_written_to_files": "已写入文件（发送关闭）：未发给任何人",
        "status_failed": "发送失败",
        "status_bounced": "被退回",
        "status_deferred": "延后（免打扰时段）",
        "status_expired": "已过期",
        "status_unknown": "结果未知",
        "status_holdout": "对照组（不发送）",
        "status_suppressed": "已屏蔽",
        "reason_unreachable": "已退订或无可触达渠道",
        "reason_topic_off": "已关闭该活动的主题",
        "reason_taken_tonight": "今晚已有其他活动触达该用户",
        "reason_pending": "本活动此前的消息尚未发出",
        "reason_contacted": "{days} 天内已触达（频次控制）",
    },
}


class Words:
    """Labels and formatting for one locale."""

    def __init__(self, locale: str, currency: str) -> None:
        self.locale = locale
        self.babel_locale = locale.replace("-", "_")
        self.currency = currency
        self.table = WORDS[locale]

    def __call__(self, key: str, **values: object) -> str:
        return self.table[key].format(**values)

    def status(self, status: str) -> str:
        """An outbox status in words; one this table does not know yet as it is."""
        return self.table.get(f"status_{status}", status)

    def reason(self, reason: str) -> str:
        """A suppression's recorded reason in words; one this table does not know, as is."""
        capped = re.fullmatch(CONTACTED_PATTERN, reason)
        if capped:
            return self("reason_contacted", days=capped.group(1))
        known = {r.value: r.name.lower() for r in Suppressed}
        return self.table.get(f"reason_{known.get(reason)}", reason) if reason else "—"

    def number(self, value: float | int | Decimal | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.babel_locale)

    def pct(self, value: float | None) -> str:
        if value is None:
            return "—"
        return format_percent(value, format="#,##0.0%", locale=self.babel_locale)

    def points(self, value: float | None) -> str:
        """A difference of two rates in percentage points (the review's unit too), signed."""
        if value is None:
            return "—"
        sign = "+" if value >= 0 else "-"
        number = format_decimal(abs(value) * 100, format="#,##0.0", locale=self.babel_locale)
        return self("pts", value=sign + number)

    def money(self, value: Decimal | float | None, currency: str | None = None) -> str:
        if value is None:
            return "—"
        return format_currency(value, currency or self.currency, locale=self.babel_locale)

    def reward(self, value: Decimal, unit: str) -> str:
        """An amount in a reward's own unit: cash is money, points stay points."""
        if unit == "cash":
            return self.money(value)
        if unit in ("points", "coupon"):
            return self(unit, amount=self.number(value))
        return f"{self.number(value)} {unit}"

    def date(self, day: dt.date) -> str:
        return format_date(day, format="medium", locale=self.babel_locale)

    def kpi_value(self, kpi: str, value: float) -> str:
        return self.money(Decimal(str(value))) if kpi == "revenue" else self.number(value)
