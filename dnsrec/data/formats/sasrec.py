"""The SASRec/BERT4Rec preprocessed sequence file: one `user item` pair per line, each user's items already
in chronological order. There are no timestamps: the file order is the time order."""

from __future__ import annotations

from pathlib import Path

from dnsrec.data.formats._text import TokenColumn, decode, read_bytes, read_columns
from dnsrec.data.raw import RawInteractions


def parse_sasrec_txt(data: bytes, source: str) -> RawInteractions:
    user, item = TokenColumn("user"), TokenColumn("item")
    read_columns(decode(data, source, "utf-8-sig"), source, None, 2, "user item", {0: user, 1: item})
    return RawInteractions(user.result(), item.result(), None, source)


def read_sasrec_txt(path: Path) -> RawInteractions:
    """`ml-1m.txt` or `ml-1m.txt.gz`."""
    return parse_sasrec_txt(read_bytes(path), str(path))
