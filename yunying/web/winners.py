"""The public winners pages (公示), served from the store's append-only publications, so the
public sees what was published wherever the payout ran.

    GET /rewards/<campaign>/                       the latest winners page, as published
    GET /rewards/<campaign>/winners.html           the same
    GET /rewards/<campaign>/winners.v<n>.html      version n, kept after any correction
    GET /rewards/<campaign>/commitment.json        the latest commitment (then the reveal)
    GET /rewards/<campaign>/commitment.v<n>.json   version n
    GET /rewards/<campaign>/versions.json          every version: kind, number, date, digest

The names are the files' under `var/rewards/<campaign>/` (yunying/rewards/publish.py), so the
relative links a published page carries to its earlier versions work here unchanged, and
`python -m yunying.rewards.verify` runs on the files as downloaded. Bodies are the stored
text byte for byte; the pages hold masked ids and public ids only. Before the winners are
published, the campaign's page lists its commitments; a campaign with nothing published,
and a version that does not exist, answer 404.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from yunying.rewards.publish import SUFFIX, Kind, latest_publication, publications
from yunying.store.models import RewardPublication
from yunying.web.context import Web

PUBLISHED_FILE = re.compile(r"(winners|commitment)(?:\.v([1-9][0-9]{0,8}))?\.(html|json)")
MAX_CAMPAIGN = 100  # reward_publications.campaign is a String(100)
MEDIA = {"html": "text/html; charset=utf-8", "json": "application/json"}
# A published page is self-contained (it is also a file and a post to the company's site),
# so its styles are inline: allow inline styles, still no script, frame, form or base.
PUBLISHED_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# A numbered version never changes (append-only); the latest may, at the next correction.
VERSION_CACHE = "public, max-age=86400"
LATEST_CACHE = "public, max-age=60"


@dataclass(frozen=True)
class Version:
    kind: str
    version: int
    published_at: str
    digest: str

    @property
    def file(self) -> str:
        return f"{self.kind}.v{self.version}.{SUFFIX[self.kind]}"


def _version(row: RewardPublication) -> Version:
    return Version(row.kind, row.version, f"{row.published_at.isoformat()}Z", row.digest)


def _content(session: Session, campaign: str, kind: str, version: int | None) -> str | None:
    if version is None:
        row = latest_publication(session, campaign, _kind(kind))
    else:
        row = session.get(RewardPublication, (campaign, kind, version))
    return None if row is None else row.content


def _kind(kind: str) -> Kind:
    return "winners" if kind == "winners" else "commitment"


def _versions(session: Session, campaign: str) -> list[Version]:
    return [_version(row) for row in publications(session, campaign)]


def _published(content: str, extension: str, numbered: bool) -> Response:
    return Response(
        content.encode("utf-8"),
        media_type=MEDIA[extension],
        headers={
            "content-security-policy": PUBLISHED_CSP,
            "cache-control": VERSION_CACHE if numbered else LATEST_CACHE,
        },
    )


def _not_found(web: Web) -> Response:
    # The unknown name is not echoed back: nothing a link-maker can inject into our page.
    return HTMLResponse(web.render("rewards.html", commitments=[]), status_code=404)


async def latest_page(web: Web, request: Request) -> Response:
    """The latest winners page; before it exists, the campaign's commitments."""
    campaign = request.path_params["campaign"]
    if len(campaign) > MAX_CAMPAIGN:
        return _not_found(web)

    def look(session: Session) -> tuple[str | None, list[Version]]:
        page = _content(session, campaign, "winners", None)
        return page, ([] if page is not None else _versions(session, campaign))

    page, versions = await web.in_store(look)
    if page is not None:
        return _published(page, "html", numbered=False)
    if not versions:
        return _not_found(web)
    commitments = [v for v in versions if v.kind == "commitment"]
    return HTMLResponse(
        web.render("rewards.html", commitments=commitments),
        headers={"cache-control": LATEST_CACHE},
    )


async def published_file(web: Web, request: Request) -> Response:
    """One published file by its name: the latest of a kind, or a numbered version."""
    campaign = request.path_params["campaign"]
    found = PUBLISHED_FILE.fullmatch(request.path_params["name"])
    if found is None or len(campaign) > MAX_CAMPAIGN:
        return _not_found(web)
    kind, number, extension = found.groups()
    if SUFFIX[kind] != extension:
        return _not_found(web)
    version = int(number) if number else None
    content = await web.in_store(lambda session: _content(session, campaign, kind, version))
    if content is None:
        return _not_found(web)
    return _published(content, extension, numbered=version is not None)


async def versions_index(web: Web, request: Request) -> Response:
    """Every published version with its file name, for a script that fetches them all."""
    campaign = request.path_params["campaign"]
    if len(campaign) > MAX_CAMPAIGN:
        return _not_found(web)
    versions = await web.in_store(lambda session: _versions(session, campaign))
    if not versions:
        return _not_found(web)
    body = [
        {
            "kind": v.kind,
            "version": v.version,
            "published_at": v.published_at,
            "digest": v.digest,
            "file": v.file,
        }
        for v in versions
    ]
    return Response(
        json.dumps({"campaign": campaign, "versions": body}, indent=1, ensure_ascii=False),
        media_type="application/json",
        headers={"cache-control": LATEST_CACHE},
    )
