"""python -m benchmarks NAME [--users N] [options: --help]"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from benchmarks import campaigns, lifecycle, nightly, pull, report, segments, send, web

BENCHMARKS = {
    "campaigns": campaigns.run,
    "lifecycle": lifecycle.run,
    "nightly": nightly.run,
    "pull": pull.run,
    "report": report.run,
    "segments": segments.run,
    "send": send.run,
    "web": web.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--events-per-user",
        type=int,
        default=None,
        help="lifecycle, report: events per user (default 50: 1M users, 50M events)",
    )
    parser.add_argument(
        "--store",
        choices=("both", "sqlite", "postgresql"),
        default="both",
        help="lifecycle, report, segments, nightly: which store to measure",
    )
    parser.add_argument(
        "--reuse-store",
        action="store_true",
        help="nightly: reuse (and keep) the filled PostgreSQL store of an earlier run",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="pull: runs of ours and of each baseline, in turn"
    )
    args = parser.parse_args()
    options: dict[str, Any] = (
        {"events_per_user": args.events_per_user} if args.events_per_user else {}
    )
    if args.name in ("lifecycle", "report", "segments"):
        options["store"] = args.store
    if args.name == "nightly":
        options = {"store": args.store, "reuse_store": args.reuse_store}
    if args.name == "pull":
        options["rounds"] = args.rounds
    figures = BENCHMARKS[args.name](users=args.users, seed=args.seed, **options)
    for name, figure in figures.items():
        if isinstance(figure, dict) and "value" in figure:
            print(
                f"{name:28} {figure['value']!s:>14}  baseline {figure['baseline']!s:>14}  "
                f"ratio {figure['ratio']}",
                file=sys.stderr,
            )
        elif name != "benchmark":
            print(f"{name:28} {figure}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
