"""The search decision's commitment in the results database (on SQLite and PostgreSQL): recorded from
result.json's trajectory, cleared when the directory's latest attempt fails, NULL for a fixed model and for
rows recorded before revision 0004, and selectable by name (what `dnsrec reproduce figure4` reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results_support import runs_at_revision

from dnsrec.results import ResultStore, open_store

# Epoch 2 decides depth 1, width index 2 (p 0.9, q 0.75); epoch 3 keeps that choice: settled 2.
_LOGITS = {"alpha": [[-1.0, 0.0, 1.0]], "beta": [0.5, -0.5]}
_TRAJECTORY = [
    {"epoch": 1, "candidates": [0, 0], "depth": 2, "p": [[0.5, 0.3, 0.2]] * 2, "q": [0.4, 0.6]} | _LOGITS,
    {"epoch": 2, "candidates": [2, 2], "depth": 1, "p": [[0.05, 0.05, 0.9]] * 2, "q": [0.75, 0.25]} | _LOGITS,
    {"epoch": 3, "candidates": [2, 0], "depth": 1, "p": [[0.02, 0.03, 0.95], [0.6, 0.2, 0.2]], "q": [0.8, 0.2]}
    | _LOGITS,
]


def test_recorded_cleared_on_failure_and_absent_without_a_search(
    store: ResultStore, make_result: Any, tmp_path: Path
) -> None:
    searched = make_result(search={"best_epoch": 2, "steps": 30, "trajectory": _TRAJECTORY})
    run = store.get_run(store.record(searched, tmp_path / "run"))
    assert (run.decision_width_p, run.decision_depth_q, run.decision_settled_epochs) == (0.9, 0.75, 2)
    assert [run.value(k) for k in ("decision_width_p", "decision_settled_epochs")] == [0.9, 2]
    store.record_failure(tmp_path / "run", "diverged", stage="run", dataset="ml-100k")
    failed = store.get_run(run.id)
    assert (failed.status, failed.decision_width_p, failed.decision_settled_epochs) == ("FAILED", None, None)
    trained = make_result(stage="train", architecture=None, search=None)
    fixed = store.get_run(store.record(trained, tmp_path / "train"))
    assert (fixed.decision_width_p, fixed.decision_depth_q, fixed.decision_settled_epochs) == (None, None, None)


def test_rows_recorded_at_0003_upgrade_to_unknown(db_url: str) -> None:
    row = {"run_dir": "/runs/old", "status": "COMPLETE", "stage": "run", "dataset": "ml-100k", "launcher": "local"}
    runs_at_revision(db_url, "0003", [row | {"method": "dnsrec"}])
    store = open_store(db_url)  # upgrades to head, then checks the tables are exactly the models'
    try:
        (old,) = store.list_runs()
    finally:
        store.close()
    assert (old.decision_width_p, old.decision_depth_q, old.decision_settled_epochs) == (None, None, None)
