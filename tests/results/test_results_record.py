"""Recording runs, on SQLite and PostgreSQL: round trips (hand-made and real results), idempotence,
refusal of bad files with nothing written, statuses, and concurrent writers (threads and processes)."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from dnsrec.results import InvalidResult, ResultStore, SlurmInfo, open_store
from dnsrec.results.models import ArchitectureRow, Metric, Run, Sweep
from dnsrec.run_result import RunResult


def counts(store: ResultStore) -> tuple[int, int, int, int]:
    with store.session() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(t)) for t in (Run, ArchitectureRow, Metric, Sweep)
        )


def flat(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{split}/{name}": v for split, values in metrics.items() for name, v in values.items()}


def test_hand_made_result_round_trips(store: ResultStore, make_result: Any, tmp_path: Path) -> None:
    result = make_result(lam=0.01, seed=3, flops=54_321)
    slurm = SlurmInfo("777", "770", 7)
    run_id = store.record(result, tmp_path / "run", sweep="table2", trial=4, launcher="slurm", slurm=slurm)
    run = store.get_run(run_id)
    assert run.run_dir == str((tmp_path / "run").resolve()) and run.status == "COMPLETE"
    assert (run.stage, run.dataset, run.sweep, run.trial) == ("run", "ml-100k", "table2", 4)
    assert (run.lam, run.gate_layers, run.lr, run.seed, run.attention) == (0.01, 2, 0.001, 3, "linear")
    assert (run.shape, run.init, run.search_epochs, run.batch) == ("narrow", "transfer", 10, 2048)
    assert (run.launcher, run.slurm_job_id, run.slurm_array_job_id, run.slurm_array_task_id) == (
        "slurm",
        "777",
        "770",
        7,
    )
    assert (run.host, run.device, run.git_commit) == ("node1", "cpu (fp32)", "abc123")
    assert run.started_at == dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
    assert run.finished_at is not None and run.finished_at.tzinfo is not None
    assert (run.search_seconds, run.retrain_seconds, run.inference_seconds) == (30.0, 26.0, 0.25)
    assert (run.epochs, run.best_epoch, run.peak_memory_mb, run.search_steps) == (17, 7, 512.0, 100)
    assert run.inference_memory_mb == 48.5
    assert run.metrics == flat(result.metrics)
    assert run.config == result.config
    assert run.architecture is not None
    assert run.architecture["hidden"] == [32, 16] and run.architecture["depth"] == 2
    assert (run.flops, run.params, run.architecture["supernet_flops"]) == (54_321, 12_345, 543_210)


def test_real_result_round_trips_and_the_cli_recorded_it(store: ResultStore, real_run: tuple[Path, str]) -> None:
    run_dir, cli_db = real_run
    result = RunResult.read(run_dir / "result.json")
    run = store.get_run(store.ingest(run_dir))
    assert run.metrics == flat(result.metrics) and run.stage == "run" and run.dataset == "gowalla-100"
    assert run.flops == result.flops["model"] and run.params == result.n_params
    assert run.architecture is not None and run.architecture["hidden"] == result.architecture["hidden"]  # type: ignore[index]
    assert run.search_epochs == 1 and run.lam == result.config["search"]["lam"]
    assert run.method == result.config["search"]["method"] == "dnsrec"  # a real resolved config names it
    assert run.git_commit == result.environment["git_commit"]
    # the decision's commitment, worked out here from the trajectory's p and q alone (argmax, not its fields)
    assert result.search is not None and len(result.search["trajectory"]) == 1  # one search epoch: settled 1
    decision = result.search["trajectory"][0]
    depth = int(np.argmax(decision["q"])) + 1
    width_p = min(max(layer) for layer in decision["p"][:depth])
    assert (run.decision_width_p, run.decision_depth_q, run.decision_settled_epochs) == (
        pytest.approx(width_p),
        pytest.approx(max(decision["q"])),
        1,
    )
    cli = open_store(cli_db)  # `dnsrec run` recorded its own result (DESIGN.md: the caller records)
    assert [r.run_dir for r in cli.list_runs()] == [str(run_dir.resolve())]
    cli.close()


def test_recording_again_never_duplicates(store: ResultStore, make_result: Any, tmp_path: Path) -> None:
    first = store.record(make_result(), tmp_path / "a", sweep="s1", trial=1)
    n = counts(store)
    assert store.record(make_result(), tmp_path / "a") == first  # same directory: same row
    assert store.ingest(_write(make_result(), tmp_path / "a")) == first
    assert counts(store) == n == (1, 1, 12, 1)
    again = store.get_run(first)
    assert (again.sweep, again.trial) == ("s1", 1)  # kept: not given the second time
    store.record(make_result(ndcg=0.5), tmp_path / "a")  # a changed result updates the row
    assert store.get_run(first).metrics["test/pop100/ndcg@10"] == 0.5 and counts(store) == n


def _write(result: RunResult, run_dir: Path) -> Path:
    result.write(run_dir)
    return run_dir


def _with_metric(raw: dict[str, Any], value: float) -> dict[str, Any]:
    return {**raw, "metrics": {**raw["metrics"], "test": {**raw["metrics"]["test"], "pop100/ndcg@10": value}}}


def _bad_files(tmp_path: Path, good: RunResult) -> dict[str, tuple[Path, str]]:
    raw = json.loads(good.to_json())
    cases: dict[str, tuple[Any, str]] = {
        "truncated": (good.to_json()[:200], "not a readable result file"),
        "schema": ({**raw, "schema_version": 99}, "expected schema_version 1, got 99"),
        "nan": (None, "non-finite number NaN"),
        "above one": (_with_metric(raw, 1.5), "test/pop100/ndcg@10 = 1.5 is outside [0, 1]"),
        "below zero": (_with_metric(raw, -0.1), "test/pop100/ndcg@10 = -0.1 is outside [0, 1]"),
        "not utf-8": (bytes(range(128, 256)) * 4, "not a readable result file (UnicodeDecodeError"),
        "foreign": ({"hello": "world"}, "schema_version"),
        "missing": ({**raw, "metrics": {"test": raw["metrics"]["test"]}}, "required metrics missing"),
        "unknown key": ({**raw, "surprise": 1}, "unknown keys ['surprise']"),
        "bad flops": ({**raw, "flops": {"model": -1, "model_scoring": 1}}, "flops.model -1 is not a count"),
    }
    out = {}
    for name, (content, why) in cases.items():
        d = tmp_path / name.replace(" ", "_")
        d.mkdir()
        if name == "nan":
            text = json.dumps(_with_metric(raw, math.nan))  # Python's json writes NaN, which is not JSON
        elif isinstance(content, bytes):  # random bytes: not even text
            (d / "result.json").write_bytes(content)
            out[name] = (d, why)
            continue
        else:
            text = content if isinstance(content, str) else json.dumps(content)
        (d / "result.json").write_text(text)
        out[name] = (d, why)
    out["no file"] = (tmp_path / "empty", "no such result file")
    return out


def test_bad_result_files_are_refused_with_nothing_written(
    store: ResultStore, make_result: Any, tmp_path: Path
) -> None:
    for name, (run_dir, why) in _bad_files(tmp_path, make_result()).items():
        with pytest.raises(InvalidResult) as err:
            store.ingest(run_dir)
        assert why in str(err.value), name
        assert "result.json" in str(err.value), name
    with pytest.raises(InvalidResult, match="is not a finite number"):  # a RunResult handed in directly
        store.record(make_result(peak_memory_mb=math.inf), tmp_path / "inf")
    with pytest.raises(InvalidResult, match="inference_memory_mb nan is not a finite number"):
        store.record(make_result(inference_memory_mb=math.nan), tmp_path / "nan")
    with pytest.raises(InvalidResult, match=r"pop100/ndcg@10 = 1\.2 is outside \[0, 1\]"):
        store.record(make_result(ndcg=1.2), tmp_path / "above")
    assert counts(store) == (0, 0, 0, 0)


def test_statuses_failed_running_then_complete(store: ResultStore, make_result: Any, tmp_path: Path) -> None:
    config = make_result().config
    run_id = store.record_running(tmp_path / "t", stage="run", dataset="ml-100k", config=config, sweep="s", trial=0)
    assert store.get_run(run_id).status == "RUNNING" and store.get_run(run_id).lam == 0.1
    assert store.record(make_result(), tmp_path / "t") == run_id
    assert store.get_run(run_id).status == "COMPLETE"
    store.record_failure(tmp_path / "t", "CUDA out of memory", stage="run", dataset="ml-100k")
    failed = store.get_run(run_id)
    assert (failed.status, failed.failure_reason, failed.metrics, failed.architecture) == (
        "FAILED",
        "CUDA out of memory",
        {},
        None,
    )
    assert failed.sweep == "s" and failed.epochs is None
    with pytest.raises(InvalidResult, match="stage"):
        store.record_failure(tmp_path / "u", "x", stage="nope", dataset="ml-100k")


def test_concurrent_threads_lose_and_duplicate_nothing(store: ResultStore, make_result: Any, tmp_path: Path) -> None:
    result = make_result()

    def writer(w: int) -> None:
        for i in range(10):
            store.record(result, tmp_path / f"w{w}" / str(i), sweep="race", trial=10 * w + i)
            if i < 3:
                store.record(result, tmp_path / "shared" / str(i), sweep="race")  # the same rows, racing

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    assert counts(store) == (43, 43, 43 * 12, 1)
    assert sorted(r.trial for r in store.list_runs() if r.trial is not None) == list(range(40))


CHILD = """
import sys
from pathlib import Path
from dnsrec.run_result import RunResult
from dnsrec.results import open_store
url, template, prefix = sys.argv[1:]
store = open_store(url)  # every child opens (and migrates) the fresh database at the same moment
result = RunResult.read(Path(template))
for i in range(5):
    store.record(result, f"{prefix}/{i}", sweep="procs")
    store.record(result, f"{Path(prefix).parent}/shared/{i % 2}", sweep="procs")
"""


def test_concurrent_processes_on_a_fresh_database(db_url: str, make_result: Any, tmp_path: Path) -> None:
    template = make_result().write(tmp_path / "template")
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, db_url, str(template), str(tmp_path / f"p{n}")])
        for n in range(2)
    ]
    assert [c.wait(timeout=120) for c in children] == [0, 0]
    store = open_store(db_url)
    assert counts(store) == (12, 12, 12 * 12, 1)
    store.close()
