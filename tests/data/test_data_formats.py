"""Every reader on the real files and on small files in the real format; malformed input names file + line."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dnsrec.data import formats
from dnsrec.data.formats import _text
from dnsrec.data.raw import RawInteractions
from dnsrec.errors import DataError

Write = Callable[..., Path]  # the `write` fixture (conftest.py)

# ---------------------------------------------------------------- the real files


def test_recbole_ml100k(shared: Path) -> None:
    raw = formats.read_inter(shared / "ml-100k" / "ml-100k.inter")
    assert len(raw) == 100_000 and len(raw.users.vocabulary) == 943 and len(raw.items.vocabulary) == 1682
    assert (
        raw.users.values()[0],
        raw.items.values()[0],
        raw.times[0] if raw.times is not None else None,
    ) == (
        "196",
        "242",
        881250949,
    )
    genres = formats.read_item(shared / "ml-100k" / "ml-100k.item")
    assert len(genres.values) == 1682 and genres.values["1"] == ("Animation", "Children's", "Comedy")


def test_sasrec_ml1m_and_its_item_file(shared: Path) -> None:
    raw = formats.read_sasrec_txt(shared / "ml-1m" / "ml-1m.txt.gz")
    assert raw.times is None and len(raw) == 1_000_209
    assert len(raw.users.vocabulary) == 6040 and len(raw.items.vocabulary) == 3706
    assert raw.users.values()[:2].tolist() == ["1", "1"] and raw.items.values()[:2].tolist() == [
        "3186",
        "1721",
    ]
    genres = formats.read_item(shared / "ml-1m" / "ml-1m.item")
    assert len(genres.values) == 3883 and genres.values["2"] == ("Adventure", "Children's", "Fantasy")


def test_ratings_dat_real(shared: Path) -> None:
    raw = formats.read_ratings_dat(shared / "ml-1m" / "ratings-users-1-2999.dat.gz")
    assert len(raw) == 487_650 and len(raw.users.vocabulary) == 2999
    assert (
        raw.users.values()[0],
        raw.items.values()[0],
        raw.times[0] if raw.times is not None else None,
    ) == (
        "1",
        "1193",
        978300760,
    )


@pytest.mark.parametrize(
    ("name", "rows", "users", "items"), [("100", 19_855, 100, 6436), ("1k", 157_251, 1000, 24_209)]
)
def test_gowalla_real(shared: Path, name: str, rows: int, users: int, items: int) -> None:
    raw = formats.read_gowalla(shared / "gowalla" / f"gowalla-{name}.checkins.txt.gz")
    assert raw.newest_first and raw.times is not None
    assert len(raw) == rows and len(raw.users.vocabulary) == users and len(raw.items.vocabulary) == items
    assert raw.times[0] == datetime(2010, 10, 19, 15, 55, 27, tzinfo=UTC).timestamp()


# ---------------------------------------------------------------- small files in the official formats

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t51\t2\t881250949\n"
U_GENRE = "".join(f"{g}|{i}\n" for i, g in enumerate(formats.ML100K_GENRES)) + "\n"
U_ITEM = (
    "242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/t?Kolya|" + "|".join("0000010000000000000") + "\n"
    "302|L.A. Confidential (1997)|01-Jan-1997||http://x|" + "|".join("0000001010000010100") + "\n"
)
RATINGS = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
MOVIES = "1193::Cuckoo's Nest (1975)::Drama\n661::Café (1996)::Animation|Children's|Musical\n"


def test_u_data_u_item_u_genre(write: Write) -> None:
    raw = formats.read_u_data(write("u.data", U_DATA))
    assert raw.users.values().tolist() == ["196", "186", "196"] and raw.items.values().tolist() == [
        "242",
        "302",
        "51",
    ]
    assert raw.times is not None and raw.times.tolist() == [881250949.0, 891717742.0, 881250949.0]
    genres = formats.read_u_item(write("u.item", U_ITEM, "latin-1"), write("u.genre", U_GENRE))
    assert genres.values == {"242": ("Comedy",), "302": ("Crime", "Drama", "Romance", "Thriller")}
    assert formats.read_u_item(write("u.item", U_ITEM, "latin-1")).values == genres.values  # standard list


def test_ratings_and_movies_dat_latin1(write: Write) -> None:
    raw = formats.read_ratings_dat(write("ratings.dat", RATINGS))
    assert raw.users.values().tolist() == ["1", "1", "2"]
    assert raw.times is not None and raw.times[1] == 978302109
    assert (
        formats.read_ratings_dat(write("ratings.dat.gz", RATINGS)).items.values().tolist()
        == raw.items.values().tolist()
    )
    genres = formats.read_movies_dat(write("movies.dat", MOVIES, "latin-1"))
    assert genres.values == {"1193": ("Drama",), "661": ("Animation", "Children's", "Musical")}


def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text.encode("latin-1"))
    return buffer.getvalue()


def test_official_zips_read_in_place(write: Write) -> None:
    members = {
        "ml-100k/u.data": U_DATA,
        "ml-100k/u.item": U_ITEM,
        "ml-100k/u.genre": U_GENRE,
        "ml-100k/u1.base": "",
    }
    raw, genres = formats.read_movielens_zip(write("ml-100k.zip", zip_bytes(members)))
    assert (
        raw.items.values().tolist() == ["242", "302", "51"]
        and genres is not None
        and genres.values["242"] == ("Comedy",)
    )
    raw, genres = formats.read_movielens_zip(
        write(
            "ml-1m.zip",
            zip_bytes({"ml-1m/ratings.dat": RATINGS, "ml-1m/movies.dat": MOVIES, "ml-1m/README": ""}),
        )
    )
    assert raw.users.values().tolist() == ["1", "1", "2"]
    assert genres is not None and genres.values["1193"] == ("Drama",)
    raw, genres = formats.read_movielens_zip(write("only.zip", zip_bytes({"ml-100k/u.data": U_DATA})))
    assert len(raw) == 3 and genres is None


def test_recbole_columns_found_by_name(write: Write) -> None:
    text = "timestamp:float\titem_id:token\tuser_id:token\n5\ta\tu1\n3\tb\tu2\n"
    raw = formats.read_inter(write("x.inter", text))
    assert raw.users.values().tolist() == ["u1", "u2"] and raw.items.values().tolist() == ["a", "b"]
    assert raw.times is not None and raw.times.tolist() == [5.0, 3.0]
    no_time = formats.read_inter(write("y.inter", "user_id:token\titem_id:token\nu\ti\n"))
    assert no_time.times is None
    item = formats.read_item(write("x.item", "item_id:token\tclass:token_seq\na\tWar Drama\nb\t\n"))
    assert item.values == {"a": ("War", "Drama"), "b": ()}


def test_sasrec_txt_keeps_file_order(write: Write) -> None:
    raw = formats.read_sasrec_txt(write("s.txt.gz", "1 5\n1 3\n2 5\n"))
    assert (
        raw.times is None
        and raw.users.values().tolist() == ["1", "1", "2"]
        and raw.items.values().tolist() == ["5", "3", "5"]
    )


def test_gowalla_snap_lines(write: Write) -> None:
    text = (
        "0\t2010-10-19T23:55:27Z\t30.2359091167\t-97.7951395833\t22847\n"
        "0\t2010-10-18T22:17:43Z\t30.2691029532\t-97.7493953705\t420315\n"
        "1\t2010-10-18T22:17:43Z\t30.25\t-97.76\t22847\n"
    )
    raw = formats.read_gowalla(write("loc-gowalla_totalCheckins.txt", text))
    assert raw.newest_first and raw.items.values().tolist() == ["22847", "420315", "22847"]
    assert raw.times is not None and raw.times[0] - raw.times[1] == 24 * 3600 + 3600 + 37 * 60 + 44


DMSC = (
    "ID,Movie_Name_EN,Movie_Name_CN,Crawl_Date,Number,Username,Date,Star,Comment,Like\n"
    '0,Avengers Age of Ultron,复仇者联盟2,2017-01-22,1,然潘,2015-05-13,3,"连奥创, 好",2404\n'
    '1,Avengers Age of Ultron,复仇者联盟2,2017-01-22,2,"Bob, Jr.",2015-04-24,2,"多行\n评论 ""引号""",1231\n'
    "2,Big Fish,大鱼,2017-01-22,3,然潘,2015-04-26,4,ok,0\n"
)


