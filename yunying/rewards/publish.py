"""Publication (公示), append-only: the seed commitment at a campaign's start, then the winners
page and the revealed draw. Every version is kept in the store (`reward_publications`) and
as a file; a correction is a new, dated version and never overwrites an earlier one.

    var/rewards/<campaign>/commitment.v1.json   the seed's hash, published at the start
    var/rewards/<campaign>/commitment.v2.json   + the seed, the salt, participants, the draw
    var/rewards/<campaign>/winners.v1.html      the winners page as first published
    var/rewards/<campaign>/{commitment.json, winners.html}   copies of the latest version
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from yunying import templates
from yunying.http_client import request, with_retries
from yunying.rewards.approval import ApprovedPlan
from yunying.rewards.campaign import RewardCampaign
from yunying.rewards.commitment import commit_seed, commitment_notice, notice_digest, salt_of
from yunying.rewards.plan import mask
from yunying.store.models import RewardDraw, RewardLedgerEntry, RewardPublication

Kind = Literal["commitment", "winners"]
SUFFIX: dict[str, str] = {"commitment": "json", "winners": "html"}


def rule_text(campaign: RewardCampaign) -> str:
    rule = campaign.rule
    return {
        "min_actions": f"at least {rule.count} × {rule.event}",
        "streak": f"{rule.event} on {rule.days} consecutive days",
        "top_n": f"the top {rule.winners} by number of {rule.event}",
        "lottery": f"{rule.winners} drawn among those with at least {rule.count} × {rule.event}",
    }[rule.kind]


def publications(
    session: Session, campaign: str, kind: Kind | None = None
) -> list[RewardPublication]:
    """Every published version of a campaign, oldest first (for the web service too)."""
    query = select(RewardPublication).where(RewardPublication.campaign == campaign)
    if kind is not None:
        query = query.where(RewardPublication.kind == kind)
    return list(session.scalars(query.order_by(RewardPublication.kind, RewardPublication.version)))


def latest_publication(session: Session, campaign: str, kind: Kind) -> RewardPublication | None:
    return session.scalars(
        select(RewardPublication)
        .where(RewardPublication.campaign == campaign, RewardPublication.kind == kind)
        .order_by(RewardPublication.version.desc())
        .limit(1)
    ).first()


def publish_version(
    session: Session,
    campaign: str,
    kind: Kind,
    data: object,
    render: Callable[[int, dt.datetime], str],
    now: dt.datetime,
) -> RewardPublication | None:
    """Append a version when `data` differs from the latest one's; None when unchanged."""
    digest = notice_digest(data)
    latest = latest_publication(session, campaign, kind)
    if latest is not None and latest.digest == digest:
        return None
    version = 1 if latest is None else latest.version + 1
    row = RewardPublication(
        campaign=campaign,
        kind=kind,
        version=version,
        published_at=now,
        digest=digest,
        content=render(version, now),
    )
    session.add(row)
    session.flush()
    return row


def _json_document(data: dict[str, Any]) -> Callable[[int, dt.datetime], str]:
    def render(version: int, now: dt.datetime) -> str:
        dated = {**data, "version": version, "published_at": now.isoformat() + "Z"}
        return json.dumps(dated, indent=1, ensure_ascii=False)

    return render


def publish_commitment(
    session: Session, campaign: RewardCampaign, record: RewardDraw, now: dt.datetime
) -> RewardPublication | None:
    """Version 1 of commitment.json: the seed's hash, before the window closes."""
    notice = commitment_notice(campaign, record)
    return publish_version(
        session, campaign.name, "commitment", notice, _json_document(notice), now
    )


def commit(session: Session, campaign: RewardCampaign, now: dt.datetime) -> RewardDraw:
    """`yunying rewards commit`: choose the seed while the window is open and publish its
    hash (a second call keeps the first seed and publishes nothing new)."""
    record = commit_seed(session, campaign, now)
    publish_commitment(session, campaign, record, record.created_at)
    return record


