"""`Architecture`: the one small frozen value that crosses from search to retraining and into the database.

Like DARTS's Genotype, but typed and JSON round-trippable. It says, per kept layer, the attention width
h_l (whole heads) and the inner width D'_l, plus the gate depth and the supernet sizes it came from.
A plain value: it imports no torch, so the torch-free `dnsrec.results` reads it too; the compact model it
describes is built next to the model code (`dnsrec.nas.derive.compact_config`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dnsrec.errors import ConfigError


@dataclass(frozen=True)
class Architecture:
    d: int  # supernet hidden width
    inner: int  # supernet inner width D
    head_dim: int
    hidden: tuple[int, ...]  # per kept layer: attention width h_l
    inner_widths: tuple[int, ...]  # per kept layer: inner width D'_l
    gate_layers: int
    candidates: tuple[int, ...] = ()  # per kept layer: index of the chosen candidate (for the record)
    # The search method that chose it (`search.method`, for the record): a retrain of this file is recorded
    # as that method's model. None: not recorded (files written before the key, or written by hand).
    method: str | None = None

    def __post_init__(self) -> None:
        if not self.hidden or len(self.hidden) != len(self.inner_widths):
            raise ConfigError(
                f"architecture: hidden {self.hidden} and inner {self.inner_widths} must be non-empty and equally long"
            )
        for h in self.hidden:
            if h % self.head_dim or not 0 < h <= self.d:
                raise ConfigError(
                    f"architecture: width {h} is not a whole number of heads of {self.head_dim} within d={self.d}"
                )
        for w in self.inner_widths:
            if not 0 < w <= self.inner:
                raise ConfigError(f"architecture: inner width {w} not in 1..{self.inner}")

    @property
    def depth(self) -> int:
        return len(self.hidden)

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        if raw["method"] is None:  # an unrecorded method is left out, so such files read as they were written
            del raw["method"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()}

    @staticmethod
    def from_dict(raw: Any, source: str = "architecture") -> Architecture:
        fields = ("d", "inner", "head_dim", "hidden", "inner_widths", "gate_layers")
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a JSON object with keys {', '.join(fields)}")
        missing = [f for f in fields if f not in raw]
        unknown = sorted(set(raw) - {*fields, "candidates", "method"})
        if missing or unknown:
            raise ConfigError(f"{source}: missing keys {missing}, unknown keys {unknown}")
        try:
            return Architecture(
                d=int(raw["d"]),
                inner=int(raw["inner"]),
                head_dim=int(raw["head_dim"]),
                hidden=tuple(int(x) for x in raw["hidden"]),
                inner_widths=tuple(int(x) for x in raw["inner_widths"]),
                gate_layers=int(raw["gate_layers"]),
                candidates=tuple(int(x) for x in raw.get("candidates", ())),
                method=_method(raw.get("method"), source),
            )
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: {e}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def read(path: Path) -> Architecture:
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not a readable architecture JSON file ({e})") from e
        if isinstance(raw, dict) and "architecture" in raw and "schema_version" in raw:  # a result.json
            raw = raw["architecture"]
        return Architecture.from_dict(raw, str(path))


def _method(value: Any, source: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{source}: method must be a string naming the search method, got {value!r}")
