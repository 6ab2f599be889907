"""Presets end to end: real statistics, which file wins, missing files, downloads, and the cache."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dnsrec.data import PRESETS, SequenceData, load_dataset, preset_names, presets
from dnsrec.data.fetch import download
from dnsrec.errors import ConfigError, DataError

Write = Callable[..., Path]  # the `write` fixture (conftest.py)

U_DATA = "".join(f"{u}\t{i}\t3\t{1000 + 7 * i - u}\n" for u in (10, 11, 12, 13) for i in range(1, 5 + u % 3))


def assert_same(a: SequenceData, b: SequenceData) -> None:
    assert (a.name, a.n_items, a.max_len, a.item_ids) == (b.name, b.n_items, b.max_len, b.item_ids)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert (a.item_features is None) == (b.item_features is None)
    if a.item_features is not None and b.item_features is not None:
        assert a.item_features.vocabulary == b.item_features.vocabulary
        np.testing.assert_array_equal(a.item_features.values, b.item_features.values)
        np.testing.assert_array_equal(a.item_features.offsets, b.item_features.offsets)


# ---------------------------------------------------------------- real data


def test_ml1m_statistics_and_cached_second_load(shared: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("ml-1m", shared, cache)
    assert (data.n_users, data.n_items, data.n_interactions, data.max_len) == (6040, 3706, 1_000_209, 200)
    assert data.item_features is not None and data.item_features.n_values == 18
    assert data.sequence(0)[:3].tolist() == [1, 2, 3] and data.item_ids[:3] == ("3186", "1721", "1022")

    # The second load must come from the cache: parsing is made impossible. (How fast a cached load is
    # belongs in a benchmark, not in a timed test.)
    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second load parsed the files again")

    monkeypatch.setattr("dnsrec.data.load.build_sequences", no_parsing)
    again = load_dataset("ml-1m", shared, cache, max_len=50)
    assert again.max_len == 50
    assert_same(data, load_dataset("ml-1m", shared, cache))


def test_ml100k_statistics(shared: Path, cache: Path) -> None:
    data = load_dataset("ml-100k", shared, cache)
    assert (data.n_users, data.n_items, data.n_interactions, data.max_len) == (943, 1682, 100_000, 200)
    assert data.item_features is not None and "unknown" in data.item_features.vocabulary


def reference_gowalla(path: Path) -> list[list[str]]:
    """Plain Python: 5-core to a fixed point, then each user's check-ins oldest first (ties: later line
    first)."""
    with gzip.open(path, "rt") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    pairs = [(u, loc, t, n) for n, (u, t, _, _, loc) in enumerate(rows)]
    while True:
        users, items = Counter(p[0] for p in pairs), Counter(p[1] for p in pairs)
        kept = [p for p in pairs if users[p[0]] >= 5 and items[p[1]] >= 5]
        if len(kept) == len(pairs):
            break
        pairs = kept
    per_user: dict[str, list[tuple[str, int, str]]] = {}
    for u, loc, t, n in pairs:
        per_user.setdefault(u, []).append((t, -n, loc))  # ISO times in one zone sort as strings
    return [[loc for _, _, loc in sorted(s)] for s in per_user.values()]


@pytest.mark.parametrize("name", ["gowalla-100", "gowalla-1k"])
def test_gowalla_subsets_match_an_independent_5core(shared: Path, cache: Path, name: str) -> None:
    data = load_dataset(name, shared, cache)
    expected = reference_gowalla(shared / "gowalla" / f"{name}.checkins.txt.gz")
    ids = ("<pad>", *data.item_ids)
    assert [[ids[i] for i in data.sequence(u)] for u in range(data.n_users)] == expected
    assert data.max_len == 100 and data.item_features is None
    assert data.n_interactions == sum(map(len, expected))
    print(f"{name}: {data.n_users} users, {data.n_items} items, {data.n_interactions} interactions")


# ---------------------------------------------------------------- names, directories, missing files


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'ml-20m'") as error:
        load_dataset("ml-20m")
    assert all(name in str(error.value) for name in preset_names())
    assert set(preset_names()) == {
        "ml-1m",
        "ml-100k",
        "gowalla",
        "gowalla-1k",
        "gowalla-100",
        "synth-gowalla",
        "douban",
    }
    assert set(PRESETS) == set(preset_names())


def test_bad_max_len_is_a_config_error(shared: Path, cache: Path) -> None:
    with pytest.raises(ConfigError, match="max_len"):
        load_dataset("gowalla-100", shared, cache, max_len=0)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (
            "ml-1m",
            ["ml-1m.zip", "ml-1m/ratings.dat", "ml-1m/ml-1m.txt.gz", "files.grouplens.org", "DNSREC_OFFLINE"],
        ),
        ("ml-100k", ["ml-100k.zip", "ml-100k/u.data", "ml-100k/ml-100k.inter", "grouplens"]),
        ("gowalla", ["loc-gowalla_totalCheckins.txt.gz", "snap.stanford.edu"]),
        ("gowalla-100", ["gowalla/gowalla-100.checkins.txt.gz", "no official download"]),
        ("douban", ["DMSC.csv", "douban/DMSC.csv", "utmhikari/doubanmovieshortcomments", "login"]),
    ],
)
def test_missing_files_offline_say_what_to_put_where(
    tmp_path: Path,
    cache: Path,
    name: str,
    words: list[str],
) -> None:
    with pytest.raises(DataError) as error:
        load_dataset(name, tmp_path / "data", cache)
    message = str(error.value)
    assert str((tmp_path / "data").resolve()) in message and all(w in message for w in words), message
    assert not (cache / "downloads").exists()


def test_ml1m_never_uses_the_partial_ratings_file(shared: Path, tmp_path: Path, cache: Path) -> None:
    (tmp_path / "ml-1m").mkdir()
    partial = "ml-1m/ratings-users-1-2999.dat.gz"
    (tmp_path / partial).symlink_to(shared / partial)
    (tmp_path / "ml-1m" / "ml-1m.item").symlink_to(shared / "ml-1m" / "ml-1m.item")
    with pytest.raises(DataError, match=r"ml-1m/ml-1m\.txt\.gz"):
        load_dataset("ml-1m", tmp_path, cache)


def test_ml1m_official_ratings_dat_wins(shared: Path, tmp_path: Path, cache: Path) -> None:
    """The real ratings.dat rows of users 1..2999, decompressed into tmp (never beside the shared files)."""
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ml-1m.txt.gz").symlink_to(shared / "ml-1m" / "ml-1m.txt.gz")
    with gzip.open(shared / "ml-1m" / "ratings-users-1-2999.dat.gz") as f:
        (tmp_path / "ml-1m" / "ratings.dat").write_bytes(f.read())
    data = load_dataset("ml-1m", tmp_path, cache)
    assert (data.n_users, data.n_interactions, data.item_features) == (2999, 487_650, None)  # no movies.dat


def test_an_unwritable_cache_costs_only_speed(shared: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    assert load_dataset("gowalla-100", shared, blocker).n_users > 0


def test_environment_chooses_the_directories(
    shared: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DNSREC_DATA_DIR", str(shared))
    monkeypatch.setenv("DNSREC_CACHE_DIR", str(tmp_path / "env-cache"))
    data = load_dataset("gowalla-100")
    assert data.n_users > 0 and any((tmp_path / "env-cache").glob("gowalla-100-*.npz"))


# ---------------------------------------------------------------- official files: which wins, downloads


def ml100k_zip(u_data: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-100k/u.data", u_data)
        archive.writestr("ml-100k/u.item", "1|Toy Story|01-Jan-1995||u|" + "|".join("0001110000000000000"))
    return buffer.getvalue()


def test_official_files_win_over_the_offline_copy(write: Write, tmp_path: Path, cache: Path) -> None:
    write(
        "data/ml-100k/ml-100k.inter",
        "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t3\t4\n1\t4\t5\n",
    )
    offline_copy = load_dataset("ml-100k", tmp_path / "data", cache)
    assert offline_copy.n_users == 1
    write("data/ml-100k/u.data", U_DATA)
    from_dir = load_dataset("ml-100k", tmp_path / "data", cache)
    assert from_dir.n_users == 4 and from_dir.item_features is None  # no u.item beside it
    write("data/ml-100k.zip", ml100k_zip(U_DATA))
    from_zip = load_dataset("ml-100k", tmp_path / "data", cache)
    assert from_zip.item_features is not None and from_zip.item_features.vocabulary == (
        "Animation", "Children's", "Comedy"
    )  # fmt: skip
    np.testing.assert_array_equal(from_zip.items, from_dir.items)


def test_a_previous_download_in_the_cache_is_used(write: Write, tmp_path: Path, cache: Path) -> None:
    write("cache/downloads/ml-100k.zip", ml100k_zip(U_DATA))
    assert load_dataset("ml-100k", tmp_path / "empty", cache).n_users == 4


def test_download_checks_the_md5(write: Write, tmp_path: Path) -> None:
    source = write("server/ml-100k.zip", ml100k_zip(U_DATA))
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    dest = tmp_path / "downloads" / "ml-100k.zip"
    assert download(source.as_uri(), dest, md5) == dest and dest.read_bytes() == source.read_bytes()
    dest.unlink()
    with pytest.raises(DataError, match="MD5"):
        download(source.as_uri(), dest, "0" * 32)
    assert list(dest.parent.iterdir()) == []  # nothing half-written is left behind
    with pytest.raises(DataError, match="failed"):
        download((tmp_path / "absent.zip").as_uri(), dest)


def test_load_downloads_when_allowed(
    write: Write, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real flow with a file:// URL standing in for GroupLens (no network in tests)."""
    source = write("server/ml-100k.zip", ml100k_zip(U_DATA))
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    preset = PRESETS["ml-100k"]
    official = presets.Download(source.as_uri(), md5)
    layouts = (presets.Layout(("ml-100k.zip",), preset.layouts[0].load, official),)
    monkeypatch.setattr(presets, "PRESETS", {"ml-100k": dataclasses.replace(preset, layouts=layouts)})
    monkeypatch.setenv("DNSREC_OFFLINE", "0")
    assert load_dataset("ml-100k", tmp_path / "empty", cache).n_users == 4
    assert (cache / "downloads" / "ml-100k.zip").read_bytes() == source.read_bytes()