def test_dmsc_csv_quotes_commas_newlines(write: Write) -> None:
    raw = formats.read_dmsc_csv(write("DMSC.csv", DMSC))
    assert raw.users.values().tolist() == ["然潘", "Bob, Jr.", "然潘"]
    assert raw.items.values().tolist() == ["Avengers Age of Ultron", "Avengers Age of Ultron", "Big Fish"]
    assert raw.times is not None and raw.times[2] - raw.times[1] == 2 * 86400


# ---------------------------------------------------------------- malformed input: file and 1-based line

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
GOOD_INTER = "".join(f"{u}\t{u + 1}\t3\t{880000000 + u}\n" for u in range(55))


def read_zip(path: Path) -> RawInteractions:
    return formats.read_movielens_zip(path)[0]


def read_u_genre(path: Path) -> tuple[str, ...]:
    return formats.parse_u_genre(path.read_bytes(), str(path))


MALFORMED = [
    # (file, content, reader, line, words in the message)
    ("ml-100k.inter", INTER_HEADER + GOOD_INTER + "7\t8\n", formats.read_inter, 57,
     "expected 4 tab-separated fields, got 2"),
    ("a.inter", INTER_HEADER + "1\t2\t3\tnoon\n", formats.read_inter, 2, "timestamp"),
    ("b.inter", INTER_HEADER + "1\t\t3\t4\n", formats.read_inter, 2, "empty item_id"),
    ("a.item", "item_id:token\tgenre:token_seq\n1\tDrama\n2\n", formats.read_item, 3, "expected 2"),
    ("ratings.dat", RATINGS + "3::12::4\n", formats.read_ratings_dat, 4, "expected 4 '::'-separated"),
    ("ratings.dat.gz", RATINGS + "3::12::4::yesterday\n", formats.read_ratings_dat, 4, "Timestamp"),
    ("movies.dat", MOVIES + "12 Title Drama\n", formats.read_movies_dat, 3, "MovieID::Title::Genres"),
    ("u.data", U_DATA + "\n1 2 3 4\n", formats.read_u_data, 5, "expected 4 tab-separated"),
    ("u.item", U_ITEM + "9|T|d||u|0|1\n", formats.read_u_item, 3, "expected 24 '|'-separated"),
    ("u.genre", "unknown|0\nAction\n", read_u_genre, 2, "genre name|index"),
    ("ml-1m.txt", "1 2\n1 3\n\n1 4 5\n", formats.read_sasrec_txt, 4, "expected 2 whitespace-separated"),
    ("ml-1m.txt.gz", "1 2\n2\n", formats.read_sasrec_txt, 2, "got 1"),
    ("g.txt.gz", "0\t2010-10-19T23:55:27Z\t1\t2\t3\n0\t19/10/2010\t1\t2\t3\n", formats.read_gowalla, 2,
     "ISO-8601"),
    ("g.txt", "0\t2010-10-19T23:55:27Z\t1\t2\t3\n0\t2010-10-19T23:55:27Z\t1\t2\n", formats.read_gowalla, 2,
     "expected 5 tab-separated"),
    ("DMSC.csv", DMSC + "3,Big Fish,鱼,2017-01-22,4,x,2015-04-26\n", formats.read_dmsc_csv, 6, "expected 10"),
    ("DMSC.csv", DMSC + "3,Big Fish,鱼,2017-01-22,4,x,26.4.2015,4,ok,0\n", formats.read_dmsc_csv, 6, "Date"),
    ("ml-100k.zip", zip_bytes({"ml-100k/u.data": U_DATA + "1\t2\n"}), read_zip, 4, "ml-100k/u.data"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "reader", "line", "words"), MALFORMED)
