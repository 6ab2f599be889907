"""Shared plumbing for the text readers: read (plain, .gz, zip member), split into lines and fields fast,
and turn every problem into a `DataError` that names the file and the 1-based line.

Parsing is bulk: one `str.split` per chunk of lines, C-level `map`s and numpy conversions per column;
per-line Python work only happens to locate a bad line once a bulk check has failed. Large files (the full
Gowalla has 6.4M lines) are handled in chunks so the intermediate Python strings stay bounded.
"""

from __future__ import annotations

import gzip
import itertools
import math
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path
from typing import Protocol

import numpy as np

from dnsrec.data.raw import Tokens
from dnsrec.errors import DataError

CHUNK_CHARS = 1 << 25  # ~32 MiB of text per chunk
_SEPARATOR_NAMES = {
    "\t": "tab-separated",
    "::": "'::'-separated",
    "|": "'|'-separated",
    ",": "comma-separated",
}


def read_bytes(path: Path) -> bytes:
    """The whole file, gunzipped when its name ends in .gz."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a truncated .gz an EOFError
        raise DataError(f"{path}: cannot read ({e})") from e


def read_zip_member(archive: zipfile.ZipFile, path: Path, member: str) -> bytes:
    try:
        return archive.read(member)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read member {member} ({e})") from e


def decode(data: bytes, source: str, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{source} line {line}: not valid {encoding} text") from e


@dataclass(frozen=True)
class Where:
    """Maps a record's index to its 1-based line in `source`, so every check can name the bad line."""

    source: str
    numbers: np.ndarray | None = None  # int64 line of each record, when they are not consecutive
    first: int = 1  # line of record 0, when they are

    def line(self, i: int) -> int:
        return int(self.numbers[i]) if self.numbers is not None else self.first + i

    def error(self, i: int, message: str) -> DataError:
        return DataError(f"{self.source} line {self.line(i)}: {message}")


def split_lines(text: str, source: str, first: int = 1) -> tuple[list[str], Where]:
    """Non-blank lines (CRLF tolerated; blank lines skipped but still counted); `first` = line of text[0]."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").removesuffix("\r")  # a chunk may end inside a CRLF
    lines = text.split("\n")
    if "" not in lines:
        return lines, Where(source, None, first)
    numbers = np.flatnonzero(np.fromiter(map(bool, lines), bool, len(lines))) + first
    return [line for line in lines if line], Where(source, numbers)


def chunks(
    text: str,
    source: str,
    first: int = 1,
    size: int | None = None,
) -> Iterator[tuple[list[str], Where]]:
    """`split_lines` over pieces of about `size` (default CHUNK_CHARS) characters cut at line ends."""
    size = size or CHUNK_CHARS
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end
        piece = text[start:end]
        yield split_lines(piece, source, first)
        first += piece.count("\n") + 1
        start = end + 1


def split_fields(
    lines: list[str],
    where: Where,
    sep: str | None,
    n_fields: int,
    what: str,
) -> list[list[str]]:
    """Column j of the result is field j of every line; each line must hold exactly `n_fields` fields.

    `sep` None splits on runs of whitespace. `what` names the expected fields for the error message.
    """
    if sep is None:
        counts = np.fromiter(map(len, map(str.split, lines)), np.int64, len(lines))
    else:
        counts = np.fromiter(map(methodcaller("count", sep), lines), np.int64, len(lines)) + 1
    bad = np.flatnonzero(counts != n_fields)
    if len(bad):
        i = int(bad[0])
        kind = _SEPARATOR_NAMES.get(sep, f"{sep!r}-separated") if sep else "whitespace-separated"
        raise where.error(i, f"expected {n_fields} {kind} fields, got {counts[i]} (expected: {what})")
    if sep is None:
        fields = " ".join(lines).split()
    else:
        fields = sep.join(lines).split(sep)
        if len(fields) != n_fields * len(lines):  # a separator formed across two lines ("a:" + "::" + ":b")
            fields = [field for line in lines for field in line.split(sep)]
    return [fields[j::n_fields] for j in range(n_fields)]


class Column(Protocol):
    """Collects one field of every line, chunk by chunk, checking it as it goes."""

    def add(self, values: list[str], where: Where) -> None: ...


def read_columns(
    text: str,
    source: str,
    sep: str | None,
    n_fields: int,
    what: str,
    columns: Mapping[int, Column],
    first: int = 1,
) -> None:
    """Feed field j of every line of `text` to columns[j]; fields without a column are only counted."""
    for lines, where in chunks(text, source, first):
        fields = split_fields(lines, where, sep, n_fields, what)
        for j, column in columns.items():
            column.add(fields[j], where)


class TokenColumn:
    """Ids, dictionary-encoded as they stream in; an empty id is a malformed line."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._first_row: dict[str, int] = {}  # id -> row of its first appearance
        self._rows: list[np.ndarray] = []
        self._n = 0

    def add(self, values: list[str], where: Where) -> None:
        if "" in values:
            raise where.error(values.index(""), f"empty {self.what}")
        # setdefault keeps the first row number it saw for each id: C-level, no Python loop
        first_rows = map(self._first_row.setdefault, values, itertools.count(self._n))
        self._rows.append(np.fromiter(first_rows, np.int64, len(values)))
        self._n += len(values)

    def result(self) -> Tokens:
        firsts = np.fromiter(self._first_row.values(), np.int64, len(self._first_row))  # increasing
        codes = np.searchsorted(firsts, _concat(self._rows, np.int64))
        return Tokens(codes.astype(np.int64), np.array(list(self._first_row), dtype=str))


