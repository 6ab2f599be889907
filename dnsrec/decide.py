"""The decision of a finished search under another FLOPs bound, without searching again (`dnsrec decide`).

`search.max_flops` changes only the decision: the search's steps, its decision epoch and the logits there are
the same with or without it (the bound is applied to the decision, and L_t of the resource term is the plain
argmax). So a finished run's recorded decision-epoch logits give what `dnsrec run search.max_flops=B` would
have chosen, through the same code the run uses (`SearchMethod.controllers`, `Controllers.decision`,
`derive_architecture`), and retraining that architecture with `dnsrec retrain` is what the bounded run would
have retrained (with the default scratch initialisation). One search then answers every budget.

Before deciding anything, the recorded logits must give the recorded decision under the run's own config, and
the search space rebuilt from the recorded config must cost the recorded architecture what the run measured;
otherwise the file was written by other code (or edited) and nothing is decided from it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dnsrec.config import DEFAULT_ATTENTION, DEFAULT_DROPOUT, RetrainConfig, SearchConfig, TrainConfig, build
from dnsrec.config.run import TRAIN_KEYS_SET_ELSEWHERE_IN_RUN, RunConfig
from dnsrec.data.presets import get_preset
from dnsrec.errors import ConfigError, DNSRecError
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.controllers import Controllers
from dnsrec.nas.decision import log_probabilities, scored_paths
from dnsrec.nas.derive import derive_architecture
from dnsrec.nas.methods import search_method
from dnsrec.nas.search import candidate_flops, unpruned_layers_flops
from dnsrec.nas.space import SearchSpace
from dnsrec.run_result import RESULT_FILE, RunResult


class DecideError(DNSRecError):
    """A run directory whose recorded search cannot be decided again; the message names the file and key."""


@dataclass(frozen=True)
class Option:
    """One architecture of the search space: its kept candidates, FLOPs of its layers and probability."""

    candidates: tuple[int, ...]
    flops: float
    probability: float


@dataclass(frozen=True)
class Decision:
    run_dir: Path
    config: RunConfig  # the run's, with search.max_flops as asked
    epoch: int  # the search's decision epoch, whose logits decide
    recorded: Architecture  # what the run chose
    decided: Architecture  # what it chooses under `bound`
    bound: float | None  # FLOPs of the layers allowed (None: the argmax)
    costs: list[float]  # one layer's FLOPs per candidate
    widths: tuple[int, ...]  # one layer's attention width per candidate
    options: list[Option]  # every architecture of nonzero probability, most probable first
    supernet_flops: float  # the un-pruned supernet's layers, L F_max: what `search.max_flops` is a fraction of

    def flops(self, arch: Architecture) -> float:
        """FLOPs of `arch`'s layers: the retrained `narrow` model's (`search.max_flops` bounds this)."""
        return sum(self.costs[i] for i in arch.candidates)


def decide(run_dir: Path, max_flops: float | None) -> Decision:
    """The decision of the search recorded in `run_dir` (a `dnsrec run`'s directory) under `max_flops` (a
    fraction of the un-pruned supernet's layers' FLOPs, as `search.max_flops`; None: the paper's argmax)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        raise DecideError(f"{path} does not exist: not a finished run directory")
    result = RunResult.read(path)
    if result.stage != "run" or not result.search or not result.architecture:
        raise DecideError(
            f"{path}: key 'stage' is {result.stage!r}; only a `dnsrec run` (a search) can be decided again"
        )
    recorded_cfg = RunConfig.from_recorded(result.config, str(path))
    if recorded_cfg.search.method == "recnas":
        raise DecideError(
            f"{path}: key 'config.search.method' is 'recnas', whose decision depends on the candidates its pruning "
            "had removed by the decision epoch, which the trajectory does not record; decide DNS-Rec, DARTS or "
            "ProxylessNAS searches"
        )
    entry = _decision_entry(result.search, path)
    recorded = Architecture.from_dict(result.search.get("searched_architecture", result.architecture), f"{path}")
    space = _space(recorded_cfg, path)
    costs = candidate_flops(space).tolist()
    _check_recorded(recorded_cfg, space, costs, entry, recorded, result, path)

    search = build(SearchConfig, {**dataclasses.asdict(recorded_cfg.search), "max_flops": max_flops}, "search.")
    cfg = dataclasses.replace(recorded_cfg, search=search)
    cfg.check_flops_bound()
    controllers = _controllers(cfg, space, entry, path)
    candidates, depth = controllers.decision()
    decided = dataclasses.replace(derive_architecture(space, candidates, depth), method=recorded.method)
    log_p, log_q = log_probabilities(controllers.alpha, controllers.beta)
    options = sorted(
        (Option(kept, sum(costs[i] for i in kept), math.exp(score)) for kept, score in scored_paths(log_p, log_q)),
        key=lambda o: (-o.probability, o.flops),
    )
    return Decision(
        run_dir=Path(run_dir),
        config=cfg,
        epoch=int(result.search["best_epoch"]),
        recorded=recorded,
        decided=decided,
        bound=None if controllers.flops_limit is None else controllers.flops_limit[1],
        costs=costs,
        widths=space.hidden_widths,
        options=options,
        supernet_flops=unpruned_layers_flops(space),
    )


def _decision_entry(search: dict[str, Any], path: Path) -> dict[str, Any]:
    trajectory, best = search.get("trajectory"), search.get("best_epoch")
    if not isinstance(trajectory, list) or not isinstance(best, int) or not 1 <= best <= len(trajectory):
        raise DecideError(f"{path}: keys 'search.trajectory' and 'search.best_epoch' do not name a decision epoch")
    entry = trajectory[best - 1]
    if not isinstance(entry, dict) or "alpha" not in entry or "beta" not in entry:
        raise DecideError(f"{path}: key 'search.trajectory[{best - 1}]' has no 'alpha' and 'beta' logits")
    return entry


def _space(cfg: RunConfig, path: Path) -> SearchSpace:
    """The searched space. The number of items does not enter a layer's FLOPs, so the data is not read; the
    sequence length does (N: the preset's where the run left it null)."""
    try:
        max_len = cfg.dataset.max_len or get_preset(cfg.dataset.name).max_len
    except ConfigError as e:
        raise DecideError(f"{path}: key 'config.dataset.max_len' is null and {e}") from e
    return search_method(cfg.search.method).space(cfg.space_for(n_items=1, max_len=max_len))


def _controllers(cfg: RunConfig, space: SearchSpace, entry: dict[str, Any], path: Path) -> Controllers:
    """The run's controllers (with its FLOPs bound, if any) holding the decision epoch's recorded logits."""
    controllers = search_method(cfg.search.method).controllers(space, cfg.search)
    with torch.no_grad():
        for name in ("alpha", "beta"):
            target = getattr(controllers, name)
            try:
                value = torch.tensor(entry[name], dtype=torch.float32)
            except (TypeError, ValueError) as e:
                raise DecideError(f"{path}: key 'search.trajectory' {name} is not a list of numbers ({e})") from e
            if value.shape != target.shape:
                raise DecideError(
                    f"{path}: the recorded {name} has shape {tuple(value.shape)}, the space rebuilt from key "
                    f"'config' {tuple(target.shape)}"
                )
            target.copy_(value)
    return controllers


def _check_recorded(
    cfg: RunConfig,
    space: SearchSpace,
    costs: list[float],
    entry: dict[str, Any],
    recorded: Architecture,
    result: RunResult,
    path: Path,
) -> None:
    """The run's own config and logits must give its recorded decision, at the FLOPs it measured."""
    candidates, depth = _controllers(cfg, space, entry, path).decision()
    again = derive_architecture(space, candidates, depth)
    if (again.hidden, again.inner_widths) != (recorded.hidden, recorded.inner_widths):
        raise DecideError(
            f"{path}: the recorded decision-epoch logits give depth {again.depth}, widths {list(again.hidden)}, but "
            f"the run recorded depth {recorded.depth}, widths {list(recorded.hidden)}; its search was decided by "
            "other code, and nothing is decided from it"
        )
    measured = (result.flops or {}).get("model")
    if cfg.layer_flops_inexact() is None and isinstance(measured, (int, float)):
        ours = sum(costs[i] for i in again.candidates)
        if not math.isclose(ours, measured, rel_tol=1e-6):
            raise DecideError(
                f"{path}: the space rebuilt from key 'config' costs the recorded architecture {ours:,.0f} FLOPs, "
                f"the run measured {measured:,.0f}; the recorded config does not describe the searched space"
            )


def retrain_overrides(cfg: RunConfig) -> list[str]:
    """The `dnsrec retrain` overrides that retrain as the run did: its dataset, seed and lr, and every other key
    retraining reads whose recorded value is not today's default."""
    out = [f"dataset={cfg.dataset.name}", f"seed={cfg.train.seed}", f"lr={cfg.train.lr!r}"]
    preset = get_preset(cfg.dataset.name).run_keys()
    for key, value in dataclasses.asdict(cfg.dataset).items():  # the supernet's sizes the architecture must fit
        if key != "name" and value is not None and _plain(value) != preset[key]:
            out.append(f"dataset.{key}={_override(value)}")
    if cfg.search.heads != SearchConfig.heads:  # the head size, which the architecture records
        out.append(f"search.heads={cfg.search.heads}")
    for group, default in (("retrain", RetrainConfig()), ("train", TrainConfig())):
        for field in dataclasses.fields(default):
            value = getattr(getattr(cfg, group), field.name)
            skipped = group == "train" and field.name in TRAIN_KEYS_SET_ELSEWHERE_IN_RUN
            if not skipped and value != getattr(default, field.name):
                out.append(f"{group}.{field.name}={_override(value)}")
    for key, own, default_value in (
        ("attention", cfg.attention, DEFAULT_ATTENTION),
        ("dropout", cfg.dropout, DEFAULT_DROPOUT),
    ):
        if own != default_value:
            out.append(f"{key}={_override(own)}")
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _override(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_override(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)  # repr: the float itself, every digit
