"""The sweep driver: an Optuna ask/tell loop over whole DNS-Rec runs, executed by a launcher.

The driver is the single writer of the study and of the results database (DESIGN.md): workers only write
their run directories. It keeps up to `parallel` trials in flight and submits the free slots together
(one SLURM job array per batch). Each result is validated and recorded as it arrives, then told to
Optuna: recording first means a driver killed between the two re-records (an upsert) and tells on its
next start. A failed or lost job becomes a FAILED trial with its reason and is retried with the same
parameters, in the same run directory (so it resumes from its checkpoints), up to `sweep.retries` times.
A trial's directory holding another config's run (a `sweep.root` reused by another study) is never
resumed: the trial starts fresh in `<dir>-2` (checkpoints carry their config's stamp, dnsrec.pipeline).

Started again with the same command, the driver continues the same study: trials left RUNNING by a
driver that died are completed from their result.json, re-attached (SLURM jobs still queued or
running), or failed as lost and retried, and it stops at exactly `sweep.trials` COMPLETE trials.
Ctrl-C (or SIGTERM) cancels the jobs in flight and fails their trials with a queued retry.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsrec.config.sweep import SweepConfig
from dnsrec.config.sweep_space import apply, params_text
from dnsrec.errors import DETERMINISTIC_MARKS, ConfigError, DNSRecError
from dnsrec.launch import Job, JobFailed, JobState, Launcher, LaunchError
from dnsrec.results import ResultStore, SlurmInfo
from dnsrec.run_result import RESULT_FILE, RunResult
from dnsrec.sweep.lease import LeaseKeeper
from dnsrec.sweep.status import sweep_status
from dnsrec.worker import run_point

STAGE = "run"


class SweepError(DNSRecError):
    pass


class SweepInterrupted(SweepError):
    exit_code = 130  # as a shell reports Ctrl-C


@dataclass
class InFlight:
    trial: Any  # optuna.trial.Trial
    params: dict[str, Any]
    run_dir: Path
    attempt: int
    job: Job
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class SweepSummary:
    name: str
    complete: int
    failed_here: int  # trials failed during this invocation
    best: list[dict[str, Any]]  # the best trial (one objective) or the Pareto front (two)
    submit_seconds_per_trial: float
    record_seconds_per_trial: float
    wall_seconds: float
    status_line: str


class Driver:
    def __init__(
        self,
        cfg: SweepConfig,
        base: dict[str, Any],
        store: ResultStore,
        study: Any,
        launcher: Launcher,
        out: Callable[[str], None] = print,
        lease: LeaseKeeper | None = None,
    ) -> None:
        self.cfg, self.base, self.store, self.study, self.launcher, self.out = cfg, base, store, study, launcher, out
        self.lease = lease
        self.sweep_dir = cfg.directory
        self.dataset = str(base.get("dataset", {}).get("name", "?"))
        self.inflight: list[InFlight] = []
        self.failed_here = 0
        self.submit_seconds: list[float] = []
        self.record_seconds: list[float] = []
        self._last_line = ""

    # -- the loop --------------------------------------------------------------------------------------

    def run(self) -> SweepSummary:
        start = time.monotonic()
        self.store.ensure_sweep(self.cfg.name, self.dataset, {"sweep": self.cfg.study_attrs(), "base": self.base})
        stop = threading.Event()
        try:
            with _stop_signals(stop):
                self._check_lease()
                self._reconcile()
                while True:
                    self._check_lease()
                    self._fill()
                    self.launcher.refresh()
                    for f in [f for f in self.inflight if f.job.state() is JobState.DONE]:
                        self._finish(f)
                    self._status()
                    if not self.inflight and self._complete() >= self.cfg.trials:
                        break  # finished, even if a stop signal came during this last pass
                    if stop.wait(self.cfg.poll_seconds):
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            self._interrupt()
            raise SweepInterrupted(
                f"sweep {self.cfg.name} interrupted: {self._complete()} of {self.cfg.trials} trials complete; "
                "run the same command again to continue"
            ) from None
        finally:
            self.launcher.close()
        return self._summary(time.monotonic() - start)

    def _check_lease(self) -> None:
        """Stop (LeaseLost, nothing written) once another driver has taken this sweep over."""
        if self.lease is not None:
            self.lease.check()

    def _complete(self) -> int:
        from optuna.trial import TrialState

        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def _fill(self) -> None:
        """Ask for as many trials as free slots and trials still needed, and submit them as one batch."""
        want = min(self.cfg.parallel - len(self.inflight), self.cfg.trials - self._complete() - len(self.inflight))
        if want <= 0:
            return
        t0 = time.perf_counter()
        batch: list[tuple[Any, dict[str, Any], dict[str, Any], Path, int]] = []
        for _ in range(want):
            trial = self.study.ask()
            params = {p.key: p.suggest(trial) for p in self.cfg.space}
            attrs = trial.user_attrs
            run_dir = Path(attrs.get("run_dir") or self.sweep_dir / f"trial-{trial.number:04d}").resolve()
            attempt = int(attrs.get("attempt", 1))
            trial.set_user_attr("attempt", attempt)
            try:
                config = apply(self.base, params)
                run_dir = self._own_run_dir(trial.number, run_dir, validate_run_config(config))
            except ConfigError as e:  # a point the run refuses: fail it for good, never retry it
                trial.set_user_attr("run_dir", str(run_dir))
                self._fail_trial(trial, params, run_dir, attempt, f"invalid run config: {e}", retry=False)
                continue
            trial.set_user_attr("run_dir", str(run_dir))
            batch.append((trial, params, config, run_dir, attempt))
        if not batch:
            return
        names = [f"{self.cfg.name}-{trial.number}" for trial, *_ in batch]
        try:
            jobs = self.launcher.submit(
                run_point, [("run", config, str(run_dir)) for _, _, config, run_dir, _ in batch], names
            )
        except LaunchError as e:
            # The driver carries on (a full disk under sweep.root once killed it): each trial FAILED with the
            # reason, using up one of its retries, and the sweep stops with that reason only at its limit of
            # failures (sweep.max_failures).
            for trial, params, _, run_dir, attempt in batch:
                self._fail_trial(trial, params, run_dir, attempt, f"not submitted: {e}", retry=True)
            return
        for (trial, params, config, run_dir, attempt), job in zip(batch, jobs, strict=True):
            trial.set_user_attr("job_id", job.job_id)
            self.store.record_running(
                run_dir, stage=STAGE, dataset=self.dataset, config=config, sweep=self.cfg.name,
                trial=trial.number, launcher=self.launcher.name, slurm=_slurm_info(self.launcher.name, job.job_id),
            )  # fmt: skip
            self.inflight.append(InFlight(trial, params, run_dir, attempt, job))
            retry = f" (attempt {attempt}, resuming {run_dir.name})" if attempt > 1 else ""
            self._event(f"trial {trial.number} submitted as job {job.job_id}: {params_text(params)}{retry}")
        self.submit_seconds.append((time.perf_counter() - t0) / len(batch))

    def _own_run_dir(self, number: int, run_dir: Path, stamp: Any) -> Path:
        """`run_dir`, or where it holds another config's run (a `sweep.root` reused by another study, a
        changed base config), the first free `<run_dir>-<k>`: a trial starts fresh, never mixing."""
        from dnsrec.pipeline import run_dir_conflict

        candidate, k = run_dir, 1
        while (conflict := run_dir_conflict(candidate, stamp)) is not None:
            k += 1
            candidate = run_dir.with_name(f"{run_dir.name}-{k}")
            self._event(f"trial {number}: not resuming there: {conflict}; starting fresh in {candidate}")
        return candidate

    def _finish(self, f: InFlight) -> None:
        self.inflight.remove(f)
        try:
            value = f.job.result()
        except JobFailed as e:
            # A diverged run (or one left without a best epoch) fails again with the same point and seed: a
            # retry would only spend its time.
            self._fail(f, e.reason, retry=not any(mark in e.reason for mark in DETERMINISTIC_MARKS))
            return
        t0 = time.perf_counter()
        try:
            result = self._checked_result(value, f)
        except DNSRecError as e:
            self._fail(f, str(e))
            return
        self._complete_trial(f.trial, f.params, f.run_dir, result, f.job.job_id, time.monotonic() - f.submitted)
        self.record_seconds.append(time.perf_counter() - t0)

    def _complete_trial(
        self, trial: Any, params: dict[str, Any], run_dir: Path, result: RunResult, job_id: str | None, seconds: float
    ) -> None:
        values = _objective_values(result, self.cfg)
        self.store.record(
            result, run_dir, sweep=self.cfg.name, trial=trial.number, launcher=self.launcher.name,
            slurm=_slurm_info(self.launcher.name, job_id),
        )  # fmt: skip
        if self.cfg.flops_budget is not None:
            trial.set_constraint("flops_over_budget", float(result.flops["model"]) - self.cfg.flops_budget)
        self.study.tell(trial, values)
        shown = ", ".join(f"{n} {v:.4g}" for n, v in zip(self.cfg.objectives, values, strict=True))
        self._event(f"trial {trial.number} complete in {seconds:.0f} s: {shown} ({params_text(params)})")

    def _fail(self, f: InFlight, reason: str, retry: bool = True, count: bool = True) -> None:
        self._fail_trial(f.trial, f.params, f.run_dir, f.attempt, reason, retry, count)

    def _fail_trial(
        self,
        trial: Any,
        params: dict[str, Any],
        run_dir: Path,
        attempt: int,
        reason: str,
        retry: bool,
        count: bool = True,
    ) -> None:
        """FAILED with its reason, in the study and the database; the same point queued again if allowed.
        `count`: a failure of the job itself (not of the driver) uses up one of the point's retries."""
        from optuna.trial import TrialState

        trial.set_user_attr("fail_reason", reason[:2000])
        self.store.record_failure(
            run_dir, reason, stage=STAGE, dataset=self.dataset, config=apply(self.base, params) if params else None,
            sweep=self.cfg.name, trial=trial.number, launcher=self.launcher.name,
        )  # fmt: skip
        self.study.tell(trial, state=TrialState.FAIL)
        next_attempt = attempt + 1 if count else attempt
        will_retry = retry and next_attempt <= self.cfg.retries + 1
        if will_retry:
            self.study.enqueue_trial(
                params, user_attrs={"run_dir": str(run_dir), "attempt": next_attempt, "retry_of": trial.number}
            )
        self._event(
            f"trial {trial.number} FAILED: {reason}"
            + (f" -> retried as attempt {next_attempt}" if will_retry else " (no retry left)" if retry else "")
        )
        if count:
            self.failed_here += 1
            if self.failed_here >= self.cfg.failure_limit:
                raise SweepError(
                    f"sweep {self.cfg.name}: {self.failed_here} trials failed in this run (limit "
                    f"sweep.max_failures={self.cfg.failure_limit}); last reason: {reason}"
                )

    def _checked_result(self, value: Any, f: InFlight) -> RunResult:
        """Never trust a result blindly: it must be a valid RunResult of this trial's config and point."""
        result = value if isinstance(value, RunResult) else RunResult.read(f.run_dir / RESULT_FILE)
        _check_belongs(result, f.params, f.run_dir)
        return result

    # -- restart and interruption ----------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Trials a previous driver left RUNNING: complete, re-attach or fail each (nothing stays RUNNING)."""
        from optuna.trial import Trial, TrialState

        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial = Trial(self.study, frozen._trial_id)
            params = dict(frozen.params)
            run_dir = Path(frozen.user_attrs.get("run_dir") or self.sweep_dir / f"trial-{frozen.number:04d}")
            attempt = int(frozen.user_attrs.get("attempt", 1))
            job_id = frozen.user_attrs.get("job_id")
            if (run_dir / RESULT_FILE).is_file():
                try:
                    result = RunResult.read(run_dir / RESULT_FILE)
                    _check_belongs(result, params, run_dir)
                except DNSRecError as e:
                    self._fail_trial(
                        trial, params, run_dir, attempt, f"result left by a lost job is invalid: {e}", True
                    )
                    continue
                self._complete_trial(trial, params, run_dir, result, job_id, 0.0)
                continue
            job = self.launcher.adopt(job_id) if job_id else None
            if job is not None:
                self.inflight.append(InFlight(trial, params, run_dir, attempt, job))
                self._event(f"trial {frozen.number}: re-attached to job {job_id}, still queued or running")
                continue
            reason = "lost: the sweep driver stopped while this trial ran, and its job left no result"
            self._fail_trial(trial, params, run_dir, attempt, reason, retry=True, count=False)

    def _interrupt(self) -> None:
        for f in list(self.inflight):
            f.job.cancel()
            self.inflight.remove(f)
            self._fail(f, "interrupted: the sweep driver was stopped", retry=True, count=False)

    # -- output ----------------------------------------------------------------------------------------

    def status_line(self) -> str:
        status = sweep_status(
            self.cfg.name, self.study.get_trials(deepcopy=False), self.cfg.trials, self.cfg.parallel,
            list(self.cfg.objectives),
        )  # fmt: skip
        return status.line()

    def _status(self) -> None:
        line = self.status_line()
        if sys.stdout.isatty():
            sys.stdout.write("\r\x1b[K" + line)
            sys.stdout.flush()
        elif line.split(" | ")[:2] != self._last_line.split(" | ")[:2]:
            self.out(line)
        self._last_line = line

    def _event(self, text: str) -> None:
        if sys.stdout.isatty():
            sys.stdout.write("\r\x1b[K")
        self.out(text)

    def _summary(self, wall: float) -> SweepSummary:
        from optuna.trial import TrialState

        done = [t for t in self.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        best = self.study.best_trials if done else []  # only trials within the FLOPs budget, if one is set
        rows = [
            {
                "trial": t.number,
                "values": list(t.values),
                "params": dict(t.params),
                "run_dir": t.user_attrs.get("run_dir"),
            }
            for t in sorted(best, key=lambda t: -t.values[0])
        ]
        line = self.status_line()
        if sys.stdout.isatty():
            sys.stdout.write("\r\x1b[K")
        return SweepSummary(
            self.cfg.name, len(done), self.failed_here, rows, _mean(self.submit_seconds), _mean(self.record_seconds),
            wall, line,
        )  # fmt: skip


def validate_run_config(config: dict[str, Any]) -> Any:
    """The run's ConfigStamp (`dnsrec.pipeline.run_stamp`); ConfigError where the run would refuse it."""
    from dnsrec.config.run import RunConfig
    from dnsrec.pipeline import run_stamp

    return run_stamp(STAGE, RunConfig.from_mapping(config))


def _objective_values(result: RunResult, cfg: SweepConfig) -> list[float]:
    split, rest = cfg.metric.split("/", 1)
    try:
        quality = float(result.metrics[split][rest])
    except KeyError as e:
        raise SweepError(f"result has no metric {cfg.metric} (has {sorted(result.metrics.get(split, {}))})") from e
    values = [quality]
    if "flops" in cfg.objectives:
        values.append(float(result.flops["model"]))
    if not all(math.isfinite(v) for v in values):
        raise SweepError(f"non-finite objective values {values}")
    return values


def _check_belongs(result: RunResult, params: dict[str, Any], run_dir: Path) -> None:
    """A result fit for the database (finite metrics in [0, 1], ...) of this trial's point, else SweepError,
    so the trial fails with the reason instead of the driver dying at recording."""
    from dnsrec.results.extract import problems

    found = problems(result)
    if found:
        raise SweepError(f"{run_dir / RESULT_FILE} is not a valid result: {'; '.join(found[:6])}")
    if result.stage != STAGE:
        raise SweepError(f"{run_dir / RESULT_FILE}: a '{result.stage}' result, expected a '{STAGE}' run")
    for key, want in params.items():
        got = _config_value(result.config, key)
        same = got == want or (
            isinstance(got, int | float) and isinstance(want, int | float) and math.isclose(got, want)
        )
        if not same:
            raise SweepError(f"{run_dir / RESULT_FILE} is not this trial's result: {key} is {got!r}, expected {want!r}")


def _config_value(config: dict[str, Any], key: str) -> Any:
    """A dotted key in a result's config; the run-level shortcuts lr/seed/batch live under `train`."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _config_value(config, f"train.{key}") if "." not in key and "train" in config else None
        node = node[part]
    return node


def _slurm_info(launcher: str, job_id: str | None) -> SlurmInfo | None:
    if launcher != "slurm" or not job_id:
        return None
    array, _, task = job_id.partition("_")
    return SlurmInfo(job_id, array if task else None, int(task) if task.isdigit() else None)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@contextmanager
def _stop_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM (Ctrl-C, `scancel` of the driver's own job, `kill`) both stop the driver cleanly,
    even where SIGINT was inherited as ignored (a background job of a non-interactive shell).

    The first signal only sets `stop`: the loop ends at its next check, so a storage query or a result
    being recorded is never cut in half (an interrupt inside an SQLite read left the database locked for
    the cancellation that followed). A second signal raises KeyboardInterrupt at once."""

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
