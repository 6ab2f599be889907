"""`dnsrec measure-memory`: runs recorded before every run measured its inference memory get the figure the run
would have taken itself. Checked against the run's own measurement: tiny real runs (a DNS-Rec search and an
FDSA, whose model needs the data's item features) record the figure, lose it as an old result.json never had
it, and the command must give it back, with a note saying it was measured later, the rest of the result and
the database row's identity untouched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tiny_runs import TINY_RUN, TINY_TRAIN

from dnsrec.cli import main
from dnsrec.remeasure import MEASURED_LATER
from dnsrec.results import open_store
from dnsrec.run_result import RESULT_FILE, RunResult


def _forget_the_figure(run_dir: Path) -> RunResult:
    """result.json as the run would have written it before inference memory was measured; the recorded value."""
    recorded = RunResult.read(run_dir / RESULT_FILE)
    assert recorded.inference_memory_mb is not None
    dataclasses.replace(recorded, inference_memory_mb=None).write(run_dir)
    return recorded


def test_measure_memory_gives_back_what_the_runs_measured(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    searched, fdsa = tmp_path / "run", tmp_path / "fdsa"
    assert main(["run", *TINY_RUN, f"run_dir={searched}", "--db", url]) == 0
    assert main(["train", *TINY_TRAIN, "model=fdsa", "train.max_epochs=1", f"run_dir={fdsa}", "--db", url]) == 0
    recorded = {d: _forget_the_figure(d) for d in (searched, fdsa)}
    store = open_store(url)
    try:
        ids = {d: store.ingest(d) for d in (searched, fdsa)}  # the rows now hold no figure, as old rows do
        assert all(store.get_run(i).inference_memory_mb is None for i in ids.values())
    finally:
        store.close()

    assert main(["measure-memory", str(searched), str(fdsa), "--db", url]) == 0
    assert "2 of 2 run directories have their inference memory" in capsys.readouterr().out
    store = open_store(url)
    try:
        for run_dir, before in recorded.items():
            after = RunResult.read(run_dir / RESULT_FILE)
            # the same function on the same model and users: the profiler's allocation events are the same
            assert after.inference_memory_mb == pytest.approx(before.inference_memory_mb, rel=1e-3)
            assert after.notes[:-1] == before.notes and after.notes[-1].startswith(MEASURED_LATER)
            assert after.metrics == before.metrics and after.flops == before.flops
            row = store.get_run(ids[run_dir])  # the same row, updated
            assert Path(row.run_dir) == run_dir.resolve()
            assert row.inference_memory_mb == pytest.approx(after.inference_memory_mb)
            assert row.status == "COMPLETE"
    finally:
        store.close()

    # a second call leaves measured results exactly as they are, and brings another database's row up to them
    files = {d: (d / RESULT_FILE).read_bytes() for d in recorded}
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        # the run as a database written before the figure existed holds it
        other_id = other.record(dataclasses.replace(recorded[searched], inference_memory_mb=None), searched)
        assert other.get_run(other_id).inference_memory_mb is None
        assert main(["measure-memory", str(searched), "--db", other.url]) == 0
        assert "has its inference memory already" in capsys.readouterr().out
        assert all((d / RESULT_FILE).read_bytes() == b for d, b in files.items())
        measured = RunResult.read(searched / RESULT_FILE).inference_memory_mb
        assert other.get_run(other_id).inference_memory_mb == pytest.approx(measured)
    finally:
        other.close()


def test_measure_memory_names_what_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "train"
    assert main(["train", *TINY_TRAIN, "train.max_epochs=1", f"run_dir={run_dir}", "--no-db"]) == 0
    _forget_the_figure(run_dir)
    (run_dir / "best.pt").unlink()
    assert main(["measure-memory", str(run_dir), str(tmp_path / "nothing"), "--no-db"]) == 2
    err = capsys.readouterr().err
    assert "best.pt" in err and f"{tmp_path / 'nothing' / RESULT_FILE} does not exist" in err
    assert RunResult.read(run_dir / RESULT_FILE).inference_memory_mb is None  # nothing half-written


def test_measure_memory_refuses_another_device(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A run that scored on a GPU (here written into its result: no GPU on this machine) is not measured on a CPU."""
    run_dir = tmp_path / "train"
    assert main(["train", *TINY_TRAIN, "train.max_epochs=1", f"run_dir={run_dir}", "--no-db"]) == 0
    result = _forget_the_figure(run_dir)
    gpu = {**result.environment, "device": "NVIDIA H200 (bf16)"}
    dataclasses.replace(result, inference_memory_mb=None, environment=gpu).write(run_dir)
    assert main(["measure-memory", str(run_dir), "--no-db"]) == 2
    assert "the run scored on 'NVIDIA H200 (bf16)', this machine on 'cpu (fp32)'" in capsys.readouterr().err
    assert RunResult.read(run_dir / RESULT_FILE).inference_memory_mb is None
