"""`yunying`: the command line for what people do by hand.

yunying demo                     build the synthetic company and run the nightly chain
yunying init                     write yunying.toml for your own data, checking each source
yunying db upgrade               create or migrate the store
yunying rejects [SOURCE]         the rows the sources set aside, by reason
yunying run FLOW [--date D]      run nightly | pull | lifecycle | reactivation | report locally
yunying run lifecycle --from D0 --date D1   recompute lifecycle states for a range (no sends)
yunying run lifecycle --date D --discard-later   recompute D, forget the dates computed after it
yunying preview CAMPAIGN --user U [--date D]   render a campaign's message for one user
yunying test-send CAMPAIGN --to ADDRESS   send it to a staff address
yunying web                      serve unsubscribe, preferences and provider callbacks
yunying unsubscribe TOKEN        apply an unsubscribe link's token
yunying rewards commit CAMPAIGN  commit to a lottery's seed (publish its hash) at the start
yunying sending enable|disable|status   campaign messages to customers, or to files only
yunying outbox reclaim CAMPAIGN --date D   after a confirmed crash: requeue its in-flight sends
yunying outbox unknown CAMPAIGN --date D   the users whose message's outcome is unknown
yunying outbox resend CAMPAIGN --date D --users U...   queue again what the provider lacks
yunying segments show NAME [--date D]   a segment's size, a few masked members and its SQL
yunying review CAMPAIGN [--date D]      the campaign's review (复盘)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cli.environment import prepare_prefect
from cli.prefect_server import owns_a_server, start_temporary_server, stop_servers
from cli.run_arguments import refuse_mistakes, rerun_command
from yunying.config import Settings, load_settings, resolve_secrets, secret_references
from yunying.errors import ConfigError, PermanentError, YunyingError
from yunying.notify.command_line import interrupted, ran_from_the_command_line, was_interrupted

if TYPE_CHECKING:
    from yunying.messaging.campaign import Campaign


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_token_as_argument(list(sys.argv[1:] if argv is None else argv)))
    command = " ".join(["yunying", *(sys.argv[1:] if argv is None else argv)])
    settings: Settings | None = None
    try:
        if not getattr(args, "needs_settings", True):  # init writes the settings file
            return int(args.handler(None, args) or 0)
        settings = load_settings(defer_secrets=True)
        check = getattr(args, "check", None)
        if check is not None:  # before a server starts or a flow runs
            check(settings, args)
        prepare_prefect(settings.home)
        references = secret_references(settings)
        needs_prefect = getattr(args, "needs_prefect", False) or references
        api_url = start_temporary_server() if needs_prefect else None
        if api_url is not None:
            _interrupt_on_signals()
            # Its runs' UI goes with the command: alerts name the command to run again.
            rerun = getattr(args, "rerun", None)
            ran_from_the_command_line(api_url, rerun(args) if rerun is not None else command)
            _say_abandoned_runs()
        if references:  # read through Prefect, once its home is set
            from tasks.secrets import read_secret_block

            settings = resolve_secrets(settings, read_secret_block)
        if api_url is None:
            return int(args.handler(settings, args) or 0)
        from prefect import tags

        from cli.abandoned_runs import command_tag

        with tags(command_tag()):
            return int(args.handler(settings, args) or 0)
    except YunyingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(command, _where_lifecycle_ends(settings, args))
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        from cli.store_check import store_problem

        # `db upgrade` itself failing is no reason to tell the user to run it.
        schema = not getattr(args, "migrates", False)
        problem = store_problem(settings, schema) if settings is not None else None
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped early (`| head`): it had what it wanted. Nothing more to flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:
        if not was_interrupted():
            raise
        return _interrupted(command, _where_lifecycle_ends(settings, args))


def _token_as_argument(argv: list[str]) -> list[str]:
    """A token is base64url and may start with "-", which argparse takes for an option: after
    `unsubscribe`, anything but -h/--help is the token."""
    if len(argv) == 2 and argv[0] == "unsubscribe" and argv[1] not in ("-h", "--help"):
        return [argv[0], "--", argv[1]]
    return argv


def _say_abandoned_runs() -> None:
    from cli.abandoned_runs import crash_abandoned_runs

    crashed = crash_abandoned_runs()
    if crashed:
        print(
            f"note: {len(crashed)} run(s) left Running by a `yunying` command that was killed"
            f" are now marked Crashed: {', '.join(crashed)}",
            file=sys.stderr,
        )


# After an interrupt the CLI ends within this long, whatever Prefect is still flushing.
INTERRUPT_GRACE_SECONDS = 10.0


def _where_lifecycle_ends(settings: Settings | None, args: argparse.Namespace) -> str | None:
    """For an interrupted `run lifecycle`, where the store's lifecycle now ends: a recompute
    has put the states back to its first date and starts there again, so a range's later
    dates are gone until the rerun finishes."""
    if settings is None or getattr(args, "flow", None) != "lifecycle":
        return None
    from yunying.lifecycle.states import latest_date
    from yunying.store.engine import create_store_engine, session_scope

    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            latest = latest_date(session)
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return f"the store's lifecycle now ends at {latest}" if latest else "the store has no lifecycle"


def _interrupted(command: str, lifecycle_end: str | None = None) -> int:
    """Prefect has marked the run Crashed on its way out; Prefect's exit handlers then flush
    to the server, which stops last (cli/prefect_server.py)."""
    if owns_a_server():  # the command's own process, not a program calling main()
        signal.signal(signal.SIGINT, _exit_now)  # a second Ctrl-C: end at once
        signal.signal(signal.SIGTERM, _exit_now)
        watchdog = threading.Timer(INTERRUPT_GRACE_SECONDS, _exit_now)
        watchdog.daemon = True
        watchdog.start()
    if lifecycle_end is not None:
        print(
            f"interrupted: `{command}` stopped before it finished; {lifecycle_end}: "
            "run the same command again to finish",
            file=sys.stderr,
        )
    else:
        print(
            f"interrupted: `{command}` stopped before it finished; run the same command again "
            "to resume safely (work already done is kept and not repeated)",
            file=sys.stderr,
        )
    return 130


def _exit_now(*_: object) -> None:
    stop_servers()
    os._exit(130)


def _interrupt_on_signals() -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        interrupted()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yunying", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="build the synthetic company and run the nightly chain")
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--keep", action="store_true", help="keep the existing store")
    demo.set_defaults(handler=_demo, needs_prefect=True)

    init = commands.add_parser(
        "init", help="write yunying.toml for your data, checking each source"
    )
    from cli.init import add_arguments

    add_arguments(init)
    init.set_defaults(handler=_init, needs_settings=False)

    db = commands.add_parser("db", help="the store's schema")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(handler=_db, migrates=True)

    run = commands.add_parser("run", help="run a flow locally")
    run.add_argument(
        "flow", choices=["nightly", "pull", "lifecycle", "campaigns", "reactivation", "report"]
    )
    run.add_argument("--date", type=dt.date.fromisoformat, help="business date, default yesterday")
    run.add_argument(
        "--from",
        dest="first",
        type=dt.date.fromisoformat,
        help="lifecycle: recompute from this date (to --date, and the dates computed after it)",
    )
    run.add_argument(
        "--campaign",
        help="nightly, campaigns: only this campaign (default: every active nightly one); "
        "reactivation: the campaign to send (default winback)",
    )
    run.add_argument(
        "--discard-later",
        action="store_true",
        help="lifecycle: end at --date and forget the dates computed after it",
    )
    run.add_argument(
        "--resend-failed", action="store_true", help="reactivation: send the failed messages again"
    )
    run.add_argument("--force", action="store_true", help="send the report again")
    run.set_defaults(handler=_run, needs_prefect=True, check=_check_run, rerun=rerun_command)

    preview = commands.add_parser("preview", help="render a campaign message for one user")
    preview.add_argument("campaign")
    preview.add_argument("--user", required=True)
    preview.add_argument("--channel")
    preview.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        help="render as a send on this business date would (days inactive), default"
        " yesterday, as `run` does",
    )
    preview.set_defaults(handler=_preview)

    test_send = commands.add_parser("test-send", help="send a campaign message to a staff address")
    test_send.add_argument("campaign")
    test_send.add_argument("--to", required=True)
    test_send.add_argument("--locale", help="default: the setting default_locale")
    test_send.set_defaults(handler=_test_send)

    setup = commands.add_parser(
        "setup", help="create the providers' rate limits and the crashed-run automation in Prefect"
    )
    setup.set_defaults(handler=_setup, needs_prefect=True)

    web = commands.add_parser("web", help="serve unsubscribe, preferences, provider callbacks")
    web.add_argument("--host", help="default: web.host (127.0.0.1)")
    web.add_argument("--port", type=int, help="default: web.port (8000)")
    web.set_defaults(handler=_web)

    runs = commands.add_parser("runs", help="recent flow runs with state and duration")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(handler=_runs, needs_prefect=True)

    sending = commands.add_parser(
        "sending", help="send campaign messages to customers, or only to the file outbox"
    )
    sending.add_argument("action", choices=["enable", "disable", "status"])
    sending.set_defaults(handler=_sending)

    payouts = commands.add_parser("payouts", help="a reward campaign's payout ledger")
    payouts.add_argument("action", choices=["show"])
    payouts.add_argument("campaign")
    payouts.set_defaults(handler=_payouts)

    rewards = commands.add_parser("rewards", help="reward campaigns: commit a lottery's seed")
    rewards.add_argument("action", choices=["commit"])
    rewards.add_argument("campaign")
    rewards.set_defaults(handler=_rewards)

    outbox = commands.add_parser("outbox", help="a campaign run's outbox")
    outbox.add_argument("action", choices=["reclaim", "unknown", "resend"])
    outbox.add_argument("campaign")
    outbox.add_argument(
        "--users", nargs="+", default=[], help="resend: users the provider's log shows it lacks"
    )
    outbox.add_argument("--date", type=dt.date.fromisoformat, required=True)
    outbox.set_defaults(handler=_outbox)

    rejected = commands.add_parser("rejects", help="rows the sources set aside, by reason")
    rejected.add_argument("source", nargs="?", help="one source (default: every source)")
    rejected.set_defaults(handler=_rejects)

    segments = commands.add_parser("segments", help="segment files: size, members, SQL")
    segments.add_argument("action", choices=["show", "list", "sizes"])
    segments.add_argument("name", nargs="?", help="the segment (for show)")
    segments.add_argument(
        "--date", type=dt.date.fromisoformat, help="business date, default the latest lifecycle"
    )
    segments.set_defaults(handler=_segments)

    review = commands.add_parser("review", help="a campaign's review (复盘)")
    review.add_argument("campaign")
    review.add_argument("--date", type=dt.date.fromisoformat, help="review only this send date")
    review.add_argument(
        "--as-of", type=dt.date.fromisoformat, help="measured up to this date, default yesterday"
    )
    review.set_defaults(handler=_review)

    unsubscribe = commands.add_parser("unsubscribe", help="apply an unsubscribe token")
    unsubscribe.add_argument("token")
    unsubscribe.set_defaults(handler=_unsubscribe)
    return parser


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from cli.demo import print_summary, run_demo

    summary = run_demo(settings, args.users, args.seed, args.keep)
    print_summary(summary, settings)
    return 0


def _init(settings: Settings | None, args: argparse.Namespace) -> int:
    from cli.init import run_init

    return run_init(args)


def _db(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.store.migrate import revision_of, upgrade

    before = revision_of(settings.store_url)
    upgrade(settings.store_url)
    after = revision_of(settings.store_url)
    where = sa.make_url(settings.store_url).render_as_string(hide_password=True)
    if before is None:
        print(f"created the store at {where} (schema {after})")
    elif before == after:
        print(f"store at {where} is up to date (schema {after})")
    else:
        print(f"upgraded the store at {where} from schema {before} to {after}")
    return 0


def _check_run(settings: Settings, args: argparse.Namespace) -> None:
    from cli.store_check import store_problem, unplannable

    refuse_mistakes(settings, args)
    problem = store_problem(settings)
    if problem is None and args.flow in ("campaigns", "reactivation") and not args.resend_failed:
        problem = unplannable(settings, args.date)  # the flow would fail, and alert
    if problem is not None:
        raise PermanentError(problem)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.flow == "nightly":
        from flows.nightly import nightly

        night = nightly(business_date=args.date, campaign=args.campaign)
        print(night)
        _warn_if_sending_off(settings, list(night["campaigns"]))
    elif args.flow == "pull":
        from flows.pull import pull_sources

        print(pull_sources())
        _say_how_activity_is_derived(settings)
    elif args.flow == "lifecycle":
        from flows.lifecycle import lifecycle_range

        result = lifecycle_range(
            business_date=args.date, first=args.first, discard_later=args.discard_later
        )
        print(f"lifecycle computed for {result['dates'][0]} .. {result['dates'][-1]};")
        if result["forgotten"]:
            print(f"the dates computed after it were forgotten: {result['forgotten']}")
        print("nothing was sent (run reactivation to send)")
        for line in result["recomputed"]:
            print(f"  {line}")
        print("users per state: " + ", ".join(f"{k} {v}" for k, v in result["lifecycle"].items()))
    elif args.flow == "campaigns":
        from flows.campaigns import campaigns

        sent = campaigns(business_date=args.date, names=[args.campaign] if args.campaign else None)
        print(sent or f"no campaign in {settings.campaign_dir} is active for {args.date}")
        _warn_if_sending_off(settings, [result["campaign"] for result in sent])
    elif args.flow == "reactivation":
        from flows.reactivation import reactivation

        name = args.campaign or "winback"
        print(
            reactivation(campaign=name, business_date=args.date, resend_failed=args.resend_failed)
        )
        _warn_if_sending_off(settings, [name])
    else:
        from flows.report import report
        from tasks.report import ALREADY_SENT_HINT

        result = report(business_date=args.date, force=args.force)
        print(result)
        if not result["sent"]:
            print(f"the report was already sent; {ALREADY_SENT_HINT}")
        elif result["eml"]:
            print(f"no SMTP server is configured (smtp.host): the report was written to"
                  f" {result['eml']}, not emailed")  # fmt: skip
    return 0


def _sending(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.messaging.sending import sending_enabled, set_sending
    from yunying.store.engine import create_store_engine, session_scope

    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            if args.action != "status":
                set_sending(session, args.action == "enable")
        with session_scope(engine) as session:
            on = sending_enabled(session, settings)
    finally:
        engine.dispose()
    where = (
        "to customers on the configured channels" if on else f"to files in {settings.outbox_path}"
    )
    pinned = "" if settings.sending is None else " (the setting `sending` decides, not the store)"
    print(f"sending is {'on' if on else 'off'}: campaign messages go {where}{pinned}")
    return 0


def _say_how_activity_is_derived(settings: Settings) -> None:
    from yunying.lifecycle.activity import describe_activity, stored_entities
    from yunying.store.engine import create_store_engine, session_scope

    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            note = describe_activity(stored_entities(session), settings.lifecycle)
    finally:
        engine.dispose()
    if note:
        print(f"activity: {note}")


def _warn_if_sending_off(settings: Settings, campaigns: list[str]) -> None:
    """After a run: loudly, that sending is off, or which of the campaigns' channels have no
    provider (their messages went to files)."""
    from yunying.messaging.campaign import find_campaign
    from yunying.messaging.sending import export_notice, off_notice
    from yunying.store.engine import create_store_engine

    channels = sorted(
        {c for name in campaigns for c in find_campaign(settings.campaign_dir, name).channels}
    )
    engine = create_store_engine(settings.store_url)
    try:
        notice = off_notice(engine, settings) or export_notice(engine, settings, channels)
    finally:
        engine.dispose()
    if notice:
        print(f"\n*** {notice} ***\n", file=sys.stderr)


def _preview(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.lifecycle.business_dates import refuse_future, yesterday
    from yunying.messaging.manual import preview

    if args.date is not None:
        refuse_future(args.date, settings.zone, "--date")
    day = args.date or yesterday(settings.zone)
    print(preview(settings, args.campaign, args.user, args.channel, day))
    return 0


def _test_send(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.messaging.manual import test_send

    sent, said = test_send(settings, args.campaign, args.to, args.locale or settings.default_locale)
    print(said, file=sys.stdout if sent else sys.stderr)
    return 0 if sent else 1


def _setup(settings: Settings, args: argparse.Namespace) -> int:
    from cli.setup import create_rate_limits, ensure_zombie_automation

    created = create_rate_limits(settings)
    print("\n".join(created) or "no providers.rate_limits configured: no rate limits to create")
    print(ensure_zombie_automation())
    return 0


def _web(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.store.migrate import upgrade
    from yunying.web.app import serve

    upgrade(settings.store_url)
    overrides = {"host": args.host, "port": args.port}
    web = settings.web.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update={"web": web})
    print(f"yunying web on http://{web.host}:{web.port} (public URL {settings.public_url})")
    serve(settings)
    return 0


def _runs(settings: Settings, args: argparse.Namespace) -> int:
    from cli.runs import recent_runs

    print(recent_runs(args.limit))
    return 0


def _payouts(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.rewards.report import ledger_report

    print(ledger_report(settings, args.campaign))
    return 0


def _rewards(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.rewards.commit import commit_campaign

    print(commit_campaign(settings, args.campaign))
    return 0


def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.lifecycle.business_dates import refuse_future
    from yunying.messaging.campaign import find_campaign
    from yunying.store.engine import create_store_engine, session_scope

    campaign = find_campaign(settings.campaign_dir, args.campaign)  # a typo is not "0 in flight"
    refuse_future(args.date, settings.zone, "--date")
    if (args.action == "resend") != bool(args.users):
        raise ConfigError("--users goes with `outbox resend` only, which needs at least one")
    engine = create_store_engine(settings.store_url)
    try:
        with session_scope(engine) as session:
            print(_OUTBOX_ACTIONS[args.action](session, settings, campaign, args))
    finally:
        engine.dispose()
    return 0


def _reclaim(
    session: Session, settings: Settings, campaign: Campaign, args: argparse.Namespace
) -> str:
    """Only after a confirmed crash: a live worker's in-flight messages would be reconciled
    with the provider and its own late records refused, but never sent twice by us."""
    from yunying.messaging.channels import channels_for
    from yunying.messaging.outbox import reclaim
    from yunying.messaging.send import blind_channels

    done = reclaim(session, campaign.name, args.date, blind_channels(channels_for(settings)))
    return (
        f"{campaign.name} {args.date}: {done['requeued']} in-flight message(s) requeued "
        "(never handed to the provider, or reconciled with it before resending), "
        f"{done['unknown']} marked unknown (handed to a provider that takes no idempotency "
        f"key: check its log; `yunying outbox unknown {campaign.name} --date {args.date}`"
        " lists them)"
    )


def _unknown(
    session: Session, settings: Settings, campaign: Campaign, args: argparse.Namespace
) -> str:
    from yunying.messaging.outbox import unknown_users

    users = unknown_users(session, campaign.name, args.date)
    if not users:
        return f"{campaign.name} {args.date}: no message with an unknown outcome"
    return (
        f"{campaign.name} {args.date}: {len(users)} message(s) with an unknown outcome, to"
        f" users {' '.join(users)}\nCheck the provider's log; for those it did not take, run:"
        f" yunying outbox resend {campaign.name} --date {args.date} --users USER..."
    )


def _resend(
    session: Session, settings: Settings, campaign: Campaign, args: argparse.Namespace
) -> str:
    from yunying.messaging.outbox import requeue_unknown

    requeued = requeue_unknown(session, campaign, args.date, args.users)
    if not requeued:
        return f"{campaign.name} {args.date}: none of the users named has an unknown message"
    missing = len(set(args.users)) - requeued
    return (
        f"{campaign.name} {args.date}: {requeued} message(s) queued again"
        + (f" ({missing} of the users named have none, or no longer consent)" if missing else "")
        + f"; to send them: yunying run reactivation --campaign {campaign.name}"
        f" --date {args.date} --resend-failed"
    )


_OUTBOX_ACTIONS = {"reclaim": _reclaim, "unknown": _unknown, "resend": _resend}


def _rejects(settings: Settings, args: argparse.Namespace) -> int:
    from cli.rejects import rejects

    print(rejects(settings, args.source))
    return 0


def _segments(settings: Settings, args: argparse.Namespace) -> int:
    from cli.segments import list_segments, segments_command

    if args.action == "list":
        listed, problems = list_segments(settings)
    else:
        listed, problems = segments_command(settings, args.action, args.name, args.date)
    if listed:
        print(listed)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def _review(settings: Settings, args: argparse.Namespace) -> int:
    from flows.common import default_business_date
    from yunying.lifecycle.business_dates import refuse_future
    from yunying.messaging.campaign import find_campaign
    from yunying.reports.review_page import markdown
    from yunying.reports.review_run import build_review, refuse_a_date_without_rows
    from yunying.store.engine import create_store_engine, session_scope

    for flag, day in (("--date", args.date), ("--as-of", args.as_of)):
        if day is not None:
            refuse_future(day, settings.zone, flag)
    engine = create_store_engine(settings.store_url)
    try:
        if args.date is not None:
            name = find_campaign(settings.campaign_dir, args.campaign).name
            with session_scope(engine) as session:
                refuse_a_date_without_rows(session, name, args.date)
        as_of = args.as_of or default_business_date(settings)
        built = build_review(settings, engine, args.campaign, as_of, args.date)
    finally:
        engine.dispose()
    print(markdown(built.page))
    print(f"page: {built.path}")
    return 0


def _unsubscribe(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.messaging.manual import unsubscribe

    print(unsubscribe(settings, args.token))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