def test_malformed_line_names_file_and_line(
    write: Write, name: str, content: str | bytes, reader: object, line: int, words: str
) -> None:
    path = write(name, content)
    with pytest.raises(DataError) as error:
        reader(path)  # type: ignore[operator]
    message = str(error.value)
    assert str(path) in message and f" line {line}:" in message and words in message, message


def test_missing_and_corrupt_files_name_the_path(tmp_path: Path, write: Write) -> None:
    readers = [formats.read_ratings_dat, formats.read_inter, formats.read_gowalla, formats.read_movielens_zip]
    for reader in readers:
        with pytest.raises(DataError, match="file not found") as error:
            reader(tmp_path / "absent.file")
        assert str(tmp_path / "absent.file") in str(error.value)
    bad_gz = write("x.txt.gz", b"")
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        formats.read_sasrec_txt(bad_gz)
    with pytest.raises(DataError, match="not a readable zip"):
        formats.read_movielens_zip(write("ml-1m.zip", b"PK garbage"))
    with pytest.raises(DataError, match=r"neither ratings\.dat"):
        formats.read_movielens_zip(write("other.zip", zip_bytes({"ml-1m/ratings-users-1-2999.dat": RATINGS})))
    with pytest.raises(DataError, match="no user_id field"):
        formats.read_inter(write("h.inter", "uid:token\titem_id:token\n1\t2\n"))


def test_chunked_reading_keeps_lines_and_numbers(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big files are read in chunks; tiny chunks (cut inside CRLFs, after blank lines) change nothing."""
    rows = [f"{u}\t{i}\t3\t{900 + i}\r\n" + "\r\n" * (i % 7 == 0) for u in range(9) for i in range(9)]
    text = "".join(rows)
    whole = formats.read_u_data(write("u.data", text))
    monkeypatch.setattr(_text, "CHUNK_CHARS", 5)
    chunked = formats.read_u_data(write("u.data", text))
    assert chunked.users.values().tolist() == whole.users.values().tolist()
    items = chunked.items.values().tolist()
    assert items == whole.items.values().tolist() == [str(i) for _ in range(9) for i in range(9)]
    assert chunked.times is not None and whole.times is not None and (chunked.times == whole.times).all()
    lines = text.split("\r\n")
    lines[60] = "bad"
    with pytest.raises(DataError, match=r"u\.data line 61: expected 4 tab-separated fields, got 1"):
        formats.read_u_data(write("u.data", "\r\n".join(lines)))
