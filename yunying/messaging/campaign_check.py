"""A campaign's references, checked when it is loaded: every template it may send (base and
live variants) exists for every channel, and the segments its audience names exist.

Preview, dry run and run all load a campaign through `load_checked`, so a misspelt template or
segment stops each of them, naming the file and the field, before anything is sent.
"""

from __future__ import annotations

from pathlib import Path

from yunying.config import Settings
from yunying.errors import ConfigError
from yunying.messaging.campaign import Campaign, find_campaign
from yunying.messaging.render import missing_files
from yunying.segments.definition import SegmentLibrary
from yunying.templates import TEMPLATES


def load_checked(settings: Settings, name: str) -> Campaign:
    campaign = find_campaign(settings.campaign_dir, name)
    check_references(campaign, settings.campaign_dir / f"{name}.toml", settings)
    return campaign


def check_references(campaign: Campaign, path: Path, settings: Settings) -> None:
    root = settings.template_dir or TEMPLATES
    for field, template in _templates(campaign):
        folder = root / "messages" / template
        if not folder.is_dir():
            known = sorted(p.name for p in (root / "messages").glob("*") if p.is_dir())
            raise ConfigError(
                f"campaign file {path}: field {field!r}: no template {template!r} in "
                f"{root / 'messages'} (there: {', '.join(known) or 'none'})"
            )
        for channel in campaign.channels:
            missing = missing_files(template, channel, root)
            if missing:
                raise ConfigError(
                    f"campaign file {path}: field {field!r}: template {template!r} has no "
                    f"{channel} message: {root / missing[0]} (or its zh-CN one) is missing"
                )
    library = SegmentLibrary(settings.segment_dir)
    try:
        audience = campaign.audience_segment(library)
        if audience is not None:
            library.check(audience)
    except ConfigError as exc:
        segments = ", ".join(library.names()) or "none"
        raise ConfigError(
            f"campaign file {path}: field 'audience': {exc} (segments in "
            f"{settings.segment_dir}: {segments})"
        ) from None


def _templates(campaign: Campaign) -> list[tuple[str, str]]:
    """(field, template) of every template a send or a preview may render."""
    found = [("template", campaign.template)]
    found += [
        (f"variants.{i}.template", variant.template)
        for i, variant in enumerate(campaign.variants)
        if not variant.stopped
    ]
    return found
