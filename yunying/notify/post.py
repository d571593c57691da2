"""Post one message to every target subscribed to its event.

A target that is down, throttled or misconfigured never stops the others: each gets its own
result. A 5xx, a 429, a dropped connection or the robot's flow-control code is tried again
with backoff, up to `attempts` times; any other refusal is reported with the robot's errcode.
Targets are named in results and logs by their label, never by URL (it holds the robot's key).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from yunying.http_client import backoff, retry_after_seconds
from yunying.notify.robots import ChatMessage, DingTalkRobot, FeishuRobot, Robot, WeComRobot
from yunying.notify.targets import Event, NotifyTarget, labelled


@dataclass(frozen=True)
class Delivery:
    target: str
    delivered: bool
    reason: str = ""
    attempts: int = 1


def robot_for(target: NotifyTarget) -> Robot:
    url = target.url.get_secret_value()
    secret = target.secret.get_secret_value() if target.secret else None
    if target.kind == "wecom":
        return WeComRobot(url)
    if target.kind == "dingtalk":
        return DingTalkRobot(url, secret)
    if target.kind == "feishu":
        return FeishuRobot(url, secret)
    raise ValueError(f"{target.kind} targets are posted through Apprise, not a robot")


def post_to_targets(
    targets: list[NotifyTarget],
    event: Event,
    message: ChatMessage,
    timeout: float = 10.0,
    attempts: int = 3,
    max_delay: float = 10.0,
) -> list[Delivery]:
    chosen = [(name, t) for name, t in labelled(targets) if event in t.events]
    if not chosen:
        return []
    with httpx.Client(timeout=timeout) as client:
        return [
            _post_apprise(name, target, message, attempts, max_delay)
            if target.kind == "apprise"
            else _post_robot(client, name, robot_for(target), message, attempts, max_delay)
            for name, target in chosen
        ]


def _post_robot(
    client: httpx.Client,
    name: str,
    robot: Robot,
    message: ChatMessage,
    attempts: int,
    max_delay: float,
) -> Delivery:
    reason = ""
    for attempt in range(1, attempts + 1):
        # Signed anew each time: DingTalk and Feishu refuse a stale timestamp.
        request = robot.request(message, time.time())
        retry_after: float | None = None
        try:
            response = client.request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except httpx.TransportError as exc:
            verdict, reason = "retry", type(exc).__name__
        else:
            verdict, reason = robot.verdict(response.status_code, response.content)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if verdict == "ok":
            return Delivery(name, True, attempts=attempt)
        if verdict == "failed":
            return Delivery(name, False, reason, attempt)
        if attempt < attempts:
            time.sleep(backoff(attempt, retry_after, base_delay=0.5, max_delay=max_delay))
    return Delivery(name, False, f"gave up after {attempts} attempts: {reason}", attempts)


def _post_apprise(
    name: str, target: NotifyTarget, message: ChatMessage, attempts: int, max_delay: float
) -> Delivery:
    import apprise  # see targets.py: its plugins load on first import

    sender = apprise.Apprise()
    sender.add(target.url.get_secret_value())
    body = message.plain().split("\n", 1)[1] if message.lines or message.link else ""
    for attempt in range(1, attempts + 1):
        if sender.notify(body=body or message.title, title=message.title):
            return Delivery(name, True, attempts=attempt)
        if attempt < attempts:
            time.sleep(backoff(attempt, None, base_delay=0.5, max_delay=max_delay))
    # Apprise answers only True/False; its own log (logger "apprise") has the details.
    return Delivery(name, False, f"Apprise could not deliver after {attempts} attempts", attempts)
