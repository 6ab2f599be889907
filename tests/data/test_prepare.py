"""A dataset is prepared once, before anything fans out: `dnsrec data prepare|stats`, the cache's atomic
writes and racing preparers, and sweeps/grids that refuse a missing dataset before creating anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sweep_support import dnsrec, env_for
from tiny_runs import TINY_RUN

from dnsrec.data import DatasetStats, load_dataset, prepare_dataset
from dnsrec.data import cache as data_cache
from dnsrec.data.stats import PAPER_TABLE1


def test_ml1m_statistics_match_table_1_of_the_paper(shared: Path, cache: Path) -> None:
    stats = DatasetStats.of(prepare_dataset("ml-1m", shared, cache).data)
    paper = PAPER_TABLE1["ml-1m"]
    print(stats.table())
    # the paper counts RecBole's padding id among users and items
    assert (stats.users + 1, stats.items + 1, stats.interactions) == (paper["users"], paper["items"], 1_000_209)
    assert round(stats.mean_per_user, 2) == paper["ua"] and round(stats.mean_per_item, 2) == paper["ia"]
    assert stats.sparsity == pytest.approx(1 - 1_000_209 / (6040 * 3706))


def test_data_stats_command_prints_the_table(shared: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path, DNSREC_DATA_DIR=str(shared), DNSREC_CACHE_DIR=str(tmp_path / "cache"))
    done = dnsrec(["data", "stats", "gowalla-100"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    data = load_dataset("gowalla-100", shared, tmp_path / "cache")
    lines = {line[:22].strip(): line[22:].split() for line in done.stdout.splitlines()}
    assert lines["users"] == [f"{data.n_users:,}"] and lines["interactions"] == [f"{data.n_interactions:,}"]
    assert lines["mean per user (UA)"] == [f"{np.diff(data.offsets).mean():.2f}"]
    # a file given by path is read as the preset of that file name
    by_file = dnsrec(["data", "stats", str(shared / "gowalla" / "gowalla-100.checkins.txt.gz")], tmp_path, env)
    assert by_file.returncode == 0 and by_file.stdout == done.stdout, by_file.stderr


def test_racing_preparers_build_once_and_leave_one_complete_cache(shared: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = env_for(tmp_path, DNSREC_DATA_DIR=str(shared), DNSREC_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-m", "dnsrec.cli", "data", "prepare", "gowalla-1k"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    built = [out for out in outs if "\nprepared: " in out]
    assert len(built) == 1, outs  # the others waited on the entry's lock, then read what the first wrote
    assert sorted(p.suffix for p in cache.iterdir() if p.is_file()) == [".json", ".lock", ".npz"]
    again = prepare_dataset("gowalla-1k", shared, cache)
    assert not again.built and again.data.n_interactions == 123_018


def test_a_failed_cache_write_leaves_no_partial_file(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_dataset("gowalla-100", shared, tmp_path / "first")
    stem = tmp_path / "cache" / "entry"

    def crash_half_way(file: object, **arrays: object) -> None:
        assert hasattr(file, "write")
        file.write(b"PK\x03\x04 half an npz")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash_half_way)
    data_cache.save(stem, data)  # only warns
    assert list((tmp_path / "cache").iterdir()) == []  # neither the npz nor its temporary file
    assert data_cache.load(stem) is None


def test_missing_dataset_message_is_one_line_naming_files_and_directory(tmp_path: Path) -> None:
    env = env_for(tmp_path, DNSREC_DATA_DIR=str(tmp_path / "data"), DNSREC_OFFLINE="1")
    done = dnsrec(["data", "prepare", "gowalla"], tmp_path, env)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("dnsrec: error: dataset 'gowalla': no data file found")
    assert "loc-gowalla_totalCheckins.txt.gz" in line and str(tmp_path / "data") in line


def test_sweep_without_its_dataset_stops_before_creating_a_study(tmp_path: Path) -> None:
    env = env_for(tmp_path, DNSREC_DATA_DIR=str(tmp_path / "data"), DNSREC_OFFLINE="1")
    done = dnsrec(["sweep", "dataset=gowalla", "sweep.trials=4", "sweep.parallel=2"], tmp_path, env, timeout=120)
    print(done.stdout, done.stderr)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("dnsrec: error: dataset 'gowalla': no data file found") and "DNSREC_DATA_DIR" in line
    assert not (tmp_path / "results.db").exists()  # the results database / Optuna storage was never opened
    assert not (tmp_path / "runs").exists()


def test_grid_without_its_dataset_stops_before_any_job(shared: Path, tmp_path: Path) -> None:
    env = env_for(tmp_path, DNSREC_DATA_DIR=str(tmp_path / "data"), DNSREC_OFFLINE="1")
    (tmp_path / "data" / "gowalla").mkdir(parents=True)
    (tmp_path / "data" / "gowalla" / "gowalla-100.checkins.txt.gz").symlink_to(
        shared / "gowalla" / "gowalla-100.checkins.txt.gz"
    )
    # the grid's second point is the dataset that is absent: nothing runs, not even the first point
    args = ["run", "-m", *TINY_RUN, "dataset=gowalla-100,gowalla-1k", "gates.layers=0"]
    done = dnsrec(args, tmp_path, env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("dnsrec: error: dataset 'gowalla-1k': no data file found")
    assert "dataset gowalla-100: 97 users" in done.stdout  # the first point's dataset was prepared
    assert not (tmp_path / "results.db").exists() and not (tmp_path / "runs").exists()
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()
