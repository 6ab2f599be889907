"""The sweep driver's state machine against a FAKE launcher, in process.

Why a fake: the real launchers run whole DNS-Rec runs in worker processes or on a SLURM cluster, so the
tests that use them (test_sweep_local.py, tests/launch/test_sweep_slurm.py) take minutes, need a cluster for
some paths, and cannot place a crash at an exact moment. Here a job is a scripted state (PENDING ->
RUNNING -> DONE after a few polls) whose outcome the test chooses, and the "worker" writes a small but valid
result.json, so every transition of the driver (complete, fail with the reason, retry, reap a lost job,
re-attach, resume after the driver was killed) is checked in a second or two per test (composing the
config and creating the databases take most of it), against the real Optuna study and results database
(SQLite). The driver itself is the real `Driver`; only its `Launcher`
is fake (the launcher contract is `dnsrec.launch.jobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sweep_support import states, study_trials, sweep_args

from dnsrec.compose import compose
from dnsrec.errors import Diverged, NoBestEpoch
from dnsrec.launch import JobFailed, JobState
from dnsrec.results import RunFilter, open_store
from dnsrec.run_result import RunResult
from dnsrec.sweep.driver import Driver, SweepSummary
from dnsrec.sweep.run import prepare
from dnsrec.sweep.study import open_study


class DriverKilled(BaseException):
    """The driver process dying at once (kill -9): nothing of the driver's own cleanup runs."""


def fake_metric(config: dict[str, Any]) -> float:
    return 0.1 + 0.5 * float(config["search"]["lam"])  # lam is in [1e-3, 1]: a valid fraction


def fake_result(config: dict[str, Any]) -> RunResult:
    """What a finished run would return for this point: a valid result of exactly this config."""
    ndcg = fake_metric(config)
    metrics = {
        split: {"pop100/ndcg@10": ndcg, "full/ndcg@10": ndcg / 2, "pop100/recall@10": min(1.0, 2 * ndcg)}
        for split in ("valid", "test")
    }
    return RunResult(
        stage="run", dataset=str(config["dataset"]["name"]), config=config, metrics=metrics, best_epoch=1,
        epochs=1, stopped="max_epochs", n_params=100, seconds_per_epoch=0.1, train_seconds=0.1,
        eval_seconds={"valid": 0.01, "test": 0.01}, flops={"model": 1000 * (1 + config["gates"]["layers"]),
        "model_scoring": 10},
    )  # fmt: skip


@dataclass
class Script:
    """What one submitted job does after `polls` polls of the driver: succeed, or fail with the reason
    `fails`; `lam`: the result it writes is of another point (this search.lam)."""

    fails: str | None = None
    polls: int = 1
    lam: float | None = None


OK = Script()


@dataclass
class FakeJob:
    job_id: str
    config: dict[str, Any]
    run_dir: Path
    script: Script
    polls_left: int
    status: JobState = JobState.PENDING
    cancelled: bool = False
    alive: bool = True  # still queued or running on the "cluster" (what adopt finds)

    def state(self) -> JobState:
        return self.status

    def result(self) -> Any:
        if self.cancelled:
            raise JobFailed("cancelled")
        if self.script.fails is not None:
            raise JobFailed(self.script.fails)
        return RunResult.read(self.run_dir / "result.json")

    def cancel(self) -> None:
        self.cancelled, self.alive, self.status = True, False, JobState.DONE

    def poll(self) -> None:
        if self.status is JobState.DONE:
            return
        self.status = JobState.RUNNING
        self.polls_left -= 1
        if self.polls_left <= 0:
            self.finish()

    def finish(self) -> None:
        """The worker ends: a successful one writes its run directory's result.json, as a real run does."""
        if self.script.fails is None:
            lam = self.config["search"]["lam"] if self.script.lam is None else self.script.lam
            fake_result({**self.config, "search": {**self.config["search"], "lam": lam}}).write(self.run_dir)
        self.status, self.alive = JobState.DONE, False


@dataclass
class FakeLauncher:
    """A launcher whose jobs are scripted; it outlives a driver, as a SLURM cluster does, so a restarted
    driver can `adopt` jobs still queued or running."""

    scripts: Callable[[int, dict[str, Any]], Script] = lambda n, config: OK  # by submission number
    kill_at_refresh: int | None = None  # raise DriverKilled at this refresh (counted over all drivers)
    name: str = "fake"
    jobs: list[FakeJob] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    refreshes: int = 0

    def check(self) -> None:
        pass

    def submit(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], names: Sequence[str]) -> list[FakeJob]:
        batch = []
        for command, config, run_dir in calls:
            assert command == "run", command  # a sweep trial is a whole DNS-Rec run
            script = self.scripts(len(self.jobs), config)
            job = FakeJob(f"fake-{len(self.jobs)}", config, Path(run_dir), script, script.polls)
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            self.jobs.append(job)
            batch.append(job)
        self.batches.append([j.job_id for j in batch])
        return batch

    def refresh(self) -> None:
        self.refreshes += 1
        if self.refreshes == self.kill_at_refresh:
            raise DriverKilled
        for job in self.jobs:
            job.poll()

    def adopt(self, job_id: str) -> FakeJob | None:
        return next((j for j in self.jobs if j.job_id == job_id and j.alive), None)

    def close(self) -> None:
        pass  # jobs outlive the driver here (local jobs die with it: adopt finds none of those)


