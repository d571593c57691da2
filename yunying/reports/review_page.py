"""The review (复盘) as words: one list of sections rendered as Markdown (the Prefect artifact,
the CLI, the email's text part) and as HTML (the archived page and the email), in the
company's locale with Babel's numbers and money (reports/words.py)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from yunying import templates
from yunying.config import Settings
from yunying.reports.review import MIN_SLICE, SLICES, Comparison, Review
from yunying.reports.uplift import MIN_ARM
from yunying.reports.words import Words

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Campaign review: {campaign}",
        "dates": "Sent {first} – {last}, measured to {as_of}",
        "no_rows": "The campaign has no outbox rows up to {as_of}.",
        "window_open": "The measurement window is still open (until {until}): figures will move.",
        "objective": "Objective: {objective} within {days} days after the send.",
        "objective_activity": "any activity",
        "objective_order": "a paid order",
        "objective_event": "event {event}",
        "target": "Target uplift {target} pts; result {result} pts: {verdict}.",
        "met": "met (even the 95% interval's low end, {low}, clears it)",
        "not_shown_above": (
            "not shown yet (the point estimate is above the target, but the 95% interval,"
            " {low} to {high}, includes it)"
        ),
        "not_shown_below": (
            "not shown yet (the point estimate is below the target, and the 95% interval,"
            " {low} to {high}, includes it)"
        ),
        "missed": "not met (the whole 95% interval, {low} to {high}, is below it)",
        "overall": "Overall uplift {uplift} pts (95% interval {low} to {high}): {sig}.",
        "significant": "significant",
        "not_significant": "not significant",
        "too_few": "too few users to tell ({n} needed in each arm)",
        "leader": (
            "Variant {best} is ahead of {second} by {diff} pts (95% interval {low} to {high}):"
            " {sig}."
        ),
        "level": (
            "Variants {best} and {second} convert at the same rate (95% interval of the"
            " difference {low} to {high}): neither is ahead."
        ),
        "funnel": "Funnel",
        "stage": "Stage",
        "users": "Users",
        "share": "Share of eligible",
        "eligible": "Eligible",
        "held_out": "Held out",
        "assigned": "Assigned to send",
        "sent": "Sent",
        "delivered": "Delivered",
        "written_to_files": "Written to files, not sent",
        "converted": "Converted (assigned)",
        "converted_users": "Converted",
        "variants": "Variants against the holdout",
        "variant": "Variant",
        "rate": "Conversion",
        "uplift": "Uplift (pts)",
        "interval": "95% interval (pts)",
        "holdout": "holdout",
        "all_variants": "All variants",
        "cost": "Cost and ROI",
        "message_cost": "Messages",
        "reward_cost": "Rewards",
        "incentive_cost": "Incentives (per conversion)",
        "total_cost": "Total cost",
        "incremental_revenue": "Incremental revenue",
        "roi": "ROI",
        "unknown": "unknown",
        "slices": "Where it worked",
        "slice_note": "Best and worst are only called among slices with {n}+ users in each arm.",
        "tier": "Tier",
        "locale": "Locale",
        "channel": "Channel",
        "timezone": "Time zone",
        "value": "Slice",
        "n": "Assigned / held out",
        "mark": "",
        "best": "best",
        "worst": "worst",
        "subject": "Yunying campaign review {campaign} — {as_of}",
    },
    "zh-CN": {
        "title": "活动复盘：{campaign}",
        "dates": "发送日期 {first} – {last}，统计至 {as_of}",
        "no_rows": "截至 {as_of}，该活动没有任何发送记录。",
        "window_open": "观察期尚未结束（至 {until}），数字还会变化。",
        "objective": "目标：发送后 {days} 天内{objective}。",
        "objective_activity": "有任何活跃",
        "objective_order": "有付费订单",
        "objective_event": "发生事件 {event}",
        "target": "目标提升 {target} 个百分点；实际 {result} 个百分点：{verdict}。",
        "met": "达成（95% 置信区间下限 {low} 也达到目标）",
        "not_shown_above": "尚未证实（点估计高于目标，但 95% 置信区间 {low} 至 {high} 包含目标）",
        "not_shown_below": "尚未证实（点估计低于目标，且 95% 置信区间 {low} 至 {high} 包含目标）",
        "missed": "未达成（95% 置信区间 {low} 至 {high} 整体低于目标）",
        "overall": "整体提升 {uplift} 个百分点（95% 置信区间 {low} 至 {high}）：{sig}。",
        "significant": "显著",
        "not_significant": "不显著",
        "too_few": "人数太少，无法判断（每组至少需要 {n} 人）",
        "leader": (
            "版本 {best} 领先 {second} {diff} 个百分点（95% 置信区间 {low} 至 {high}）：{sig}。"
        ),
        "level": (
            "版本 {best} 与 {second} 转化率相同（差值 95% 置信区间 {low} 至 {high}）：无领先者。"
        ),
        "funnel": "漏斗",
        "stage": "环节",
        "users": "用户数",
        "share": "占符合条件",
        "eligible": "符合条件",
        "held_out": "对照组",
        "assigned": "分配发送",
        "sent": "已发送",
        "delivered": "已送达",
        "written_to_files": "仅写入文件，未发出",
        "converted": "已转化（发送组）",
        "converted_users": "已转化",
        "variants": "各版本对比对照组",
        "variant": "版本",
        "rate": "转化率",
        "uplift": "提升（百分点）",
        "interval": "95% 置信区间（百分点）",
        "holdout": "对照组",
        "all_variants": "全部版本合计",
        "cost": "成本与 ROI",
        "message_cost": "消息",
        "reward_cost": "奖励",
        "incentive_cost": "激励（按转化计）",
        "total_cost": "总成本",
        "incremental_revenue": "增量收入",
        "roi": "ROI",
        "unknown": "未知",
        "slices": "效果分布",
        "slice_note": "仅在每组至少 {n} 人的分组中评出最好与最差。",
        "tier": "价值层级",
        "locale": "语言",
        "channel": "渠道",
        "timezone": "时区",
        "value": "分组",
        "n": "发送组 / 对照组",
        "mark": "",
        "best": "最好",
        "worst": "最差",
        "subject": "运营活动复盘 {campaign} — {as_of}",
    },
}


@dataclass(frozen=True)
class Section:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass(frozen=True)
class Page:
    title: str
    lines: list[str]  # the headline sentences
    sections: list[Section]
    subject: str


def _points(words: Words, value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f}"


def _interval(words: Words, comparison: Comparison) -> str:
    interval = comparison.interval
    return "—" if interval is None else f"{interval[0] * 100:+.1f} … {interval[1] * 100:+.1f}"


def _verdict(words: Words, comparison: Comparison) -> str:
    label = LABELS[words.locale]
    if not comparison.enough:
        return label["too_few"].format(n=MIN_ARM)
    return label["significant"] if comparison.significant else label["not_significant"]


def _target_verdict(review: Review, words: Words) -> str:
    label = LABELS[words.locale]
    verdict, interval = review.target_verdict, review.overall.interval
    if verdict is None or interval is None:
        return label["too_few"].format(n=MIN_ARM)
    key: str = verdict
    if verdict == "not_shown":
        above = (review.overall.uplift or 0.0) * 100 >= (review.target_uplift_points or 0.0)
        key = "not_shown_above" if above else "not_shown_below"
    low, high = (f"{bound * 100:+.1f}" for bound in interval)
    return label[key].format(low=low, high=high)


def leader_line(review: Review, words: Words) -> str | None:
    """Which variant is ahead of the runner-up, by how much and whether that is significant;
    None without two variants with users."""
    if review.leader is None or review.leader.interval is None:
        return None
    low, high = review.leader.interval
    # Sorting put one first; with equal rates neither is ahead.
    key = "level" if review.leader.uplift == 0 else "leader"
    return LABELS[words.locale][key].format(
        best=review.leader.label,
        second=review.variants[1].label,
        diff=_points(words, review.leader.uplift).lstrip("+"),
        low=f"{low * 100:+.1f}",
        high=f"{high * 100:+.1f}",
        sig=_verdict(words, review.leader),
    )


def page(review: Review, words: Words) -> Page:
    label = LABELS[words.locale]

    def say(key: str, **values: object) -> str:
        return label[key].format(**values)

    too_few = say("too_few", n=MIN_ARM)

    lines: list[str] = []
    if review.first_date is None:
        lines.append(say("no_rows", as_of=words.date(review.as_of)))
    else:
        lines.append(
            say(
                "dates",
                first=words.date(review.first_date),
                last=words.date(review.last_date or review.first_date),
                as_of=words.date(review.as_of),
            )
        )
    goal = say(f"objective_{review.objective}", event=review.objective_event)
    lines.append(say("objective", objective=goal, days=review.within_days))
    overall = review.overall
    if review.target_uplift_points is not None:
        lines.append(
            say(
                "target",
                target=f"{review.target_uplift_points:+.1f}",
                result=_points(words, overall.uplift),
                verdict=_target_verdict(review, words),
            )
        )
    if overall.interval is not None:
        low, high = overall.interval
        lines.append(
            say(
                "overall",
                uplift=_points(words, overall.uplift),
                low=f"{low * 100:+.1f}",
                high=f"{high * 100:+.1f}",
                sig=_verdict(words, overall),
            )
        )
    leader = leader_line(review, words)
    if leader is not None:
        lines.append(leader)
    if review.last_date is not None and not review.window_closed:
        until = review.last_date.toordinal() + review.within_days
        lines.append(say("window_open", until=words.date(type(review.as_of).fromordinal(until))))

    funnel = review.funnel
    stages = [
        ("eligible", funnel.eligible),
        ("held_out", funnel.held_out),
        ("assigned", funnel.assigned),
        ("sent", funnel.sent),
        ("delivered", funnel.delivered),
        ("converted", funnel.converted),
    ]
    if funnel.written_to_files:
        stages.insert(5, ("written_to_files", funnel.written_to_files))
    sections = [
        Section(
            say("funnel"),
            [say("stage"), say("users"), say("share")],
            [
                [
                    say(key),
                    words.number(n),
                    words.pct(n / funnel.eligible if funnel.eligible else None),
                ]
                for key, n in stages
            ],
        )
    ]
    variant_rows = [
        [
            c.label,
            words.number(c.treated.users),
            words.number(c.treated.converted),
            words.pct(c.treated.rate),
            _points(words, c.uplift),
            _interval(words, c),
        ]
        for c in [*review.variants, overall]
    ]
    variant_rows[-1][0] = say("all_variants") if review.variants else say("assigned")
    held = overall.reference
    variant_rows.append(
        [
            say("holdout"),
            words.number(held.users),
            words.number(held.converted),
            words.pct(held.rate),
            "",
            "",
        ]
    )
    sections.append(
        Section(
            say("variants"),
            [
                say("variant"),
                say("users"),
                say("converted_users"),
                say("rate"),
                say("uplift"),
                say("interval"),
            ],
            variant_rows,
        )
    )
    cost = review.cost
    sections.append(
        Section(
            say("cost"),
            ["", ""],
            [
                [say("message_cost"), words.money(review.message_cost)],
                [
                    say("reward_cost"),
                    words.money(review.reward_cost)
                    if review.reward_cost is not None
                    else say("unknown"),
                ],
                *(
                    [[say("incentive_cost"), words.money(review.incentive_cost)]]
                    if review.incentive_cost
                    else []
                ),
                [say("total_cost"), words.money(cost) if cost is not None else say("unknown")],
                [
                    say("incremental_revenue"),
                    words.money(review.incremental_revenue) if overall.enough else too_few,
                ],
                [
                    say("roi"),
                    too_few
                    if not overall.enough
                    else words.pct(review.roi)
                    if review.roi is not None
                    else say("unknown"),
                ],
            ],
        )
    )
    for dimension in SLICES:
        best, worst = review.best_and_worst(dimension)
        rows = []
        for c in review.slices.get(dimension, []):
            mark = say("best") if c is best else say("worst") if c is worst else ""
            rows.append(
                [
                    c.label,
                    f"{words.number(c.treated.users)} / {words.number(c.reference.users)}",
                    _points(words, c.uplift),
                    _interval(words, c),
                    mark,
                ]
            )
        sections.append(
            Section(
                f"{say('slices')} · {say(dimension)}",
                [say("value"), say("n"), say("uplift"), say("interval"), say("mark")],
                rows,
                say("slice_note", n=MIN_SLICE),
            )
        )
    return Page(
        say("title", campaign=review.campaign),
        lines,
        sections,
        say("subject", campaign=review.campaign, as_of=review.as_of.isoformat()),
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(view: Page) -> str:
    out = [f"# {view.title}", ""]
    out += [f"- {line}" for line in view.lines]
    for section in view.sections:
        out += ["", f"## {section.title}", ""]
        out.append("| " + " | ".join(_cell(h) for h in section.header) + " |")
        out.append("|" + "---|" * len(section.header))
        out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in section.rows]
        if section.note:
            out += ["", f"_{section.note}_"]
    return "\n".join(out) + "\n"


def html(view: Page, locale: str) -> str:
    return templates.reports().get_template("review.html").render(p=view, locale=locale)


def write_page(settings: Settings, review: Review, view: Page, locale: str) -> Path:
    folder = settings.report_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"review-{review.campaign}-{review.as_of}.html"
    path.write_text(html(view, locale), encoding="utf-8")
    return path


def email(settings: Settings, view: Page, locale: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = settings.mail_from
    message["To"] = ", ".join(settings.report_recipients)
    message["Subject"] = view.subject
    message.set_content(markdown(view))
    message.add_alternative(html(view, locale), subtype="html")
    return message
