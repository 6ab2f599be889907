"""One process per run directory: a second process is refused, naming the first; the lock dies with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import TINY_TRAIN

from dnsrec.errors import RunDirInUse
from dnsrec.pipeline import claim_run_dir
from dnsrec.train import run_lock
from dnsrec.train.checkpoint import STAMP_FILE, ConfigStamp

HOLDER = (
    "import sys; from pathlib import Path; from dnsrec.train import run_lock; "
    "run_lock.hold(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()"
)


def _holder(run_dir: Path) -> subprocess.Popen[str]:
    """Another process holding `run_dir` until its stdin closes (or it is killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _holder(run_dir)
    try:
        with pytest.raises(RunDirInUse, match=rf"{run_dir} is in use by pid {proc.pid} on "):
            claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))
        assert not (run_dir / STAMP_FILE).exists()  # the refused run wrote no stamp under the holder
    finally:
        proc.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        proc.wait()
    claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))
    assert (run_dir / STAMP_FILE).exists()


def test_the_holding_process_claims_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))
    claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))  # search, then retraining, in one process
    proc = subprocess.run(  # and another process is refused while this one lives
        [sys.executable, "-c", HOLDER, str(run_dir)], input="", text=True, capture_output=True
    )
    assert proc.returncode != 0 and "RunDirInUse" in proc.stderr and "is in use by pid" in proc.stderr
    assert run_lock.LOCK_FILE in {p.name for p in run_dir.iterdir()}


def test_a_run_gives_its_directory_back_when_it_ends(tmp_path: Path) -> None:
    """A process that outlives its run (a Ray worker, a test) must not block a retry elsewhere."""
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="the run failed"), run_lock.scope(run_dir):
        claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))
        raise RuntimeError("the run failed")
    other = _holder(run_dir)  # another process takes it now
    other.kill()
    other.wait()


def test_a_run_inside_another_leaves_the_outer_ones_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with run_lock.scope(run_dir):
        claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))
        with run_lock.scope(run_dir):
            claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))
        proc = subprocess.run([sys.executable, "-c", HOLDER, str(run_dir)], input="", text=True, capture_output=True)
        assert proc.returncode != 0 and "is in use by pid" in proc.stderr


def test_train_run_holds_its_directory_only_while_it_runs(tmp_path: Path) -> None:
    from dnsrec.compose import compose
    from dnsrec.config.run import TrainRunConfig
    from dnsrec.pipeline import train_run

    cfg = TrainRunConfig.from_mapping(compose("train", [*TINY_TRAIN, "train.max_epochs=1"]))
    train_run(cfg, tmp_path / "run", log=lambda _: None)
    other = _holder(tmp_path / "run")  # given back: a resume in another process may start
    other.kill()
    other.wait()


def test_a_file_system_without_locks_runs_unguarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Some NFS mounts answer flock with ENOLCK: every run failing there would be worse than no guard."""
    import errno
    import fcntl

    def no_locks(fd: object, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run_dir = tmp_path / "run"
    claim_run_dir(run_dir, ConfigStamp({"lr": 0.001}))
    assert (run_dir / STAMP_FILE).exists()
    assert "running without the one-process-per-directory guard" in caplog.text
    assert run_dir.resolve() not in run_lock._held
