"""`RunResult`: the one shape of `result.json` for every stage (train, search+retrain, retrain).

Only a RunResult crosses from a run back to its caller (CLI, sweep driver, `results ingest`). It imports
no torch so the results store can read it anywhere. Written atomically: a reader sees the old file or
the complete new one, never half of it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsrec.errors import DNSRecError
from dnsrec.files import atomic_write_text

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"

# What the metric keys' protocol prefixes mean, written into every result so a reader compares like with like.
PROTOCOL_DESCRIPTIONS = {
    "pop100": "the paper's protocol: the held-out item ranked against 100 negatives sampled by popularity "
    "(fixed per dataset and split) from items outside the user's history; ties count against the target",
    "full": "full ranking over every item EXCEPT the user's history (the 'seen items filtered' convention of "
    "most SASRec reports; RecBole's full sort for sequential models does NOT exclude history, so its numbers "
    "are lower and not comparable); ties count against the target",
}


@dataclass
class RunResult:
    stage: str  # "train" (a fixed model), later "run" (search + retrain) and "retrain"
    dataset: str
    config: dict[str, Any]  # the full resolved configuration
    metrics: dict[str, dict[str, float]]  # split -> "protocol/metric@k" -> value
    best_epoch: int
    epochs: int
    stopped: str
    n_params: int
    seconds_per_epoch: float
    train_seconds: float
    eval_seconds: dict[str, float]  # split -> seconds for all of its users, both protocols
    history: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # host, device, git commit, versions
    started_at: str = ""
    finished_at: str = ""
    # FLOPs (docs/method.md definition) of the final model's layers and of its scoring layer; for DNS-Rec runs
    # also of the un-pruned supernet shape ("supernet", "supernet_scoring").
    flops: dict[str, int] = field(default_factory=dict)
    supernet_params: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # "search", "retrain", "inference" (test set)
    peak_memory_mb: float = 0.0  # CUDA: max allocated; CPU: the process's max resident set
    # Scoring the test users: the model's weights plus the most tensor memory alive at once (dnsrec.measure);
    # None in results written before it was measured.
    inference_memory_mb: float | None = None
    architecture: dict[str, Any] | None = None  # the searched or given Architecture (DNS-Rec stages)
    search: dict[str, Any] | None = None  # best_epoch, steps, per-epoch trajectory of alpha, beta, tau, ...
    # What a reader must know about how the numbers were made, e.g. that search.method=recnas is a reconstruction
    # (dnsrec.nas.methods); empty for most runs.
    notes: list[str] = field(default_factory=list)
    protocols: dict[str, str] = field(default_factory=lambda: dict(PROTOCOL_DESCRIPTIONS))
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """Strict JSON: a NaN or infinity (a diverged run) is refused here, never written as a bare `NaN`
        that other readers reject and ours would take for a number."""
        raw = dataclasses.asdict(self)
        try:
            return json.dumps(raw, indent=2, sort_keys=True, allow_nan=False)
        except ValueError:
            bad = ", ".join(_non_finite(raw)[:6]) or "?"
            raise DNSRecError(f"result not written: non-finite values at {bad}") from None

    def write(self, run_dir: Path) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / RESULT_FILE
        atomic_write_text(path, self.to_json())  # a full disk: WriteFailed naming the file, nothing left behind
        return path

    @staticmethod
    def read(path: Path) -> RunResult:
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
        except (OSError, ValueError) as e:  # ValueError: not UTF-8 (random bytes), not JSON, NaN/Infinity
            raise DNSRecError(f"{path}: not a readable result file ({type(e).__name__}: {_short(e)})") from e
        if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
            got = raw.get("schema_version") if isinstance(raw, dict) else type(raw).__name__
            raise DNSRecError(f"{path}: expected schema_version {SCHEMA_VERSION}, got {got!r}")
        names = {f.name for f in dataclasses.fields(RunResult)}
        missing = sorted(
            f.name
            for f in dataclasses.fields(RunResult)
            if f.name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        if missing or set(raw) - names:
            raise DNSRecError(f"{path}: missing keys {missing} or unknown keys {sorted(set(raw) - names)}")
        return RunResult(**raw)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} (a diverged run's result is not a result)")


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def _non_finite(x: Any, path: str = "") -> list[str]:
    """Dotted paths of the NaN and infinite floats in a plain JSON-like value."""
    if isinstance(x, float) and not math.isfinite(x):
        return [path or "."]
    if isinstance(x, dict):
        return [p for k, v in x.items() for p in _non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(x, list | tuple):
        return [p for i, v in enumerate(x) for p in _non_finite(v, f"{path}[{i}]")]
    return []
