"""From a table's rows to points (row x seed), each a composed, validated run config, or the reason it cannot
run yet; and the matching of points to recorded runs, by config.

A point's identity is its full typed config (the one `result.json` stores), less the keys that never change
a number (`IGNORED`). A key the recorded run does not have (a key added to the project after it ran) matches
when the point asks for that key's default, which is what every earlier run did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnsrec.compose import compose
from dnsrec.config import dotted_keys
from dnsrec.config.run import RUN_KEYS_BEFORE_THEY_EXISTED
from dnsrec.errors import ConfigError
from dnsrec.reproduce.tables import Row, TableSpec

# Where files are read from and how progress is shown: never what a run computes.
IGNORED = frozenset({"data_dir", "run_dir", "train.progress", "train.eval_batch"})
_NOT_IN_CONFIG = re.compile(r"Could not (?:override|append to) '([^']+)'")


@dataclass(frozen=True, eq=False)
class Point:
    row: Row
    seed: int
    config: dict[str, Any] | None  # the composed mapping a worker builds its run from (None: unavailable)
    identity: dict[str, Any] | None  # flat typed config: what a recorded run must match
    unavailable: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.row.key, self.seed)

    @property
    def command(self) -> str:
        return self.row.command

    @property
    def stage(self) -> str:
        return self.row.command  # `dnsrec run` records stage "run", `dnsrec train` stage "train"

    def run_dir(self, root: Path, dataset: str) -> Path:
        """A name that says which row and seed, and a hash of the config, so two configs never share one."""
        assert self.identity is not None
        digest = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:10]
        slug = re.sub(r"[^a-z0-9]+", "-", self.row.label.lower()).strip("-") or "row"
        return root / dataset / f"{self.stage}-{slug}-s{self.seed}-{digest}"


def typed_config(command: str, raw: Mapping[str, Any]) -> Any:
    """The typed config (`TrainRunConfig` or `RunConfig`) of a run of `command`; ConfigError if refused."""
    from dnsrec.config.run import RunConfig, TrainRunConfig

    return TrainRunConfig.from_mapping(raw) if command == "train" else RunConfig.from_mapping(raw)


def typed_identity(command: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The flat typed config a run of `command` with the composed mapping `raw` records (ConfigError if refused)."""
    plain = json.loads(
        json.dumps(dataclasses.asdict(typed_config(command, raw)))
    )  # tuples -> lists, as result.json holds it
    return {k: v for k, v in dotted_keys(plain).items() if k not in IGNORED}


class Planner:
    """Composes points for one dataset with the command line's extra overrides, each routed to the commands
    whose config has the key (`model.d` to `train`, `search.epochs` to `run`, `dataset.*` to both)."""

    def __init__(self, dataset: str, extra: Iterable[str] = ()) -> None:
        self.dataset = dataset
        base = {c: compose(c, [f"dataset={dataset}"]) for c in ("run", "train")}
        self.keys = {c: set(dotted_keys(raw)) for c, raw in base.items()}
        # What a recorded run without a key (one added later) ran with: the key's default, unless the key came
        # with a default other than the behaviour before it (RUN_KEYS_BEFORE_THEY_EXISTED).
        defaults = {c: typed_identity(c, raw) for c, raw in base.items()}
        self.unrecorded = {**defaults, "run": {**defaults["run"], **RUN_KEYS_BEFORE_THEY_EXISTED}}
        self.extra: dict[str, list[str]] = {"run": [], "train": []}
        for override in extra:
            targets = [c for c in ("run", "train") if self._has(c, override)]
            if not targets:
                name = _override_key(override)
                raise ConfigError(
                    f"override {override!r}: neither `dnsrec run` (sweeps/run.yaml) nor `dnsrec train` "
                    f"(sweeps/train.yaml) has a key {name!r}"
                )
            for c in targets:
                self.extra[c].append(override)

    def _has(self, command: str, override: str) -> bool:
        if override.startswith("+"):
            return True
        key = _override_key(override)
        return any(k == key or k.startswith(key + ".") for k in self.keys[command])

    def points(self, spec: TableSpec, seeds: Iterable[int]) -> list[Point]:
        out: list[Point] = []
        for row in spec.rows:
            # the row's own overrides last: they define the row, whatever the command line adds
            overrides = [f"dataset={self.dataset}", *self.extra[row.command], *row.overrides]
            try:
                raw = compose(row.command, overrides)
            except ConfigError as e:
                out.extend(Point(row, s, None, None, _why_unavailable(str(e))) for s in seeds)
                continue
            for seed in seeds:
                config = {k: v for k, v in raw.items() if k != "run_dir"} | {"seed": seed}
                try:
                    identity = typed_identity(row.command, config)
                except ConfigError as e:
                    out.append(Point(row, seed, None, None, f"refused by the config: {e}"))
                    continue
                out.append(Point(row, seed, config, identity))
        return out

    def matches(self, point: Point, stage: str, recorded: Mapping[str, Any]) -> bool:
        """Whether a run of `stage` with the stored config `recorded` is this point."""
        if point.identity is None or stage != point.stage:
            return False
        have = {k: v for k, v in dotted_keys(recorded).items() if k not in IGNORED}
        before = self.unrecorded[point.stage]
        for key, want in point.identity.items():
            if key in have:
                if have[key] != want:
                    return False
            elif key not in before or before[key] != want:
                return False
        return True


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].strip()


def _why_unavailable(message: str) -> str:
    found = _NOT_IN_CONFIG.search(message)
    if found:
        return f"needs config key `{found.group(1)}`, which this version does not have yet"
    return f"refused by the config: {message.splitlines()[0]}"
