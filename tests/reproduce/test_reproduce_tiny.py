"""`dnsrec reproduce table3` end to end on gowalla-100 with the tiny runs of tests/tiny_runs.py: every point
runs through the local launcher and is recorded; a second call finds every point recorded and launches
nothing; the report is written each time, with the unavailable rows marked."""

from __future__ import annotations

import csv
from pathlib import Path

from sweep_support import dnsrec, env_for
from tiny_runs import TINY_RUN, TINY_TRAIN

from dnsrec.results import RunFilter, open_store

# the tiny shapes of both commands: each override reaches the points whose config has its key
TINY = list(dict.fromkeys([*TINY_RUN, *TINY_TRAIN, "train.max_epochs=2"]))


def _runs(db_url: str) -> list[tuple[int, str, str]]:
    store = open_store(db_url)
    try:
        return sorted((r.id, r.status, str(r.recorded_at)) for r in store.list_runs(RunFilter()))
    finally:
        store.close()


def test_table3_runs_records_reuses_and_reports(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    out = tmp_path / "reports"
    args = ["reproduce", "table3", "seeds=[0,1]", "parallel=2", "poll=0.3", f"out={out}", *TINY]
    first = dnsrec(args, tmp_path, env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    runs = _runs(env["DNSREC_DB_URL"])
    assert runs and {status for _, status, _ in runs} == {"COMPLETE"}, first.stdout
    assert f"0 points reused, {len(runs)} run now, 0 failed" in first.stdout
    md, table = out / "gowalla-100-table3.md", out / "gowalla-100-table3.csv"
    assert md.is_file() and table.is_file()
    # every run the report reads is kept beside it, whole (dnsrec.reproduce.records)
    kept = sorted((out / "records" / "gowalla-100").iterdir())
    assert len(kept) == len(runs), first.stdout
    assert all((k / "result.json").is_file() and (k / "ranks.npz").is_file() for k in kept)
    assert not list((out / "records").rglob("*.pt")) and not list((out / "records").rglob(".*partial"))
    rows = list(csv.DictReader(table.open()))
    ours = next(r for r in rows if r["row"] == "Ours" and r["column"] == "test NDCG@10")
    assert ours["status"] == "complete" and ours["n"] == "2" and ours["paper"] == "0.7317*"
    baseline = next(r for r in rows if r["row"] == "SASRec (w LinRec)" and r["column"] == "test NDCG@10")
    assert baseline["status"] == "complete" and baseline["p_welch"] != ""
    text = md.read_text()
    assert "dnsrec reproduce table3" in text and "Welch" in text and "window" in text
    assert f"--db {env['DNSREC_DB_URL']}`" in text  # the command names the database its runs came from
    # the NAS baselines: marked unavailable (naming the key) until `search.method` exists, then run
    darts = [r for r in rows if r["row"] == "DARTS + SASRec"]
    assert darts and all(r["status"] == "complete" or "search.method" in r["note"] for r in darts)

    md.unlink()
    second = dnsrec(args, tmp_path, env, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 to run" in second.stdout and "points reused, 0 run now, 0 failed" in second.stdout
    assert _runs(env["DNSREC_DB_URL"]) == runs  # nothing launched, nothing re-recorded
    assert md.is_file()
