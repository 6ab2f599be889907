"""The sweep's search space: which run-config keys Optuna varies, over which ranges.

Written in `sweeps/sweep/*.yaml` as a nested mapping whose leaves are parameter specs, e.g.

    space:
      search: {lam: {low: 1.0e-3, high: 1.0, log: true}}
      gates:  {layers: {low: 0, high: 4, type: int}}
      lr:     {low: 1.0e-4, high: 1.0e-2, log: true}
      retrain: {shape: {choices: [narrow, wide]}}

so each parameter is named by its dotted run-config key (`search.lam`) and overridable as
`sweep.space.search.lam.high=0.5`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dnsrec.errors import ConfigError

_SPEC_KEYS = {"low", "high", "log", "type", "choices", "step"}


@dataclass(frozen=True)
class Param:
    key: str  # dotted run-config key, also the Optuna parameter name
    kind: str  # float, int or categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(self.key, int(self.low or 0), int(self.high or 0), step=step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.key} in {list(self.choices)}"
        scale = " (log)" if self.log else ""
        return f"{self.key} {self.kind} [{self.low:g}, {self.high:g}]{scale}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log, "step": self.step,
                "choices": list(self.choices)}  # fmt: skip


def parse_space(raw: Any, prefix: str = "sweep.space") -> tuple[Param, ...]:
    """Every leaf spec under `raw`, validated: a bad range names its config key."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"config key '{prefix}': expected a non-empty mapping of parameters, got {raw!r}")
    params: list[Param] = []
    _walk(raw, [], prefix, params)
    return tuple(params)


def _walk(node: Mapping[str, Any], path: list[str], prefix: str, out: list[Param]) -> None:
    for name, value in node.items():
        key_path = [*path, str(name)]
        full = f"{prefix}.{'.'.join(key_path)}"
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{full}': expected a parameter spec (low/high or choices), got {value!r}")
        if set(value) & _SPEC_KEYS:
            out.append(_param(".".join(key_path), value, full))
        else:
            _walk(value, key_path, prefix, out)


def _param(key: str, spec: Mapping[str, Any], full: str) -> Param:
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ConfigError(f"config key '{full}.{unknown[0]}': unknown; a spec has {', '.join(sorted(_SPEC_KEYS))}")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list | tuple) or not choices:
            raise ConfigError(f"config key '{full}.choices': expected a non-empty list, got {choices!r}")
        return Param(key, "categorical", choices=tuple(choices))
    kind = spec.get("type", "float")
    if kind not in ("float", "int"):
        raise ConfigError(f"config key '{full}.type': expected 'float' or 'int', got {kind!r}")
    low, high = spec.get("low"), spec.get("high")
    for name, v in (("low", low), ("high", high)):
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise ConfigError(f"config key '{full}.{name}': expected a finite number, got {v!r}")
        if kind == "int" and not float(v).is_integer():
            raise ConfigError(f"config key '{full}.{name}': expected an integer, got {v!r}")
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if not low < high:
        what = "empty" if low == high else "inverted"
        raise ConfigError(f"config key '{full}': {what} range [{low}, {high}]; expected low < high")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"config key '{full}.low': a log range needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None and (not isinstance(step, int | float) or step <= 0):
        raise ConfigError(f"config key '{full}.step': expected a number > 0, got {step!r}")
    return Param(key, kind, float(low), float(high), log, step)


def apply(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the run `config` with each dotted key set to its value; the key must exist."""
    out = _deep_copy(config)
    for key, value in params.items():
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "(not a mapping)"
                where = ".".join(parts[:i]) or "the run config"
                raise ConfigError(f"config key 'sweep.space.{key}': no key '{part}' in {where} (known: {known})")
            if i == len(parts) - 1:
                node[part] = value
            node = node[part]
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def params_text(params: Mapping[str, Any]) -> str:
    """A trial's point in one line: `search.lam=0.01234, gates.layers=2`."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
