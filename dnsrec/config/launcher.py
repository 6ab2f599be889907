"""Typed launcher settings (`sweeps/launcher/*.yaml`, key `launcher.*`), validated with the key's name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dnsrec.config import build, check, non_negative_int, one_of, positive_float, positive_int

LAUNCHERS = ("local", "slurm", "ray")


@dataclass(frozen=True)
class Resources:
    """What one trial asks for: `cpus` and `mem_gb` per rank, `gpus` in all (one per rank), `ranks`
    processes (default: one per GPU, else one). Several ranks make a multi-process (DeepSpeed) run."""

    cpus: int = dataclasses.field(default=1, metadata={"check": positive_int})
    gpus: int = dataclasses.field(default=0, metadata={"check": non_negative_int})
    ranks: int | None = dataclasses.field(default=None, metadata={"check": positive_int})
    mem_gb: float = dataclasses.field(default=4.0, metadata={"check": positive_float})
    time_min: int = dataclasses.field(default=60, metadata={"check": positive_int})

    def __post_init__(self) -> None:
        check(
            "launcher.resources.ranks",
            self.gpus == 0 or self.ranks in (None, self.gpus),
            f"one rank per GPU ({self.gpus}) or unset",
            self.ranks,
        )

    @property
    def tasks(self) -> int:
        """Processes per trial."""
        return self.ranks or max(1, self.gpus)


@dataclass(frozen=True)
class LauncherConfig:
    name: str = dataclasses.field(metadata={"check": one_of(*LAUNCHERS)})
    resources: Resources = Resources()
    # slurm
    partition: str | None = None
    array_parallelism: int | None = dataclasses.field(default=None, metadata={"check": positive_int})
    max_requeue: int = dataclasses.field(default=3, metadata={"check": non_negative_int})
    folder: str | None = None  # submitit's job folder; default: <sweep dir>/jobs
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # more sbatch options, e.g. {account: x}
    # ray
    address: str | None = None  # null: start a local Ray; "auto" or host:port: join that cluster


def launcher_config(raw: Mapping[str, Any] | str) -> LauncherConfig:
    """From the composed `launcher` group (or a bare name)."""
    if isinstance(raw, str):
        raw = {"name": raw}
    values = dict(raw)
    check("launcher", "name" in values, f"a launcher group with a name ({', '.join(LAUNCHERS)})", raw)
    check("launcher.name", values["name"] in LAUNCHERS, "one of " + ", ".join(LAUNCHERS), values["name"])
    resources = values.pop("resources", None) or {}
    check("launcher.resources", isinstance(resources, Mapping), "a mapping", resources)
    values["resources"] = build(Resources, resources, "launcher.resources.")
    if "extra" in values:
        values["extra"] = dict(values["extra"] or {})
    return build(LauncherConfig, values, "launcher.")
