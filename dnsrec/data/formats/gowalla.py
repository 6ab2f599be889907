"""SNAP Gowalla check-ins (`loc-gowalla_totalCheckins.txt`): `user \\t time \\t latitude \\t longitude \\t
location id`, time ISO-8601 UTC (`2010-10-19T23:55:27Z`). Each user's check-ins run NEWEST first, so the
reader says so (`newest_first`) and processing reverses them before the stable time sort."""

from __future__ import annotations

from pathlib import Path

from dnsrec.data.formats._text import TimeColumn, TokenColumn, decode, read_bytes, read_columns
from dnsrec.data.raw import RawInteractions


def parse_gowalla(data: bytes, source: str) -> RawInteractions:
    user, location = TokenColumn("user"), TokenColumn("location id")
    time = TimeColumn("check-in time", "s", "2010-10-19T23:55:27Z")
    what = "user, check-in time, latitude, longitude, location id"
    read_columns(decode(data, source, "utf-8"), source, "\t", 5, what, {0: user, 1: time, 4: location})
    return RawInteractions(user.result(), location.result(), time.result(), source, newest_first=True)


def read_gowalla(path: Path) -> RawInteractions:
    """`loc-gowalla_totalCheckins.txt(.gz)` or a subset in the same format."""
    return parse_gowalla(read_bytes(path), str(path))