def _statuses(session: Session, campaign: RewardCampaign) -> dict[str, str]:
    return {
        user_id: status
        for user_id, status in session.execute(
            select(RewardLedgerEntry.user_id, RewardLedgerEntry.status).where(
                RewardLedgerEntry.campaign == campaign.name,
                RewardLedgerEntry.reward == campaign.reward.kind,
            )
        )
    }


def _outcome(status: str | None, payable: bool) -> str:
    if not payable:
        return "not awarded (fraud screens)"
    return {
        "paid": "paid",
        "over_budget": "not paid: budget used up",
        "failed": "payment failed",
    }.get(status or "", "payment pending")


def publish_results(
    session: Session, campaign: RewardCampaign, approved: ApprovedPlan, now: dt.datetime
) -> list[RewardPublication]:
    """The winners page of the approved plan, and for a lottery the revealed draw; a new
    version only where something changed (a retried payout was paid, say)."""
    plan = approved.plan
    statuses = _statuses(session, campaign)
    payable = {e.user_id for e in approved.payable()}
    rows = [
        {
            "rank": e.rank,
            "masked": mask(e.user_id),
            "public_id": e.public_id,
            "amount": str(e.amount),
            "outcome": _outcome(statuses.get(e.user_id), e.user_id in payable),
        }
        for e in plan.entries
    ]
    published = []
    reveal = None
    if plan.commitment is not None:
        record = session.get(RewardDraw, campaign.name)
        if record is not None:
            reveal = {
                **commitment_notice(campaign, record),
                "seed": record.seed,
                "salt": salt_of(record.seed),
                "winners": campaign.rule.winners,
                "participants": plan.public_ids,
                "drawn": [row["public_id"] for row in rows],  # flagged ones too
            }
            made = publish_version(
                session, campaign.name, "commitment", reveal, _json_document(reveal), now
            )
            published += [made] if made else []
    earlier = publications(session, campaign.name, "winners")

    def page(version: int, when: dt.datetime) -> str:
        return winners_page(campaign, plan.eligible, rows, reveal, version, when, earlier)

    made = publish_version(session, campaign.name, "winners", [rows, reveal], page, now)
    return published + ([made] if made else [])


def winners_page(
    campaign: RewardCampaign,
    eligible: int,
    rows: list[dict[str, Any]],
    reveal: dict[str, Any] | None,
    version: int,
    published_at: dt.datetime,
    earlier: Sequence[RewardPublication],
) -> str:
    page = templates.rewards().get_template("winners.html")
    return page.render(
        campaign=campaign,
        eligible=eligible,
        rule_text=rule_text(campaign),
        amounts=", ".join(str(a) for a in campaign.reward.amounts),
        reveal=reveal,
        rows=rows,
        paid=sum(1 for row in rows if row["outcome"] == "paid"),
        version=version,
        published_at=published_at,
        earlier=[(p.version, p.published_at) for p in earlier],
    )


def write_files(folder: Path, rows: Sequence[RewardPublication]) -> list[Path]:
    """Each version as its own file, written once; `<kind>.<ext>` copies the latest."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    latest: dict[str, RewardPublication] = {}
    for row in rows:
        path = folder / f"{row.kind}.v{row.version}.{SUFFIX[row.kind]}"
        if not path.exists():
            path.write_text(row.content, encoding="utf-8")
            written.append(path)
        if row.kind not in latest or row.version > latest[row.kind].version:
            latest[row.kind] = row
    for kind, row in latest.items():
        (folder / f"{kind}.{SUFFIX[kind]}").write_text(row.content, encoding="utf-8")
    return written


def post_to_webhook(url: str, row: RewardPublication) -> None:
    """Send a new version to the company's site, keyed so a retry posts it once."""
    with httpx.Client(timeout=10) as client:
        with_retries(
            lambda: request(
                client,
                "POST",
                url,
                json={
                    "campaign": row.campaign,
                    "kind": row.kind,
                    "version": row.version,
                    "content": row.content,
                },
                headers={"Idempotency-Key": f"{row.kind}:{row.campaign}:v{row.version}"},
            )
        )
