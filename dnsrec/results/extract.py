"""From a RunResult to database rows: validation first, then plain dicts of column values.

Why a separate, pure module: what is stored is decided here once (and tested without a database), and a
result that would store a lie (NaN metric, missing test NDCG, another schema version) is refused before
any row is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from dnsrec.errors import ConfigError
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.commitment import Commitment, commitment
from dnsrec.results.errors import InvalidResult, QueryError
from dnsrec.run_result import SCHEMA_VERSION, RunResult

STAGES = ("train", "run", "retrain")
SPLITS = ("valid", "test")
# Every stored run must carry these (the selection metric and the paper's headline numbers).
REQUIRED_METRICS = tuple(f"{split}/{protocol}/ndcg@10" for split in SPLITS for protocol in ("pop100", "full"))
_METRIC = re.compile(r"^(?P<protocol>[a-z0-9_]+)/(?P<metric>[a-z0-9_]+)@(?P<k>[0-9]+)$")


@dataclass(frozen=True, order=True)
class MetricKey:
    """`test/pop100/ndcg@10`: split, protocol (pop100 or full), metric name, cut-off k."""

    split: str
    protocol: str
    metric: str
    k: int

    def __str__(self) -> str:
        return f"{self.split}/{self.protocol}/{self.metric}@{self.k}"

    @staticmethod
    def parse(text: str) -> MetricKey:
        split, _, rest = text.strip().partition("/")
        m = _METRIC.match(rest)
        if not split or m is None:
            raise QueryError(
                f"not a metric name: {text!r} (expected SPLIT/PROTOCOL/METRIC@K, e.g. test/pop100/ndcg@10)"
            )
        return MetricKey(split, m["protocol"], m["metric"], int(m["k"]))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def problems(result: RunResult) -> list[str]:
    """Everything wrong with `result` for storing, as short phrases (empty: fine)."""
    found: list[str] = []
    if result.schema_version != SCHEMA_VERSION:
        found.append(f"schema_version {result.schema_version!r}, this dnsrec reads {SCHEMA_VERSION}")
    if result.stage not in STAGES:
        found.append(f"stage {result.stage!r} is not one of {', '.join(STAGES)}")
    if not isinstance(result.dataset, str) or not result.dataset:
        found.append("dataset is empty")
    if not isinstance(result.config, dict):
        found.append("config is not an object")
    else:
        try:
            json.dumps(result.config, allow_nan=False)
        except (TypeError, ValueError) as e:
            found.append(f"config is not plain finite JSON ({e})")
    found += _metric_problems(result.metrics)
    for name in ("n_params", "best_epoch", "epochs"):
        if not _count(getattr(result, name)):
            found.append(f"{name} {getattr(result, name)!r} is not a count")
    numbers = {name: getattr(result, name) for name in ("seconds_per_epoch", "train_seconds", "peak_memory_mb")}
    if result.inference_memory_mb is not None:  # None: written before it was measured
        numbers["inference_memory_mb"] = result.inference_memory_mb
    found += [f"{name} {value!r} is not a finite number" for name, value in numbers.items() if not _finite(value)]
    seconds = result.seconds if isinstance(result.seconds, dict) else {"?": result.seconds}
    found += [f"seconds.{k} {v!r} is not a finite number" for k, v in seconds.items() if not _finite(v)]
    flops = result.flops if isinstance(result.flops, dict) else {}
    for key in ("model", "model_scoring"):
        if not _count(flops.get(key)):
            found.append(f"flops.{key} {flops.get(key)!r} is not a count")
    found += [f"flops.{k} {v!r} is not a count" for k, v in flops.items() if not _count(v)]
    for name in ("started_at", "finished_at"):
        if getattr(result, name) and parse_time(getattr(result, name)) is None:
            found.append(f"{name} {getattr(result, name)!r} is not an ISO time")
    if result.architecture is not None:
        try:
            Architecture.from_dict(result.architecture)
        except ConfigError as e:
            found.append(str(e))
    return list(dict.fromkeys(found))


def _metric_problems(metrics: Any) -> list[str]:
    if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
        return ["metrics is not {split: {protocol/metric@k: value}}"]
    found = []
    for split, values in metrics.items():
        for name, value in values.items():
            if _METRIC.match(name) is None:
                found.append(f"metric name {split}/{name} is not SPLIT/PROTOCOL/METRIC@K")
            elif not _finite(value):
                found.append(f"metric {split}/{name} = {value!r} is not a finite number")
            elif not 0 <= value <= 1:  # every metric here (HR, NDCG, MRR, recall @k) is a fraction
                found.append(f"metric {split}/{name} = {value!r} is outside [0, 1]")
    missing = [k for k in REQUIRED_METRICS if k.partition("/")[2] not in metrics.get(k.partition("/")[0], {})]
    if missing:
        found.append(f"required metrics missing: {', '.join(missing)}")
    return found


def validate(result: RunResult, source: str) -> None:
    found = problems(result)
    if found:
        raise InvalidResult(f"{source}: not recorded: {'; '.join(found[:6])}" + (" ..." if len(found) > 6 else ""))


def parse_time(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def digest(result: RunResult) -> str:
    return hashlib.sha256(result.to_json().encode()).hexdigest()


def _get(mapping: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _float(x: Any) -> float | None:
    return float(x) if _finite(x) else None


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def method_of(config: dict[str, Any], stage: str, architecture: dict[str, Any] | None = None) -> str | None:
    """What produced a run: a `run`'s `search.method`, a trained model's (`train`) `model.family`, a `retrain`'s
    the method that searched its architecture (its file's `method`); None where the record does not say.

    A missing key means its default: configs written before `search.method` existed searched with DNS-Rec,
    the only method then, and `model.family` defaults to sasrec. A `retrain` config's own `search.method` is a
    default nobody used, so it is never read: an architecture file without `method` (written before the key, or
    by hand) gives None. db/versions/0003 holds a frozen copy of this rule for rows recorded before the column.
    """
    if stage == "retrain":
        method = architecture.get("method") if isinstance(architecture, dict) else None
        return _str(method)
    search, model = config.get("search"), config.get("model")
    if isinstance(search, dict):
        return _str(search.get("method", "dnsrec"))
    if isinstance(model, dict):
        return _str(model.get("family", "sasrec"))
    return None


def key_parameters(config: dict[str, Any], stage: str, architecture: dict[str, Any] | None = None) -> dict[str, Any]:
    """DESIGN.md's key parameters from a resolved config of any stage (None where a stage has none), and what
    produced the run (`method_of`, which for a retrain reads its `architecture`).

    `batch` is the final model's training batch: `retrain.batch` for DNS-Rec stages, `train.batch` else.
    """
    retrain = config.get("retrain")
    return {
        "method": method_of(config, stage, architecture),
        "attention": _str(config.get("attention")) or _str(_get(config, "model", "attention")),
        "lam": _float(_get(config, "search", "lam")),
        "gate_layers": _int(_get(config, "gates", "layers")),
        "lr": _float(_get(config, "train", "lr")),
        "seed": _int(_get(config, "train", "seed")),
        "shape": _str(_get(retrain, "shape")),
        "init": _str(_get(retrain, "init")),
        "search_epochs": _int(_get(config, "search", "epochs")),
        "batch": _int(_get(retrain, "batch")) if isinstance(retrain, dict) else _int(_get(config, "train", "batch")),
    }


def run_values(result: RunResult) -> dict[str, Any]:
    """Columns of `dnsrec_runs` that come from the result itself (not where or by whom it ran)."""
    env, seconds = result.environment, result.seconds
    return {
        "status": "COMPLETE",
        "failure_reason": None,
        "stage": result.stage,
        "dataset": result.dataset,
        **key_parameters(result.config, result.stage, result.architecture),
        "config": result.config,
        "git_commit": env.get("git_commit") or None,
        "host": env.get("host") or None,
        "device": env.get("device") or None,
        "environment": dict(env),
        "started_at": parse_time(result.started_at),
        "finished_at": parse_time(result.finished_at),
        "search_seconds": _float(seconds.get("search")),
        "retrain_seconds": _float(seconds.get("retrain")),
        "inference_seconds": _float(seconds.get("inference")),
        "train_seconds": float(result.train_seconds),
        "seconds_per_epoch": float(result.seconds_per_epoch),
        "peak_memory_mb": float(result.peak_memory_mb),
        "inference_memory_mb": _float(result.inference_memory_mb),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "search_best_epoch": _int(_get(result.search, "best_epoch")),
        "search_steps": _int(_get(result.search, "steps")),
        **decision_values(result),
        "result_sha256": digest(result),
    }


def decision_values(result: RunResult) -> dict[str, Any]:
    """The search decision's commitment (dnsrec.nas.commitment) from the trajectory; None for a stage without
    a search, or a trajectory without the decision epoch's fields."""
    found = None
    if isinstance(result.search, dict) and isinstance(result.search.get("trajectory"), list):
        best = _int(result.search.get("best_epoch"))
        found = None if best is None else commitment(result.search["trajectory"], best)
    return {f"decision_{name}": None if found is None else getattr(found, name) for name in Commitment._fields}


def architecture_values(result: RunResult) -> dict[str, Any]:
    """The final model's shape: the searched Architecture, or for `train` the fixed SASRec of `config.model`."""
    flops = result.flops
    shape: dict[str, Any] = {}
    if result.architecture is not None:
        arch = Architecture.from_dict(result.architecture)  # checked by `problems` before any row is built
        shape = {
            "depth": arch.depth,
            "d": arch.d,
            "d_inner": arch.inner,
            "head_dim": arch.head_dim,
            "hidden": list(arch.hidden),
            "inner_widths": list(arch.inner_widths),
            "candidates": list(arch.candidates) if "candidates" in result.architecture else None,
            "gate_layers": arch.gate_layers,
        }
    elif isinstance(model := result.config.get("model"), dict):
        layers, d, inner, heads = (_int(model.get(k)) for k in ("layers", "d", "inner", "heads"))
        if layers is not None and d is not None and inner is not None:
            shape = {
                "depth": layers,
                "d": d,
                "d_inner": inner,
                "hidden": [d] * layers,
                "inner_widths": [inner] * layers,
            }
            shape["head_dim"] = d // heads if heads else None
    return {
        **shape,
        "flops": flops["model"],
        "scoring_flops": flops["model_scoring"],
        "params": result.n_params,
        "supernet_flops": flops.get("supernet"),
        "supernet_scoring_flops": flops.get("supernet_scoring"),
        "supernet_params": result.supernet_params,
    }


def metric_rows(result: RunResult) -> list[dict[str, Any]]:
    rows = []
    for split, values in sorted(result.metrics.items()):
        for name, value in sorted(values.items()):
            key = MetricKey.parse(f"{split}/{name}")
            rows.append(
                {"split": split, "protocol": key.protocol, "metric": key.metric, "k": key.k, "value": float(value)}
            )
    return rows
