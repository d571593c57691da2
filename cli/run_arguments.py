"""`yunying run`'s arguments, checked before any flow (or Prefect server) starts: a mistake
is one line here, not a failed run that alerts the report recipients."""

from __future__ import annotations

import argparse
import shlex

from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.lifecycle.business_dates import refuse_future, refuse_unfinished, yesterday
from yunying.messaging.campaign import find_campaign

# Each optional flag, and the flows it means something to.
APPLIES_TO = {
    "date": ("nightly", "lifecycle", "campaigns", "reactivation", "report"),
    "first": ("lifecycle",),
    "discard_later": ("lifecycle",),
    "campaign": ("nightly", "campaigns", "reactivation"),
    "resend_failed": ("reactivation",),
    "force": ("report",),
}


def refuse_mistakes(settings: Settings, args: argparse.Namespace) -> None:
    """Raise on a flag the flow does not take, a date after today or a range ending before it
    begins; then fill in the default date, so the run and its rerun command name it."""
    for dest, flows in APPLIES_TO.items():
        if getattr(args, dest) not in (None, False) and args.flow not in flows:
            flag = "--from" if dest == "first" else "--" + dest.replace("_", "-")
            raise ConfigError(
                f"`run {args.flow}` takes no {flag} (it is for `run` {', '.join(flows)} only)"
            )
    if args.flow == "pull":
        return
    if not settings.campaign_dir.is_dir() and args.flow in ("nightly", "campaigns", "reactivation"):
        raise ConfigError(f"campaign_dir {settings.campaign_dir} is not a folder: fix the setting")
    name = "winback" if args.campaign is None and args.flow == "reactivation" else args.campaign
    if name is not None:  # a misspelt name fails here, not after the pull
        find_campaign(settings.campaign_dir, name)
    for flag, day in (("--from", args.first), ("--date", args.date)):
        if day is not None:
            refuse_future(day, settings.zone, flag)
    if args.flow in ("report", "nightly") and args.date is not None:
        refuse_unfinished(args.date, settings.zone, "--date")
    args.date = args.date or yesterday(settings.zone)
    if args.first is not None and args.first > args.date:
        raise ConfigError(f"--from {args.first} is after --date {args.date}: a range runs forward")


def rerun_command(args: argparse.Namespace) -> str:
    """The command that runs the same flow for the same date(s) again."""
    words = ["yunying", "run", args.flow]
    if args.first is not None:
        words += ["--from", args.first.isoformat()]
    if args.flow != "pull":
        words += ["--date", args.date.isoformat()]
    if args.campaign:
        words += ["--campaign", args.campaign]
    flags = ("discard_later", "resend_failed", "force")
    words += ["--" + dest.replace("_", "-") for dest in flags if getattr(args, dest)]
    return shlex.join(words)