def test_douban_preset_filters_a_small_dmsc(write: Write, tmp_path: Path, cache: Path) -> None:
    header = "ID,Movie_Name_EN,Movie_Name_CN,Crawl_Date,Number,Username,Date,Star,Comment,Like\n"
    movies = [f"Movie {m}" for m in range(7)]
    rated = {"all": [*movies, "Movie X"], "few": ["Movie X", *movies[:3]]}  # every item; < 5 items
    rated |= {f"u{n}": movies[:n] + movies[n + 1 :] for n in range(7)}  # u<n> lacks Movie <n>
    rows = [
        f'{k},{movie},电影,2017-01-22,{k},"{user}",2016-01-01,3,"好, ""很好""\n!",0\n'
        for k, (user, movie) in enumerate((u, m) for u, ms in rated.items() for m in ms)
    ]
    write("data/douban/DMSC.csv", header + "".join(rows))
    data = load_dataset("douban", tmp_path / "data", cache)
    assert (data.max_len, data.n_users, data.n_interactions) == (100, 7, 42)
    # Movie X went with "all" and "few"; same-day ratings keep file order
    assert data.item_ids == (*movies[1:], movies[0])


# ---------------------------------------------------------------- the cache


def test_cache_is_keyed_by_content(write: Write, tmp_path: Path, cache: Path) -> None:
    write("data/ml-100k/u.data", U_DATA)
    first = load_dataset("ml-100k", tmp_path / "data", cache)
    assert first.n_users == 4
    # user 10's first item becomes its last
    write("data/ml-100k/u.data", U_DATA.replace("10\t1\t3\t997", "10\t1\t3\t9997"))
    second = load_dataset("ml-100k", tmp_path / "data", cache)
    assert first.item_ids != second.item_ids or not np.array_equal(first.items, second.items)
    assert len(list(cache.glob("ml-100k-*.npz"))) == 2


@pytest.mark.parametrize("damage", ["garbage npz", "truncated npz", "garbage json", "no npz", "wrong arrays"])
def test_a_corrupt_cache_is_rebuilt(write: Write, tmp_path: Path, cache: Path, damage: str) -> None:
    write("data/ml-100k/u.data", U_DATA)
    good = load_dataset("ml-100k", tmp_path / "data", cache)
    (npz,) = cache.glob("ml-100k-*.npz")
    if damage == "garbage npz":
        npz.write_bytes(b"garbage")
    elif damage == "truncated npz":
        npz.write_bytes(npz.read_bytes()[:100])
    elif damage == "garbage json":
        npz.with_suffix(".json").write_text("{not json")
    elif damage == "no npz":
        npz.unlink()
    else:
        np.savez(npz, items=np.array([1, 2]), offsets=np.array([0, 5]), item_ids=np.array(["x"]))
    assert_same(load_dataset("ml-100k", tmp_path / "data", cache), good)
    assert_same(load_dataset("ml-100k", tmp_path / "data", cache), good)  # and the rebuilt cache is good
