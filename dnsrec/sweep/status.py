"""One status line for a sweep, computed from its Optuna trials alone, so the driver and
`dnsrec results status SWEEP` (run anywhere that reaches the database) show the same thing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SweepStatus:
    name: str
    target: int
    complete: int
    running: int
    failed: int
    waiting: int  # retries queued for the next free slot
    best: str  # the best point so far, in words
    eta_seconds: float | None

    def line(self) -> str:
        eta = "ETA --" if self.eta_seconds is None else f"ETA {_duration(self.eta_seconds)}"
        if self.complete >= self.target and not self.running:
            eta = "done"
        return (
            f"sweep {self.name}: {self.complete}/{self.target} done, {self.running} in flight, {self.failed} failed"
            + (f", {self.waiting} queued retries" if self.waiting else "")
            + f" | {self.best} | {eta}"
        )


def sweep_status(name: str, trials: list[Any], target: int, parallel: int, objectives: list[str]) -> SweepStatus:
    """`trials`: Optuna FrozenTrials of the study; `objectives` as in SweepConfig (ndcg first)."""
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE]
    running = [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    best = "no result yet"
    feasible = [t for t in done if all(v <= 0 for v in (t.constraints or {}).values())]
    if done and not feasible:
        best = "no trial within the FLOPs budget yet"
    if feasible:
        top = max(feasible, key=lambda t: t.values[0])
        best = f"best ndcg {top.values[0]:.4f} (trial {top.number}"
        if len(top.values) > 1:
            best += f", {top.values[1] / 1e6:.2f}M FLOPs; front of {len(_front(done))}"
        best += ")"
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done if t.datetime_start]
    eta = None
    if durations:
        remaining = max(0, target - len(done))
        eta = sum(durations) / len(durations) * math.ceil(remaining / max(1, parallel))
    return SweepStatus(name, target, len(done), len(running), len(failed), len(waiting), best, eta)


def _front(done: list[Any]) -> list[Any]:
    """Trials not dominated in (ndcg up, FLOPs down)."""
    return [
        t
        for t in done
        if not any(
            o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and tuple(o.values) != tuple(t.values)
            for o in done
        )
    ]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
