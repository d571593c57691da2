"""`yunying`: the command line for what people do by hand.

yunying demo                     build the synthetic company and run the nightly chain
yunying db upgrade               create or migrate the store
yunying run FLOW [--date D]      run nightly | pull | reactivation | report locally
yunying preview CAMPAIGN --user U   render a campaign's message for one user
yunying test-send CAMPAIGN --to ADDRESS   send it to a staff address
yunying unsubscribe TOKEN        apply an unsubscribe link's token
yunying segments show NAME [--date D]   a segment's size, a few masked members and its SQL
yunying review CAMPAIGN [--date D]      the campaign's review (复盘)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence

from cli.environment import prepare_prefect
from yunying.config import Settings, load_settings
from yunying.errors import YunyingError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        prepare_prefect(settings.home)
        return int(args.handler(settings, args) or 0)
    except YunyingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yunying", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="build the synthetic company and run the nightly chain")
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--keep", action="store_true", help="keep the existing store")
    demo.set_defaults(handler=_demo)

    db = commands.add_parser("db", help="the store's schema")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(handler=_db)

    run = commands.add_parser("run", help="run a flow locally")
    run.add_argument("flow", choices=["nightly", "pull", "reactivation", "report"])
    run.add_argument("--date", type=dt.date.fromisoformat, help="business date, default yesterday")
    run.add_argument("--campaign", default="winback")
    run.add_argument("--resend-failed", action="store_true")
    run.add_argument("--force", action="store_true", help="send the report again")
    run.set_defaults(handler=_run)

    preview = commands.add_parser("preview", help="render a campaign message for one user")
    preview.add_argument("campaign")
    preview.add_argument("--user", required=True)
    preview.add_argument("--channel")
    preview.set_defaults(handler=_preview)

    test_send = commands.add_parser("test-send", help="send a campaign message to a staff address")
    test_send.add_argument("campaign")
    test_send.add_argument("--to", required=True)
    test_send.add_argument("--locale", default="zh-CN")
    test_send.set_defaults(handler=_test_send)

    setup = commands.add_parser("setup", help="create the providers' rate limits in Prefect")
    setup.set_defaults(handler=_setup)

    runs = commands.add_parser("runs", help="recent flow runs with state and duration")
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(handler=_runs)

    payouts = commands.add_parser("payouts", help="a reward campaign's payout ledger")
    payouts.add_argument("action", choices=["show"])
    payouts.add_argument("campaign")
    payouts.set_defaults(handler=_payouts)

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


def _db(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.store.migrate import upgrade

    upgrade(settings.store_url)
    print(f"store at {settings.store_url} is up to date")
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.flow == "nightly":
        from flows.nightly import nightly

        print(nightly(business_date=args.date, campaign=args.campaign))
    elif args.flow == "pull":
        from flows.pull import pull_sources

        print(pull_sources())
    elif args.flow == "reactivation":
        from flows.reactivation import reactivation

        print(
            reactivation(
                campaign=args.campaign, business_date=args.date, resend_failed=args.resend_failed
            )
        )
    else:
        from flows.report import report

        print(report(business_date=args.date, force=args.force))
    return 0


def _preview(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.messaging.manual import preview

    print(preview(settings, args.campaign, args.user, args.channel))
    return 0


def _test_send(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.messaging.manual import test_send

    print(test_send(settings, args.campaign, args.to, args.locale))
    return 0


def _setup(settings: Settings, args: argparse.Namespace) -> int:
    from cli.setup import create_rate_limits

    created = create_rate_limits(settings)
    print("\n".join(created) or "no providers.rate_limits configured: nothing to create")
    return 0


def _runs(settings: Settings, args: argparse.Namespace) -> int:
    from cli.runs import recent_runs

    print(recent_runs(args.limit))
    return 0


def _payouts(settings: Settings, args: argparse.Namespace) -> int:
    from yunying.rewards.report import ledger_report

    print(ledger_report(settings, args.campaign))
    return 0


def _segments(settings: Settings, args: argparse.Namespace) -> int:
    from cli.segments import segments_command

    print(segments_command(settings, args.action, args.name, args.date))
    return 0


def _review(settings: Settings, args: argparse.Namespace) -> int:
    from flows.common import default_business_date
    from yunying.reports.review_page import markdown
    from yunying.reports.review_run import build_review
    from yunying.store.engine import create_store_engine

    engine = create_store_engine(settings.store_url)
    try:
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
