"""Telling the ops team in its group chat: WeCom (企业微信), DingTalk (钉钉) and Feishu/Lark
(飞书) robots, or any Apprise URL.

- `targets.py`: the `[[notify]]` settings, checked at start-up;
- `robots.py`: each robot's signed request and its answer codes;
- `messages.py`: what ops are told (report headline, failed run, payout waiting, review);
- `post.py`: posting one message to every target, retrying what may pass.
"""
