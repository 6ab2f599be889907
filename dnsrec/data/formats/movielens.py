"""MovieLens in its official forms, read in place (a zip is never extracted).

ML-1M: `ratings.dat` (`UserID::MovieID::Rating::Timestamp`) and `movies.dat` (`MovieID::Title::Genres`,
genres `|`-separated), both latin-1. ML-100K: `u.data` (tab-separated user, item, rating, timestamp),
`u.item` (`|`-separated, the last 19 columns are 0/1 genre flags) and `u.genre` (`name|index`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from dnsrec.data.formats._text import (
    FloatColumn,
    TokenColumn,
    decode,
    floats,
    read_bytes,
    read_columns,
    read_zip_member,
    split_fields,
    split_lines,
)
from dnsrec.data.raw import RawInteractions, RawItemFeatures
from dnsrec.errors import DataError

# The genre order of ML-100K's u.genre, used when a u.item comes without one.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def parse_ratings_dat(data: bytes, source: str) -> RawInteractions:
    user, item, stamp = TokenColumn("UserID"), TokenColumn("MovieID"), FloatColumn("Timestamp")
    what = "UserID::MovieID::Rating::Timestamp"
    read_columns(decode(data, source, "latin-1"), source, "::", 4, what, {0: user, 1: item, 3: stamp})
    return RawInteractions(user.result(), item.result(), stamp.result(), source)


def parse_movies_dat(data: bytes, source: str) -> RawItemFeatures:
    """Genres per MovieID; the title is whatever lies between the first and the last '::'."""
    lines, where = split_lines(decode(data, source, "latin-1"), source)
    genres: dict[str, tuple[str, ...]] = {}
    for i, line in enumerate(lines):
        fields = line.split("::")
        if len(fields) < 3 or not fields[0]:
            raise where.error(
                i, f"expected 3 '::'-separated fields, got {len(fields)} (expected: MovieID::Title::Genres)"
            )
        genres[fields[0]] = tuple(g for g in fields[-1].split("|") if g)
    return RawItemFeatures("genre", genres, source)


def parse_u_data(data: bytes, source: str) -> RawInteractions:
    user, item, stamp = TokenColumn("user id"), TokenColumn("item id"), FloatColumn("timestamp")
    what = "user id, item id, rating, timestamp"
    read_columns(decode(data, source, "latin-1"), source, "\t", 4, what, {0: user, 1: item, 3: stamp})
    return RawInteractions(user.result(), item.result(), stamp.result(), source)


def parse_u_genre(data: bytes, source: str) -> tuple[str, ...]:
    """Genre names in flag order (`name|index` lines)."""
    lines, where = split_lines(decode(data, source, "latin-1"), source)
    names, index = split_fields(lines, where, "|", 2, "genre name|index")
    position = floats(index, where, "genre index")
    if sorted(position.tolist()) != list(range(len(names))):
        raise DataError(f"{source}: genre indices must be 0..{len(names) - 1}, got {index}")
    return tuple(name for _, name in sorted(zip(position.tolist(), names, strict=True)))


def parse_u_item(data: bytes, source: str, genres: tuple[str, ...] = ML100K_GENRES) -> RawItemFeatures:
    """Genres per item id from the trailing 0/1 flag columns."""
    lines, where = split_lines(decode(data, source, "latin-1"), source)
    n_fields = 5 + len(genres)
    values: dict[str, tuple[str, ...]] = {}
    for i, line in enumerate(lines):
        fields = line.split("|")
        if len(fields) != n_fields or not fields[0]:
            raise where.error(
                i,
                f"expected {n_fields} '|'-separated fields, got {len(fields)} (expected: movie id|title|"
                f"release date|video release date|IMDb URL|{len(genres)} genre flags)",
            )
        flags = fields[5:]
        if not set(flags) <= {"0", "1"}:
            raise where.error(i, f"expected {len(genres)} genre flags of 0 or 1, got {'|'.join(flags)!r}")
        values[fields[0]] = tuple(g for g, flag in zip(genres, flags, strict=True) if flag == "1")
    return RawItemFeatures("genre", values, source)


def read_ratings_dat(path: Path) -> RawInteractions:
    return parse_ratings_dat(read_bytes(path), str(path))


def read_movies_dat(path: Path) -> RawItemFeatures:
    return parse_movies_dat(read_bytes(path), str(path))


def read_u_data(path: Path) -> RawInteractions:
    return parse_u_data(read_bytes(path), str(path))


def read_u_item(path: Path, genre_path: Path | None = None) -> RawItemFeatures:
    """`u.item`, with names from `genre_path` (u.genre) when given, else the standard ML-100K list."""
    genres = ML100K_GENRES if genre_path is None else parse_u_genre(read_bytes(genre_path), str(genre_path))
    return parse_u_item(read_bytes(path), str(path), genres)


def read_movielens_zip(path: Path) -> tuple[RawInteractions, RawItemFeatures | None]:
    """An official `ml-1m.zip` or `ml-100k.zip`: ratings and genres read straight from the archive."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {PurePosixPath(n).name: n for n in sorted(archive.namelist(), key=len, reverse=True)}

            def member(name: str) -> tuple[bytes, str] | None:
                if name not in members:
                    return None
                return read_zip_member(archive, path, members[name]), f"{path}:{members[name]}"

            if (ratings := member("ratings.dat")) is not None:
                movies = member("movies.dat")
                return parse_ratings_dat(*ratings), None if movies is None else parse_movies_dat(*movies)
            if (u_data := member("u.data")) is not None:
                u_item, u_genre = member("u.item"), member("u.genre")
                genres = ML100K_GENRES if u_genre is None else parse_u_genre(*u_genre)
                return parse_u_data(*u_data), None if u_item is None else parse_u_item(*u_item, genres)
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable zip file ({e})") from e
    raise DataError(f"{path}: holds neither ratings.dat (ML-1M) nor u.data (ML-100K)")
