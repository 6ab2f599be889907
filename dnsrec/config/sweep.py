"""Typed sweep settings (`sweeps/sweep/*.yaml`, key `sweep.*`), validated with the key's name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnsrec.config import VALID_SELECTION_METRIC, build, check, non_negative_int, one_of, positive_float, positive_int
from dnsrec.config.sweep_space import Param, parse_space

OBJECTIVES = {"ndcg": "maximize", "flops": "minimize"}


def _objectives(key: str, v: Any) -> None:
    ok = isinstance(v, list | tuple) and v and v[0] == "ndcg" and set(v) <= set(OBJECTIVES) and len(set(v)) == len(v)
    check(key, bool(ok), "[ndcg, flops] (two objectives) or [ndcg] (one, with an optional flops_budget)", v)


def _name(key: str, v: Any) -> None:
    # `.` and `..` are names of letters a folder may not have: `sweep.name=..` wrote trial folders and
    # job files into the parent of sweep.root.
    ok = isinstance(v, str) and 0 < len(v) <= 200 and all(c.isalnum() or c in "-_." for c in v)
    ok = ok and v not in (".", "..")
    what = "a name of letters, digits, '-', '_' or '.', not '.' or '..' (it names the Optuna study and a folder)"
    check(key, ok, what, v)


def _non_negative_float(key: str, v: Any) -> None:
    check(key, isinstance(v, int | float) and not isinstance(v, bool) and v >= 0, "a number >= 0", v)


def _metric(key: str, v: Any) -> None:
    ok = isinstance(v, str) and len(v.split("/")) == 3 and v.split("/")[0] in ("valid", "test")
    check(key, ok, "SPLIT/PROTOCOL/METRIC@K, e.g. valid/pop100/ndcg@10", v)


@dataclass(frozen=True)
class SweepConfig:
    name: str = dataclasses.field(metadata={"check": _name})
    space: tuple[Param, ...] = ()
    trials: int = dataclasses.field(default=12, metadata={"check": positive_int})  # COMPLETE trials wanted
    parallel: int = dataclasses.field(default=2, metadata={"check": positive_int})  # trials in flight
    objectives: tuple[str, ...] = dataclasses.field(default=("ndcg", "flops"), metadata={"check": _objectives})
    flops_budget: float | None = dataclasses.field(default=None, metadata={"check": positive_float})
    metric: str = dataclasses.field(default=VALID_SELECTION_METRIC, metadata={"check": _metric})
    retries: int = dataclasses.field(default=2, metadata={"check": non_negative_int})  # per failed point
    max_failures: int | None = dataclasses.field(default=None, metadata={"check": positive_int})
    sampler: str = dataclasses.field(default="tpe", metadata={"check": one_of("tpe", "random", "grid")})
    seed: int = dataclasses.field(default=0, metadata={"check": non_negative_int})
    poll_seconds: float = dataclasses.field(default=2.0, metadata={"check": positive_float})
    # A driver's lease on its sweep lasts this long without a heartbeat (renewed every quarter of it): a
    # second driver is refused while it runs, and a rerun takes over this long after a driver died.
    lease_seconds: float = dataclasses.field(default=60.0, metadata={"check": positive_float})
    # A database away for less than this (a PostgreSQL restart) is waited out with a status line; longer
    # stops the driver with one line (its trials continue when it is started again).
    db_grace_seconds: float = dataclasses.field(default=120.0, metadata={"check": _non_negative_float})
    root: str = "runs/sweeps"  # run directories: <root>/<name>/trial-<n>

    def __post_init__(self) -> None:
        single = self.flops_budget is None or len(self.objectives) == 1
        check("sweep.flops_budget", single, "null with two objectives (FLOPs is minimised already)", self.flops_budget)
        if self.sampler == "grid":
            bad = [p.key for p in self.space if p.kind != "categorical"]
            check("sweep.space", not bad, "only `choices` parameters with sampler=grid", bad)

    @property
    def directory(self) -> Path:
        """Run directories `<root>/<name>/trial-<n>` and the launcher's job files `<root>/<name>/jobs`."""
        return Path(self.root) / self.name

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def failure_limit(self) -> int:
        """Failed trials tolerated in one driver invocation before it stops (a broken setup fails fast)."""
        return self.max_failures or max(3, self.trials)

    def study_attrs(self) -> dict[str, Any]:
        """What must not change when a study is continued (the space and the objectives)."""
        return {
            "space": {p.key: p.as_dict() for p in self.space},
            "objectives": list(self.objectives),
            "metric": self.metric,
            "flops_budget": self.flops_budget,
        }


def sweep_config(raw: Mapping[str, Any]) -> SweepConfig:
    values = dict(raw)
    values["space"] = parse_space(values.get("space"))
    if "objectives" in values and isinstance(values["objectives"], list):
        values["objectives"] = tuple(values["objectives"])
    return build(SweepConfig, values, "sweep.")
