"""`RunView`: a run as plain values, detached from any database session.

Why: queries hand out values that stay valid after their transaction ends (no lazy loading surprises),
print and export the same way on every backend, and compare by value in tests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from dnsrec.results.extract import MetricKey
from dnsrec.results.models import ArchitectureRow, Run

# Scalar columns of `dnsrec_runs` copied into a view, in display/export order.
RUN_FIELDS = (
    "id", "status", "stage", "method", "dataset", "sweep", "trial", "attention", "lam", "gate_layers", "lr",
    "seed", "shape", "init", "search_epochs", "batch", "epochs", "best_epoch", "stopped", "search_best_epoch",
    "search_steps", "decision_width_p", "decision_depth_q", "decision_settled_epochs", "search_seconds",
    "retrain_seconds", "inference_seconds", "train_seconds", "seconds_per_epoch", "peak_memory_mb",
    "inference_memory_mb", "launcher",
    "slurm_job_id", "slurm_array_job_id", "slurm_array_task_id", "host", "device", "git_commit", "started_at",
    "finished_at", "recorded_at", "run_dir", "failure_reason", "result_sha256",
)  # fmt: skip
ARCH_FIELDS = (
    "flops", "scoring_flops", "params", "depth", "d", "d_inner", "head_dim", "hidden", "inner_widths",
    "candidates", "gate_layers", "supernet_flops", "supernet_scoring_flops", "supernet_params",
)  # fmt: skip


@dataclass
class RunView:
    id: int
    run_dir: str
    status: str
    stage: str
    dataset: str
    method: str | None = None  # search method or model family (`extract.method_of`)
    sweep: str | None = None
    trial: int | None = None
    failure_reason: str | None = None
    attention: str | None = None
    lam: float | None = None
    gate_layers: int | None = None
    lr: float | None = None
    seed: int | None = None
    shape: str | None = None
    init: str | None = None
    search_epochs: int | None = None
    batch: int | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    stopped: str | None = None
    search_best_epoch: int | None = None
    search_steps: int | None = None
    decision_width_p: float | None = None
    decision_depth_q: float | None = None
    decision_settled_epochs: int | None = None
    search_seconds: float | None = None
    retrain_seconds: float | None = None
    inference_seconds: float | None = None
    train_seconds: float | None = None
    seconds_per_epoch: float | None = None
    peak_memory_mb: float | None = None
    inference_memory_mb: float | None = None
    launcher: str = "local"
    slurm_job_id: str | None = None
    slurm_array_job_id: str | None = None
    slurm_array_task_id: int | None = None
    host: str | None = None
    device: str | None = None
    git_commit: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    recorded_at: dt.datetime | None = None
    result_sha256: str | None = None
    architecture: dict[str, Any] | None = None  # ARCH_FIELDS -> value
    metrics: dict[str, float] = field(default_factory=dict)  # "test/pop100/ndcg@10" -> value
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def flops(self) -> int | None:
        return self.architecture["flops"] if self.architecture else None

    @property
    def params(self) -> int | None:
        return self.architecture["params"] if self.architecture else None

    def value(self, name: str) -> Any:
        """A metric (`test/pop100/ndcg@10`), a run field or an architecture field by name; None if absent."""
        if name in self.metrics:
            return self.metrics[name]
        if name in RUN_FIELDS:
            return getattr(self, name)
        return self.architecture.get(name) if self.architecture is not None and name in ARCH_FIELDS else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("started_at", "finished_at", "recorded_at"):
            out[name] = out[name].isoformat() if out[name] else None
        return out

    @staticmethod
    def of(run: Run) -> RunView:
        values = {name: getattr(run, name) for name in RUN_FIELDS if name != "sweep"}
        return RunView(
            **values,
            sweep=run.sweep.name if run.sweep is not None else None,
            architecture=_architecture(run.architecture),
            metrics={
                str(MetricKey(m.split, m.protocol, m.metric, m.k)): m.value
                for m in sorted(run.metrics, key=lambda m: (m.split, m.protocol, m.metric, m.k))
            },
            config=dict(run.config or {}),
            environment=dict(run.environment or {}),
        )


def _architecture(arch: ArchitectureRow | None) -> dict[str, Any] | None:
    return None if arch is None else {name: getattr(arch, name) for name in ARCH_FIELDS}