@dataclass
class Sweep:
    tmp: Path
    name: str
    trials: int
    parallel: int
    extra: tuple[str, ...] = ()
    events: list[str] = field(default_factory=list)

    @property
    def db(self) -> str:
        return f"sqlite:///{self.tmp / 'results.db'}"

    def drive(self, launcher: FakeLauncher, store_wrapper: Callable[[Any], Any] = lambda s: s) -> SweepSummary:
        """One driver process: open the study and store, run the real Driver with the fake launcher."""
        args = sweep_args(self.name, self.trials, self.parallel, f"sweep.root={self.tmp / 'sweeps'}")
        raw = compose("sweep", [*args, "sweep.poll_seconds=0.001", "sweep.sampler=random", *self.extra])
        cfg, base, _ = prepare(raw)
        store = open_store(self.db)
        try:
            study = open_study(cfg, base, self.db)
            return Driver(cfg, base, store_wrapper(store), study, launcher, out=self.events.append).run()
        finally:
            store.close()

    def trials_now(self) -> list[Any]:
        return study_trials(self.tmp / "results.db", self.name)

    def rows(self) -> list[Any]:
        store = open_store(self.db)
        try:
            return store.list_runs(RunFilter(sweep=self.name))
        finally:
            store.close()


def test_completed_trials_are_recorded_and_told(tmp_path: Path) -> None:
    sweep, launcher = Sweep(tmp_path, "ok", trials=3, parallel=2), FakeLauncher()
    summary = sweep.drive(launcher)
    assert summary.complete == 3 and summary.failed_here == 0
    assert [len(b) for b in launcher.batches] == [2, 1]  # free slots submitted together, never more than parallel

    trials = sweep.trials_now()
    assert states(trials) == {"COMPLETE": 3}
    rows = {r.trial: r for r in sweep.rows()}
    for t in trials:  # told the values of its own result; recorded COMPLETE with them
        config = RunResult.read(Path(t.user_attrs["run_dir"]) / "result.json").config
        assert t.values == [pytest.approx(fake_metric(config)), 1000 * (1 + t.params["gates.layers"])]
        assert rows[t.number].status == "COMPLETE" and rows[t.number].run_dir == t.user_attrs["run_dir"]
    assert sum("complete in" in e for e in sweep.events) == 3


def test_a_failing_worker_fails_its_trial_with_the_reason_and_the_point_is_retried(tmp_path: Path) -> None:
    crash = "worker process killed by signal SIGKILL without a result; last log lines: ..."
    launcher = FakeLauncher(scripts=lambda n, config: Script(fails=crash) if n == 0 else OK)
    sweep = Sweep(tmp_path, "crash", trials=2, parallel=1)
    summary = sweep.drive(launcher)
    assert summary.complete == 2 and summary.failed_here == 1

    trials = sweep.trials_now()
    assert states(trials) == {"COMPLETE": 2, "FAIL": 1}
    (failed,) = [t for t in trials if t.state.name == "FAIL"]
    assert failed.user_attrs["fail_reason"] == crash
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == failed.number)
    assert retry.state.name == "COMPLETE" and retry.params == failed.params and retry.user_attrs["attempt"] == 2
    assert retry.user_attrs["run_dir"] == failed.user_attrs["run_dir"]  # resumes in its first directory
    (row,) = [r for r in sweep.rows() if r.run_dir == failed.user_attrs["run_dir"]]
    assert row.status == "COMPLETE"  # the retry's completion replaced the failure row (one row per run dir)
    assert any(f"trial {failed.number} FAILED: {crash} -> retried as attempt 2" in e for e in sweep.events)


@pytest.mark.parametrize(
    "deterministic",
    [
        f"{Diverged.MARK} the training loss is nan at epoch 1",
        f"{NoBestEpoch.MARK} the search stopped (epochs): no search epoch ended after an architecture step",
    ],
)
def test_retries_run_out_and_a_diverged_run_is_not_retried(tmp_path: Path, deterministic: str) -> None:
    # a diverged run, or any failure the same point meets again (dnsrec.errors.DETERMINISTIC_MARKS)

    def scripts(n: int, config: dict[str, Any]) -> Script:
        return Script(fails="exited with code 1") if n < 2 else Script(fails=deterministic) if n == 2 else OK

    sweep = Sweep(tmp_path, "spent", trials=1, parallel=1, extra=("sweep.retries=1", "sweep.max_failures=5"))
    summary = sweep.drive(FakeLauncher(scripts=scripts))
    assert summary.complete == 1 and summary.failed_here == 3

    trials = sweep.trials_now()
    first, second, third, fourth = trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "FAIL", "COMPLETE"]
    assert second.params == first.params and second.user_attrs["attempt"] == 2  # its one retry, spent
    assert third.params != first.params and third.user_attrs["attempt"] == 1  # a new point ...
    assert fourth.params != third.params  # ... that diverged: not asked again
    assert any(f"trial {second.number} FAILED: exited with code 1 (no retry left)" in e for e in sweep.events)
    assert f"trial {third.number} FAILED: {deterministic}" in sweep.events  # no retry offered


