"""A report with missing points marks each (unavailable with the key's name, failed with the reason, fewer
seeds than asked) and is written all the same."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

from report_support import BASE, NAS, OURS, complete, missing, run, spec

from dnsrec.reproduce.render import csv_text, markdown, write
from dnsrec.reproduce.report import build
from dnsrec.reproduce.tables import load_paper, load_table


def test_missing_points_are_marked_not_filled(tmp_path: Path) -> None:
    results = [complete(OURS, 0, run(1, 0.30, 1.0)), complete(OURS, 1, run(2, 0.31, 1.1))]
    results += [complete(BASE, 0, run(3, 0.28, 2.0, stage="train")), missing(BASE, 1, "failed", "job died: OOM")]
    results += [missing(NAS, s, "unavailable", "needs config key `search.method`") for s in (0, 1)]
    report = build(spec(), "gowalla-1k", [0, 1], results, load_paper(), "dnsrec reproduce table3", "abc")
    md = markdown(report)
    assert "| DARTS + SASRec | unavailable | 0.7217 |" in md  # the paper's value is still shown
    assert "0.2800 (1/2 seeds)" in md  # one seed: no sd, and the shortfall is said
    assert "needs config key `search.method`" in md
    assert "SASRec (w LinRec), seed 1: failed: job died: OOM" in md
    rows = list(csv.DictReader(io.StringIO(csv_text(report))))
    nas = [r for r in rows if r["row"] == NAS.label]
    assert nas and all(r["status"] == "unavailable" and r["mean"] == "" for r in nas)
    assert all("search.method" in r["note"] for r in nas)
    base = next(r for r in rows if r["row"] == BASE.label and r["column"] == "test NDCG@10")
    assert base["status"] == "partial" and base["n"] == "1" and base["p_welch"] == ""
    assert {p.suffix for p in write(report, tmp_path)} == {".md", ".csv"}


def test_a_report_of_nothing_is_still_written(tmp_path: Path) -> None:
    results = [missing(r, 0, "not run", "launch=false") for r in (OURS, BASE)]
    results += [missing(NAS, 0, "unavailable", "needs config key `search.method`")]
    report = build(spec(), "douban", [0], results, load_paper(), "cmd", "")
    md = markdown(report)
    assert md.count("missing") >= 4 and "Ours, seed 0: not run: launch=false" in md
    assert (tmp_path / "douban-table3.md") in write(report, tmp_path)


def test_column_notes_reach_the_header() -> None:
    """A column whose numbers need a caveat (Table 4's whole-run peak memory) says so above the table."""
    noted = replace(spec(), columns=(replace(spec().columns[1], note="each run's own timing"),))
    md = markdown(build(noted, "ml-100k", [0], [complete(OURS, 0, run(1, 0.3, 1.0))], load_paper(), "cmd", ""))
    assert "- Infer. (s): each run's own timing\n" in md.split("| row |")[0]
    columns = {c.name: c for c in load_table("table4").columns}
    assert columns["Memory (GB)"].value == ("inference_memory_mb",)  # the paper's: scoring the test users
    assert "whole run" in columns["Run peak memory (GB)"].note


def test_run_directories_under_the_report_folder_print_as_relative_links(tmp_path: Path) -> None:
    """A committed report names its records the same in every checkout (before: the ingesting checkout's
    absolute path); a run directory elsewhere prints as recorded."""
    inside = str(tmp_path / "records" / "gowalla-1k" / "run-ours-s0")
    results = [complete(OURS, 0, replace(run(1, 0.30, 1.0), run_dir=inside))]
    results += [complete(BASE, 0, run(3, 0.28, 2.0, stage="train"))]
    report = build(spec(), "gowalla-1k", [0], results, load_paper(), "cmd", "abc")
    write(report, tmp_path)
    md = (tmp_path / "gowalla-1k-table3.md").read_text()
    assert "| [records/gowalla-1k/run-ours-s0](records/gowalla-1k/run-ours-s0) |" in md
    assert "| /runs/3 |" in md
    assert str(tmp_path) not in md
