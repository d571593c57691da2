"""The words on the recipient's pages, in the locales messages are written in."""

from __future__ import annotations

LANGUAGES = (("zh-CN", "中文"), ("en", "English"))

TEXTS: dict[str, dict[str, dict[str, str]]] = {
    "unsubscribe": {
        "zh-CN": {
            "title": "退订",
            "question": "确定不再通过此渠道接收我们的营销消息吗？",
            "confirm": "确认退订",
            "nothing_yet": "在您确认之前，什么都不会改变。也可以只退订部分内容：",
            "preferences": "订阅偏好",
            "done": "您已退订，今后不会再通过此渠道收到营销消息。",
        },
        "en": {
            "title": "Unsubscribe",
            "question": "Stop receiving our marketing messages on this channel?",
            "confirm": "Unsubscribe",
            "nothing_yet": "Nothing changes until you confirm. Or choose only some topics:",
            "preferences": "Preferences",
            "done": "You are unsubscribed: no more marketing messages on this channel.",
        },
    },
    "preferences": {
        "zh-CN": {
            "title": "订阅偏好",
            "channels": "接收渠道",
            "topics": "接收内容",
            "save": "保存",
            "saved": "已保存您的偏好。",
            "locked": "因退信或投诉已停止",
        },
        "en": {
            "title": "Your preferences",
            "channels": "Channels",
            "topics": "Topics",
            "save": "Save",
            "saved": "Your preferences are saved.",
            "locked": "stopped after a bounce or complaint",
        },
    },
    "error": {
        "zh-CN": {"title": "链接无效"},
        "en": {"title": "This link does not work"},
    },
}

CHANNEL_LABELS = {
    "zh-CN": {"email": "邮件", "sms": "短信", "push": "推送通知"},
    "en": {"email": "Email", "sms": "Text messages (SMS)", "push": "Push notifications"},
}

TOPIC_LABELS = {
    "zh-CN": {"winback": "回归优惠与提醒", "rewards": "活动与奖励", "general": "其他营销消息"},
    "en": {
        "winback": "Come-back offers",
        "rewards": "Campaigns and rewards",
        "general": "Other news",
    },
}

ERRORS = {
    "zh-CN": {
        "invalid": "链接无效或已被修改。请使用邮件中的原始链接。",
        "csrf": "页面已过期，请重新打开链接再试。",
    },
    "en": {
        "invalid": "This link is invalid or was altered. Please use the link from the message.",
        "csrf": "This page expired. Please open the link again and retry.",
    },
}


def language(locale: str | None) -> str:
    """zh-CN for any Chinese locale, English otherwise."""
    return "zh-CN" if (locale or "").lower().startswith("zh") else "en"