class FloatColumn:
    def __init__(self, what: str) -> None:
        self.what = what
        self._parts: list[np.ndarray] = []

    def add(self, values: list[str], where: Where) -> None:
        self._parts.append(floats(values, where, self.what))

    def result(self) -> np.ndarray:
        return _concat(self._parts, np.float64)


class TimeColumn(FloatColumn):
    """ISO-8601 dates or times as float64 seconds since the epoch."""

    def __init__(self, what: str, unit: str, example: str) -> None:
        super().__init__(what)
        self.unit, self.example = unit, example

    def add(self, values: list[str], where: Where) -> None:
        self._parts.append(datetimes(values, where, self.what, self.unit, self.example))


def floats(values: list[str], where: Where, what: str) -> np.ndarray:
    """float64 (n,) of finite numbers, or a DataError at the first value that is not one."""
    try:
        result = np.array(values, dtype=np.float64)
        if np.isfinite(result).all():
            return result
    except ValueError:
        pass
    return _first_bad(values, where, what, "a number", lambda s: math.isfinite(float(s)))


def datetimes(values: list[str], where: Where, what: str, unit: str, example: str) -> np.ndarray:
    """ISO-8601 dates or times (a trailing Z = UTC is allowed) as float64 seconds since the epoch."""

    def parse(strings: list[str]) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns about time zones it ignores: malformed here
            stamps = np.strings.rstrip(np.array(strings, dtype=str), "Z").astype(f"datetime64[{unit}]")
        if np.isnat(stamps).any():
            raise ValueError("not a time")
        return stamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)

    try:
        return parse(values)
    except (ValueError, UserWarning):
        expected = f"an ISO-8601 time like {example}"
        return _first_bad(values, where, what, expected, lambda s: bool(len(parse([s]))))


def _first_bad(
    values: list[str],
    where: Where,
    what: str,
    expected: str,
    ok: Callable[[str], bool],
) -> np.ndarray:
    for i, value in enumerate(values):
        try:
            good = ok(value)
        except (ValueError, UserWarning):
            good = False
        if not good:
            raise where.error(i, f"expected {expected} for {what}, got {value!r}")
    raise AssertionError("bulk conversion failed but every value converts")  # pragma: no cover


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
