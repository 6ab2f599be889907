"""The runs behind docs/results, committed under docs/results/records (`make records` ingests them): each is a
result the results database records as COMPLETE, and each one under a dataset's folder is a point of one of
the reproduce tables, so `dnsrec reproduce ... --db sqlite:///runs/records.db` reuses it instead of running
it again. A record that no table's point matches any more (a default changed since it ran) fails here, by
name: the reports built on it could not be regenerated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dnsrec.evaluate import RANKS_FILE
from dnsrec.reproduce.points import Planner
from dnsrec.reproduce.records import keep_record
from dnsrec.reproduce.tables import load_table, table_names
from dnsrec.results import open_store
from dnsrec.results.extract import digest
from dnsrec.run_result import RESULT_FILE, RunResult

RECORDS = Path(__file__).resolve().parents[2] / "docs" / "results" / "records"
NOT_POINTS = "formulation"  # README's formulation table: runs of `dnsrec train`, not points of a table


def record_dirs() -> list[Path]:
    return sorted(p.parent for p in RECORDS.glob(f"*/*/{RESULT_FILE}"))


def test_every_record_is_recorded_complete_with_its_ranks(tmp_path: Path) -> None:
    dirs = record_dirs()
    assert dirs, f"no records under {RECORDS}"
    store = open_store(f"sqlite:///{tmp_path / 'records.db'}")
    try:
        for d in dirs:
            run = store.get_run(store.ingest(d))
            assert run.status == "COMPLETE", d
            assert d.parent.name in (run.dataset, NOT_POINTS), f"{d}: a {run.dataset} run in {d.parent.name}/"
            assert (d / "ranks.npz").is_file(), f"{d}: no ranks.npz (the paired comparisons read it)"
    finally:
        store.close()


def test_every_record_in_a_dataset_folder_is_a_reproduce_point() -> None:
    by_dataset: dict[str, list[Path]] = {}
    for d in record_dirs():
        if d.parent.name != NOT_POINTS:
            by_dataset.setdefault(d.parent.name, []).append(d)
    assert by_dataset
    specs = [load_table(name) for name in table_names()]
    for dataset, dirs in by_dataset.items():
        planner = Planner(dataset)
        results = {d: RunResult.read(d / RESULT_FILE) for d in dirs}
        seeds = sorted({int(r.config["train"]["seed"]) for r in results.values()})
        points = [p for spec in specs for p in planner.points(spec, seeds)]
        for d, result in results.items():
            assert any(planner.matches(p, result.stage, result.config) for p in points), (
                f"{d}: no point of {', '.join(table_names())} on {dataset} matches this record's config"
            )


def test_keep_record_copies_a_run_once_whole_and_only_the_result_recorded(tmp_path: Path) -> None:
    source = record_dirs()[0]
    run_dir = tmp_path / "scratch" / source.name
    shutil.copytree(source, run_dir)
    (run_dir / "best.pt").write_bytes(b"checkpoint")  # never part of a record
    sha = digest(RunResult.read(run_dir / RESULT_FILE))
    records = tmp_path / "records"

    line = keep_record(run_dir, records, "gowalla-1k", sha)
    kept = records / "gowalla-1k" / source.name
    assert line == f"record kept: {kept}"
    assert sorted(p.name for p in kept.iterdir()) == sorted(p.name for p in source.iterdir())
    assert all((kept / p.name).read_bytes() == p.read_bytes() for p in source.iterdir())
    # kept once: a second call (the report's pass over a run kept when it finished) copies nothing again
    (kept / RANKS_FILE).unlink()
    assert keep_record(run_dir, records, "gowalla-1k", sha).startswith("record kept already")
    assert not (kept / RANKS_FILE).exists()
    shutil.copyfile(source / RANKS_FILE, kept / RANKS_FILE)
    # a database rebuilt from the records points at the records themselves: nothing to copy
    assert keep_record(kept, records, "gowalla-1k", sha).startswith("record kept already")

    # the run directory's result changed after it was recorded: the record keeps what the database read
    changed = json.loads((run_dir / RESULT_FILE).read_text())
    changed["metrics"]["test"]["pop100/ndcg@10"] = 0.99
    (run_dir / RESULT_FILE).write_text(json.dumps(changed))
    assert "is not the result the database recorded" in keep_record(run_dir, records, "gowalla-1k", sha)
    assert (kept / RESULT_FILE).read_bytes() == (source / RESULT_FILE).read_bytes()
    (run_dir / RESULT_FILE).unlink()
    assert "is gone" in keep_record(run_dir, records, "gowalla-1k", sha)
