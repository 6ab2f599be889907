"""RecBole atomic files: tab-separated, a `name:type` header (e.g. `user_id:token  item_id:token
rating:float  timestamp:float`); columns are found by name, `token_seq` values are space-separated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dnsrec.data.formats._text import (
    Column,
    FloatColumn,
    TokenColumn,
    Where,
    decode,
    read_bytes,
    read_columns,
)
from dnsrec.data.raw import RawInteractions, RawItemFeatures
from dnsrec.errors import DataError


@dataclass(frozen=True)
class _Table:
    source: str
    header: str
    names: list[str]  # the part of each header entry before ':'
    body: str  # everything after the header line

    @classmethod
    def parse(cls, data: bytes, source: str) -> _Table:
        header, _, body = decode(data, source, "utf-8-sig").replace("\r\n", "\n").partition("\n")
        if not header.strip():
            raise DataError(f"{source} line 1: expected a header of tab-separated name:type fields")
        return cls(source, header, [entry.split(":")[0].strip() for entry in header.split("\t")], body)

    def need(self, *names: str) -> None:
        missing = [name for name in names if name not in self.names]
        if missing:
            fields = f"{' or '.join(missing)} field (fields: {', '.join(self.names)})"
            raise DataError(f"{self.source}: the header has no {fields}")

    def read(self, columns: dict[str, Column]) -> None:
        by_index = {self.names.index(name): column for name, column in columns.items()}
        what = self.header.expandtabs(1)
        read_columns(self.body, self.source, "\t", len(self.names), what, by_index, first=2)


class _Strings:
    """A column kept as plain strings (token_seq values)."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, values: list[str], where: Where) -> None:
        self.values.extend(values)


def parse_inter(data: bytes, source: str) -> RawInteractions:
    """A `.inter` file; without a timestamp field the file order is taken as the time order."""
    table = _Table.parse(data, source)
    table.need("user_id", "item_id")
    user, item, stamp = TokenColumn("user_id"), TokenColumn("item_id"), FloatColumn("timestamp")
    timed = "timestamp" in table.names
    table.read({"user_id": user, "item_id": item} | ({"timestamp": stamp} if timed else {}))
    return RawInteractions(user.result(), item.result(), stamp.result() if timed else None, source)


def parse_item(data: bytes, source: str, fields: tuple[str, ...] = ("genre", "class")) -> RawItemFeatures:
    """An `.item` file's first present field of `fields` (a token_seq) per item_id, named 'genre'.

    RecBole's ML-1M calls the genres `genre`, its ML-100K `class`; both become the same feature.
    """
    table = _Table.parse(data, source)
    table.need("item_id")
    present = [name for name in fields if name in table.names]
    if not present:
        raise DataError(f"{source}: the header has none of the fields {', '.join(fields)}")
    item, values = TokenColumn("item_id"), _Strings()
    table.read({"item_id": item, present[0]: values})
    ids = item.result().values().tolist()
    genres = (tuple(value.split()) for value in values.values)
    return RawItemFeatures("genre", dict(zip(ids, genres, strict=True)), source)


def read_inter(path: Path) -> RawInteractions:
    return parse_inter(read_bytes(path), str(path))


def read_item(path: Path) -> RawItemFeatures:
    return parse_item(read_bytes(path), str(path))