def test_a_result_that_is_not_the_trials_own_fails_it(tmp_path: Path) -> None:
    launcher = FakeLauncher(scripts=lambda n, config: Script(lam=0.5) if n == 0 else OK)
    sweep = Sweep(tmp_path, "foreign", trials=1, parallel=1)
    assert sweep.drive(launcher).complete == 1
    first, retry = sweep.trials_now()
    assert first.state.name == "FAIL" and retry.state.name == "COMPLETE" and retry.params == first.params
    assert "is not this trial's result: search.lam is 0.5" in first.user_attrs["fail_reason"]


def test_a_killed_driver_is_resumed_without_losing_or_duplicating_trials(tmp_path: Path) -> None:
    """Driver 1 completes job 0, submits job 3 and dies (kill -9) while jobs 1-3 run. While it is dead,
    job 2 finishes (its result.json is there), job 3 vanishes without a result (a lost node), job 1 keeps
    running. Driver 2: completes job 2's trial from its result.json, re-attaches to job 1, fails job 3's
    trial as lost and retries its point in the same directory (a loss of the driver spends no retry)."""
    slow = Script(polls=4)
    launcher = FakeLauncher(scripts=lambda n, config: slow if n in (1, 2, 3) else OK, kill_at_refresh=2)
    sweep = Sweep(tmp_path, "killed", trials=4, parallel=3)
    with pytest.raises(DriverKilled):
        sweep.drive(launcher)
    before = sweep.trials_now()
    assert states(before) == {"COMPLETE": 1, "RUNNING": 3}
    assert launcher.batches == [["fake-0", "fake-1", "fake-2"], ["fake-3"]]

    # while no driver runs
    job2, job3 = launcher.jobs[2:4]
    job2.finish()
    job3.alive, job3.status = False, JobState.DONE  # gone from the cluster, no result.json
    trial_of = {t.user_attrs["job_id"]: t for t in before}
    launcher.kill_at_refresh = None

    summary = sweep.drive(launcher)
    assert summary.complete == 4
    after = sweep.trials_now()
    assert states(after) == {"COMPLETE": 4, "FAIL": 1}  # nothing RUNNING or WAITING is left
    assert after[trial_of["fake-1"].number].state.name == "COMPLETE"  # re-attached, then finished
    assert after[trial_of["fake-2"].number].state.name == "COMPLETE"  # from its result.json
    lost = after[trial_of["fake-3"].number]
    assert lost.state.name == "FAIL" and lost.user_attrs["fail_reason"].startswith("lost: the sweep driver stopped")
    retry = next(t for t in after if t.user_attrs.get("retry_of") == lost.number)
    assert retry.state.name == "COMPLETE" and retry.params == lost.params
    assert retry.user_attrs["run_dir"] == lost.user_attrs["run_dir"] and retry.user_attrs["attempt"] == 1
    assert any(f"trial {trial_of['fake-1'].number}: re-attached to job fake-1" in e for e in sweep.events)
    assert len(launcher.jobs) == 5  # only the lost point ran again; job 1 was not submitted twice

    rows = sweep.rows()
    assert len(rows) == 4 and {r.status for r in rows} == {"COMPLETE"}  # one row per run directory
    assert {r.trial for r in rows} == {t.number for t in after if t.state.name == "COMPLETE"}


def test_a_driver_killed_between_recording_and_telling_records_once(tmp_path: Path) -> None:
    """Recorded in the database, killed before Optuna was told: the next driver finds the trial RUNNING
    with its result.json, records it again (an upsert, not a second row) and tells it."""

    class DiesAfterRecording:
        def __init__(self, store: Any) -> None:
            self.store = store

        def __getattr__(self, name: str) -> Any:
            return getattr(self.store, name)

        def record(self, *args: Any, **kw: Any) -> None:
            self.store.record(*args, **kw)
            raise DriverKilled

    sweep = Sweep(tmp_path, "told", trials=2, parallel=1)
    launcher = FakeLauncher()
    with pytest.raises(DriverKilled):
        sweep.drive(launcher, store_wrapper=DiesAfterRecording)
    assert states(sweep.trials_now()) == {"RUNNING": 1}
    assert [r.status for r in sweep.rows()] == ["COMPLETE"]

    summary = sweep.drive(launcher)
    assert summary.complete == 2 and len(launcher.jobs) == 2  # the recorded trial was not run again
    assert states(sweep.trials_now()) == {"COMPLETE": 2}
    rows = sweep.rows()
    assert len(rows) == 2 and sorted(r.trial for r in rows) == [0, 1]
