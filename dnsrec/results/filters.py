"""Filters and sort keys as SQLAlchemy expressions, never as SQL text.

Why: filters come from the command line (`--dataset`, `--where test/pop100/ndcg@10>=0.3`). Each is parsed
into a known name, an operator from a fixed table and a typed value, then built as an expression with
bound parameters, so `--dataset "x' OR 1=1 --"` is just a dataset nobody has. An unknown name is an
error listing the valid ones.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select

from dnsrec.results.errors import QueryError
from dnsrec.results.extract import STAGES, MetricKey
from dnsrec.results.models import STATUSES, ArchitectureRow, Metric, Run, Sweep

_RUN_NUMBERS = (
    "id", "trial", "lam", "gate_layers", "lr", "seed", "search_epochs", "batch", "epochs", "best_epoch",
    "search_seconds", "retrain_seconds", "inference_seconds", "train_seconds", "seconds_per_epoch",
    "peak_memory_mb", "inference_memory_mb", "search_best_epoch", "search_steps", "decision_width_p",
    "decision_depth_q", "decision_settled_epochs", "slurm_array_task_id",
)  # fmt: skip
_ARCH_NUMBERS = ("flops", "scoring_flops", "params", "depth", "d", "supernet_flops", "supernet_params")
_RUN_TEXT = (
    "status", "stage", "method", "dataset", "attention", "shape", "init", "launcher", "host", "device",
    "git_commit", "stopped", "slurm_job_id", "slurm_array_job_id", "run_dir",
)  # fmt: skip
NUMERIC: dict[str, Any] = {
    **{name: getattr(Run, name) for name in _RUN_NUMBERS},
    **{name: getattr(ArchitectureRow, name) for name in _ARCH_NUMBERS},
    "total_flops": ArchitectureRow.flops + ArchitectureRow.scoring_flops,
}
TEXT: dict[str, Any] = {**{name: getattr(Run, name) for name in _RUN_TEXT}, "sweep": Sweep.name}
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*(?P<name>[A-Za-z0-9_./@-]+)\s*(?P<op>>=|<=|!=|==|=|>|<)\s*(?P<value>.+?)\s*$")


def metric_value(key: MetricKey) -> Any:
    """The run's value of one metric as a correlated scalar subquery (NULL where the run lacks it)."""
    return (
        select(Metric.value)
        .where(
            Metric.run_id == Run.id,
            Metric.split == key.split,
            Metric.protocol == key.protocol,
            Metric.metric == key.metric,
            Metric.k == key.k,
        )
        .scalar_subquery()
    )


def valid_names(metrics: Iterable[str]) -> str:
    return (
        f"metrics: {', '.join(sorted(metrics)) or '(none recorded yet)'}; "
        f"numbers: {', '.join(sorted(NUMERIC))}; text (= or != only): {', '.join(sorted(TEXT))}"
    )


def resolve(name: str, metrics: set[str]) -> tuple[Any, bool]:
    """(expression, is_text) for a field or metric name; unknown names raise with the valid ones."""
    if name in NUMERIC:
        return NUMERIC[name], False
    if name in TEXT:
        return TEXT[name], True
    if "/" in name:
        key = MetricKey.parse(name)
        if str(key) in metrics or not metrics:
            return metric_value(key), False
    raise QueryError(f"unknown field or metric {name!r}; valid are {valid_names(metrics)}")


def condition(text: str, metrics: set[str]) -> ColumnElement[bool]:
    """`NAME OP VALUE`, e.g. `test/pop100/ndcg@10>=0.3`, `lam<=0.1`, `method=darts`."""
    m = _CONDITION.match(text)
    if m is None:
        raise QueryError(f"not a condition: {text!r} (expected NAME OP VALUE with OP one of {' '.join(OPERATORS)})")
    expr, is_text = resolve(m["name"], metrics)
    op, raw = OPERATORS[m["op"]], m["value"]
    if is_text:
        if op not in (operator.eq, operator.ne):
            raise QueryError(f"{text!r}: {m['name']} is text, compare it with = or !=")
        return op(expr, raw.strip("'\""))
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise QueryError(f"{text!r}: {raw!r} is not a finite number")
    return op(expr, value)


@dataclass(frozen=True)
class RunFilter:
    """Which runs a query considers; every field None/empty means no restriction."""

    sweep: str | None = None
    dataset: str | None = None
    status: str | None = None
    stage: str | None = None
    where: tuple[str, ...] = ()

    def conditions(self, metrics: set[str]) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.sweep is not None:
            found.append(Sweep.name == self.sweep)
        if self.dataset is not None:
            found.append(Run.dataset == self.dataset)
        if self.status is not None:
            if self.status.upper() not in STATUSES:
                raise QueryError(f"unknown status {self.status!r}; valid are {', '.join(STATUSES)}")
            found.append(Run.status == self.status.upper())
        if self.stage is not None:
            if self.stage not in STAGES:
                raise QueryError(f"unknown stage {self.stage!r}; valid are {', '.join(STAGES)}")
            found.append(Run.stage == self.stage)
        found += [condition(text, metrics) for text in self.where]
        return found
