"""Kaggle's Douban movie short comments (`DMSC.csv`, dataset utmhikari/doubanmovieshortcomments).

Header `ID,Movie_Name_EN,Movie_Name_CN,Crawl_Date,Number,Username,Date,Star,Comment,Like`; comments hold
commas, quotes and newlines, so the csv module parses it and errors name the line where a record starts.
user = Username, item = Movie_Name_EN, time = Date (YYYY-MM-DD, so same-day ratings keep file order).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from dnsrec.data.formats._text import TimeColumn, TokenColumn, Where, decode, read_bytes
from dnsrec.data.raw import RawInteractions
from dnsrec.errors import DataError

USER, ITEM, TIME = "Username", "Movie_Name_EN", "Date"


def parse_dmsc_csv(data: bytes, source: str) -> RawInteractions:
    reader = csv.reader(io.StringIO(decode(data, source, "utf-8-sig"), newline=""), strict=True)
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in (USER, ITEM, TIME) if name not in header]
        if missing:
            raise DataError(f"{source} line 1: expected a header with {USER}, {ITEM}, {TIME}; got {header}")
        u, i, t = (header.index(name) for name in (USER, ITEM, TIME))
        users, items, times, starts = [], [], [], []
        start = reader.line_num + 1
        for row in reader:
            if row:  # csv yields [] for a blank line
                if len(row) != len(header):
                    raise DataError(
                        f"{source} line {start}: expected {len(header)} comma-separated fields, "
                        f"got {len(row)} (expected: {','.join(header)})"
                    )
                users.append(row[u])
                items.append(row[i])
                times.append(row[t])
                starts.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{source} line {reader.line_num}: {e}") from e
    where = Where(source, np.array(starts, dtype=np.int64))
    user, item, time = TokenColumn(USER), TokenColumn(ITEM), TimeColumn(TIME, "D", "2017-01-31")
    for column, values in ((user, users), (item, items), (time, times)):
        column.add(values, where)
    return RawInteractions(user.result(), item.result(), time.result(), source)


def read_dmsc_csv(path: Path) -> RawInteractions:
    return parse_dmsc_csv(read_bytes(path), str(path))
