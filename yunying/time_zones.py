"""The IANA names that mean one place: an old alias (Asia/Katmandu, Asia/Calcutta, PRC,
US/Eastern) and the name that replaced it. Both kinds reach the store from companies' data,
and zoneinfo loads either without saying they are the same zone.

An alias is a link in the tz database whose name is no place of its own in `zone.tab`.
Links that are places (Europe/Oslo, which shares Europe/Berlin's rules since 1970) stay
apart: a segment on Oslo means Norway's users, not Germany's.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def _data() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Each alias's place name, and each place name's names (itself and its aliases)."""
    zoneinfo = files("tzdata").joinpath("zoneinfo")
    places = {
        line.split("\t")[2]
        for line in zoneinfo.joinpath("zone.tab").read_text().splitlines()
        if line and not line.startswith("#")
    }
    links = {}
    for line in zoneinfo.joinpath("tzdata.zi").read_text().splitlines():
        if line.startswith("L "):
            _, target, name = line.split()
            links[name] = target
    aliases = {}
    for name, target in links.items():
        if name in places:
            continue
        while target in links and target not in places:  # a link to a link
            target = links[target]
        aliases[name] = target
    names: dict[str, list[str]] = {}
    for alias, place in aliases.items():
        names.setdefault(place, [place]).append(alias)
    return aliases, {place: tuple(sorted(every)) for place, every in names.items()}


def place_name(zone: str) -> str:
    """The name of the place an alias stands for; any other name as it is."""
    return _data()[0].get(zone, zone)


def same_zone_names(zone: str) -> tuple[str, ...]:
    """Every name of `zone`'s place: its current name and the aliases of it."""
    place = place_name(zone)
    return _data()[1].get(place, (place,))
