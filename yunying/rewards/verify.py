"""Re-run a published lottery and check it against what was published:

    python -m yunying.rewards.verify var/rewards/<campaign>

The folder holds the first published commitment (`commitment.v1.json`, the seed's hash as
published at the campaign's start) and the latest (`commitment.json`, with the revealed seed,
the participants' public ids and the drawn ids). Exit status 0 when everything matches.
Needs only the standard library, so anyone can run it on the published files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def problems(first: dict[str, Any], latest: dict[str, Any]) -> list[str]:
    """What does not match; empty when the published draw is what the seed gives."""
    found = []
    if _moment(first["committed_at"]) >= _moment(first["window_end"]):
        found.append("the seed was committed after the window closed")
    if latest.get("sha256_of_seed") != first["sha256_of_seed"]:
        found.append("the latest commitment names another hash than the first")
    seed = latest.get("seed")
    if seed is None:
        return [*found, "the seed is not revealed yet"]
    if hashlib.sha256(seed.encode()).hexdigest() != first["sha256_of_seed"]:
        found.append("the revealed seed does not hash to the published commitment")
    salt = hashlib.sha256(f"public-id-salt:{seed}".encode()).hexdigest()[:32]
    if latest.get("salt") != salt:
        found.append("the salt is not the one the seed gives")
    pool = sorted(latest["participants"])
    drawn = random.Random(seed).sample(pool, min(int(latest["winners"]), len(pool)))
    if drawn != latest["drawn"]:
        found.append("re-running the draw gives other winners than the published ones")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m yunying.rewards.verify FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    try:
        first = json.loads((folder / "commitment.v1.json").read_text(encoding="utf-8"))
        latest = json.loads((folder / "commitment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read the published commitment in {folder}: {exc}", file=sys.stderr)
        return 2
    found = problems(first, latest)
    for problem in found:
        print(f"MISMATCH: {problem}")
    if found:
        return 1
    print(
        f"verified {latest['campaign']}: the seed matches the commitment published"
        f" {first['committed_at']} (window closed {first['window_end']}); drawing"
        f" {len(latest['drawn'])} of {len(latest['participants'])} participants gives the"
        " published winners in order"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
