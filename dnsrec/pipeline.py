"""One run: data -> (search) -> model -> training -> evaluation -> RunResult + files on disk.

Plain functions with typed inputs (`dnsrec.config.run`) and outputs: the CLI calls them, tests call them,
and the sweep driver calls them. Hydra stays at the entry point (`cli.py`). Stages:
- `train_run`: one fixed SASRec (softmax or linear attention) trained to early stop;
- `dnsrec_run`: DNS-Rec search on the supernet, derive the Architecture, retrain the compact model;
- `retrain_run`: retrain a given Architecture alone (fresh initialisation: there is no supernet).
A run directory holds checkpoints (`search.pt`, `last.pt`, `best.pt`, and `zero/` with the DeepSpeed
engine), `architecture.json`, `result.json` and `run_config.json`; started again on the same directory a run
resumes where it stopped, if its config is the same (`run_stamp`): another config is refused with the
differing keys, never mixed with the old run's checkpoints.

Several ranks (torchrun, or one SLURM job with k tasks): call the same function with the same arguments
and the same `run_dir` in every rank. The ranks join one process group (`init_from_env`), share every
step, agree on every decision, and return equal results; only rank 0 writes the run directory, and the
caller records the result only where `dnsrec.train.distributed.is_main()`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dnsrec.config import ModelConfig
from dnsrec.config.run import RunConfig, TrainRunConfig
from dnsrec.data import load_dataset
from dnsrec.data.features import model_features
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import ConfigError, ConfigMismatch, RunDirInUse
from dnsrec.evaluate import RANKS_FILE, Evaluator, protocol_metrics, write_ranks
from dnsrec.files import atomic_write_text
from dnsrec.measure import environment, inference_memory_mb, inference_seconds, peak_memory_mb
from dnsrec.models import FDSA, FDSAConfig, SASRec, SASRecConfig, SASRecF, padded_table
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.commitment import commitment
from dnsrec.nas.derive import build_compact, gate_parameter_names, retrained_architecture, transfer_weights
from dnsrec.nas.flops import model_flops
from dnsrec.nas.methods import search_method
from dnsrec.nas.search import search
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet
from dnsrec.run_result import RunResult
from dnsrec.train import distributed, run_lock
from dnsrec.train.checkpoint import ConfigStamp, read_stamp
from dnsrec.train.device import Placement
from dnsrec.train.loop import FitResult, fit, scorer_of

PROTOCOLS = ("pop100", "full")
Log = Callable[[str], None]


# Config keys left out of a run's ConfigStamp, the hash its checkpoints carry (dnsrec.train.checkpoint):
# everything else changes what a checkpoint holds, so resuming under another value would mix two configs.
NOT_IN_STAMP = frozenset(
    {
        "data_dir",  # where the dataset files are read from, not which data (name and preset are stamped)
        "train.progress",  # progress bars
        "train.eval_batch",  # users per evaluation forward: each user's scores are computed alone
        # The device alone: the same maths elsewhere (a requeue onto another node type). What does change
        # the numbers, bf16 or fp32, is stamped: `train.precision` here, and the precision `auto` resolved
        # to on the run's device inside each checkpoint (`checkpoint_stamp`).
        "train.device",
        # Micro-batches of one step: the step's gradient is the same (dnsrec.train.engine), so a requeue
        # with less memory may resume.
        "train.grad_accum",
        "train.micro_batch",
        "search.arch_part",  # likewise the parts of one architecture step (dnsrec.nas.arch_step)
        # The engine: DeepSpeed runs the same Adam update as plain torch (dnsrec.train.engine), and each
        # engine refuses the other's checkpoint files with its own message when it loads them.
        "train.engine",
        "train.zero_stage",
        # How far a run goes, not what its epochs compute: the checkpoint after epoch k is the state any
        # longer run passes through (batch order and dropout are pure functions of seed and epoch), so
        # extending a finished run is a resume. search.epochs is in the stamp when the temperature
        # schedule spans the whole search (`search.tau_schedule=search`): then it changes every step.
        "train.max_minutes",
        "train.max_epochs",
        "train.patience",
        "retrain.max_epochs",
        "retrain.patience",
    }
)


def run_stamp(stage: str, cfg: TrainRunConfig | RunConfig, **more: Any) -> ConfigStamp:
    """The stamp of a run's config (stage, config keys but NOT_IN_STAMP, and `more`, e.g. a given
    architecture): what `run_config.json` holds and what the sweep driver compares before it reuses a
    trial's directory."""
    exclude = NOT_IN_STAMP
    if isinstance(cfg, RunConfig) and cfg.search.tau_schedule != "search":
        exclude = exclude | {"search.epochs"}
    return ConfigStamp.of({"stage": stage, **_plain(dataclasses.asdict(cfg)), **more}, exclude)


def claim_run_dir(run_dir: Path, stamp: ConfigStamp) -> None:
    """Refuse a run directory another live process holds (`run_lock`) or whose `run_config.json` names
    another config, else hold it and write ours (rank 0); each checkpoint's own stamp is checked again when
    it is loaded."""
    refused: ConfigMismatch | RunDirInUse | None = None
    if distributed.is_main():
        try:
            run_lock.hold(run_dir)  # before the stamp: a second process must not rewrite it under the first
            saved = read_stamp(run_dir)
            if saved is not None:
                stamp.check(saved, run_dir / "run_config.json")
            stamp.write(run_dir)
        except (ConfigMismatch, RunDirInUse) as e:
            refused = e
    refused = distributed.broadcast_object(refused)  # every rank stops, none waits for rank 0 forever
    if refused is not None:
        raise refused


# What a run leaves in its directory: present without a run_config.json, they are of an unknown config.
RUN_FILES = ("search.pt", "last.pt", "best.pt", "zero", "architecture.json", "result.json")


def run_dir_conflict(run_dir: Path, stamp: ConfigStamp) -> str | None:
    """Why `run_dir` cannot hold a run of `stamp`'s config (it holds another config's run, or run files
    of no known config), or None where it can: empty, missing, or a run of this config to resume."""
    saved = read_stamp(run_dir)
    if saved is None:
        found = [name for name in RUN_FILES if (run_dir / name).exists()]
        return f"{run_dir} holds {', '.join(found)} of an unknown config (no run_config.json)" if found else None
    try:
        stamp.check(saved, run_dir / "run_config.json")
    except ConfigMismatch as e:
        return str(e)
    return None


def checkpoint_stamp(stamp: ConfigStamp, placement: Placement) -> ConfigStamp:
    """A run's stamp plus the precision its device computes in (`auto` is bf16 on CUDA, fp32 on a CPU)."""
    return stamp.with_values(resolved={"precision": "bf16" if placement.bf16 else "fp32"})


def build_model(model: ModelConfig, data: SequenceData) -> SASRec:
    """`model.family`: SASRec, or a feature-aware baseline (FDSA, SASRecF) over `model_features(data)`."""
    cfg = SASRecConfig(
        n_items=data.n_items,
        max_len=data.max_len,
        d=model.d,
        inner=model.inner,
        n_layers=model.layers,
        n_heads=model.heads,
        dropout=model.dropout,
        attention=model.attention,  # type: ignore[arg-type]
    )
    if model.family == "sasrec":
        return SASRec(cfg)
    features = model_features(data, f"model.family={model.family}")
    table = padded_table(features.values, features.offsets)
    if model.family == "fdsa":
        return FDSA(FDSAConfig(**dataclasses.asdict(cfg)), table, features.n_values)
    return SASRecF(cfg, table, features.n_values)


def _evaluate_final(model: SASRec, evaluator: Evaluator, placement: Placement, run_dir: Path) -> tuple[dict, dict]:
    """Metrics and seconds per split; every user's ranks go to `ranks.npz` (paired comparisons of runs)."""
    model.eval()
    score = scorer_of(model, placement)
    metrics, eval_seconds, ranks = {}, {}, {}
    for split in ("valid", "test"):
        t0 = time.perf_counter()
        ranks[split] = evaluator.ranks(score, split, protocols=PROTOCOLS)
        metrics[split] = protocol_metrics(ranks[split], evaluator.ks)
        eval_seconds[split] = time.perf_counter() - t0
    if distributed.is_main():
        write_ranks(run_dir / RANKS_FILE, ranks)
    return metrics, eval_seconds


def _result(
    stage: str,
    cfg: TrainRunConfig | RunConfig,
    model: SASRec,
    outcome: FitResult,
    run: _Setup,
    run_dir: Path,
    **extra: Any,
) -> RunResult:
    evaluator, placement = run.evaluator, run.placement
    metrics, eval_seconds = _evaluate_final(model, evaluator, placement, run_dir)
    flops = model_flops(model.cfg)
    seconds = {"retrain": sum(h.train_seconds + h.eval_seconds for h in outcome.history)}
    seconds.update(extra.pop("seconds", {}))
    seconds["inference"] = inference_seconds(model, evaluator, placement, cfg.train.eval_batch)
    run_peak = peak_memory_mb(placement)  # before inference_memory_mb resets CUDA's peak
    scoring_mb = inference_memory_mb(model, evaluator, placement, cfg.train.eval_batch)
    return RunResult(
        stage=stage,
        dataset=run.data.name,
        config=_plain(dataclasses.asdict(cfg)),
        metrics=metrics,
        best_epoch=outcome.best_epoch,
        epochs=outcome.epochs,
        stopped=outcome.stopped,
        n_params=sum(p.numel() for p in model.parameters()),
        seconds_per_epoch=outcome.seconds_per_epoch,
        train_seconds=sum(h.train_seconds for h in outcome.history),
        eval_seconds=eval_seconds,
        history=[dataclasses.asdict(h) for h in outcome.history],
        environment=environment(placement),
        started_at=run.started.isoformat(timespec="seconds"),
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        flops={"model": flops.total, "model_scoring": flops.scoring, **extra.pop("flops", {})},
        seconds=seconds,
        peak_memory_mb=run_peak,
        inference_memory_mb=scoring_mb,
        **extra,
    )


def _load(name: str, cfg_max_len: int | None, data_dir: str | None, log: Log) -> SequenceData:
    data = load_dataset(name, data_dir=data_dir, max_len=cfg_max_len)
    log(
        f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, "
        f"{data.n_interactions:,} interactions, N={data.max_len}"
    )
    return data


@dataclass(frozen=True)
class _Setup:
    """What each run starts from, built the same way for all three (`_running`)."""

    started: dt.datetime
    log: Log  # prints on rank 0 only
    data: SequenceData
    placement: Placement
    evaluator: Evaluator
    stamp: ConfigStamp  # the run's config stamp plus the precision its device computes in


@contextmanager
def _running(
    stage: str,
    cfg: TrainRunConfig | RunConfig,
    run_dir: Path,
    log: Log,
    *,
    check: Callable[[SequenceData], None] | None = None,
    **stamped: Any,
) -> Iterator[_Setup]:
    """One run of `stage`, set up: join the ranks, load the data, check it (`check`), place the run on its
    device, claim the run directory for the config's stamp (plus `stamped`), build the evaluator, and seed
    torch for the model's initialisation. The directory is claimed after the data, the check and the device:
    a run refused for any of them leaves no directory behind; and it is given back when the run ends,
    returned or raised (`run_lock.scope`)."""
    with run_lock.scope(run_dir):
        started = dt.datetime.now(dt.UTC)
        distributed.init_from_env(cfg.train.device)
        log = distributed.main_only(log)
        data = _load(cfg.dataset.name, cfg.dataset.max_len, cfg.data_dir, log)
        if check is not None:
            check(data)
        placement = Placement.resolve(cfg.train.device, cfg.train.precision)
        stamp = run_stamp(stage, cfg, **stamped)
        claim_run_dir(run_dir, stamp)
        evaluator = Evaluator(data, batch_size=cfg.train.eval_batch, device=placement.device)  # numpy RNG only
        torch.manual_seed(cfg.train.seed)
        yield _Setup(started, log, data, placement, evaluator, checkpoint_stamp(stamp, placement))


def train_run(cfg: TrainRunConfig, run_dir: Path, log: Log = print) -> RunResult:
    """Train one fixed model to early stop; evaluate valid and test at the best epoch; write result.json."""
    with _running("train", cfg, run_dir, log) as run:
        model = build_model(cfg.model, run.data)
        outcome = fit(model, run.data, run.evaluator, cfg.train, run_dir=run_dir, log=run.log, stamp=run.stamp)
        result = _result("train", cfg, model, outcome, run, run_dir)
        _write(result, run_dir)
        return result


def dnsrec_run(cfg: RunConfig, run_dir: Path, log: Log = print) -> RunResult:
    """Search, derive, retrain, evaluate: the whole DNS-Rec method as one call (or a NAS baseline's search over
    the same supernet, `search.method`: dnsrec.nas.methods)."""
    method = search_method(cfg.search.method)

    def check(data: SequenceData) -> None:  # pruning, gates, heads, the controllers' own checks: before any directory
        method.controllers(method.space(cfg.space(data)), cfg.search)

    with _running("run", cfg, run_dir, log, check=check) as run:
        data, evaluator, log = run.data, run.evaluator, run.log
        space = method.space(cfg.space(data))
        supernet = Supernet(space)
        controllers = method.controllers(space, cfg.search)
        log(
            f"search space: widths {space.hidden_widths} x inner {space.inner_widths}, "
            f"L={space.n_layers}, L_d={space.gate_layers}, method {method.label}"
        )
        for note in method.notes():
            log(f"note: {note}")
        if controllers.flops_limit is not None:
            log(f"decision: the most probable architecture with at most {controllers.flops_limit[1] / 1e6:.2f}M FLOPs")
        found = search(
            supernet, controllers, data, evaluator, cfg.search, cfg.train, run_dir=run_dir, log=log, stamp=run.stamp
        )
        arch = dataclasses.replace(found.architecture, method=cfg.search.method)  # a retrain of the file names it
        if distributed.is_main():
            atomic_write_text(run_dir / "architecture.json", arch.to_json())
        log(f"decision (epoch {found.best_epoch}): depth {arch.depth}, widths {arch.hidden}, inner {arch.inner_widths}")
        if (firmness := commitment(found.trajectory, found.best_epoch)) is not None:
            log(f"commitment: {firmness.text()}")

        torch.manual_seed(cfg.train.seed)
        retrained = retrained_architecture(arch, cfg.retrain.gate_layers)
        compact = build_compact(retrained, space, cfg.retrain.shape)
        if cfg.retrain.init == "transfer":  # gates at another depth than searched have no weights to take
            fresh = gate_parameter_names(compact) if retrained.gate_layers != arch.gate_layers else set()
            transfer_weights(found.best_weights, compact, fresh)
        # The retraining starts from the search's outcome, which search.epochs (not stamped) can change.
        searched = run.stamp.with_values(searched={"steps": found.steps, "best_epoch": found.best_epoch})
        outcome = fit(compact, data, evaluator, cfg.retrain_train(), run_dir=run_dir, log=log, stamp=searched)
        result = _result(
            "run",
            cfg,
            compact,
            outcome,
            run,
            run_dir,
            **_unpruned_figures(space),
            seconds={"search": found.seconds},
            architecture=retrained.to_dict(),
            search={
                "best_epoch": found.best_epoch,
                "steps": found.steps,
                "trajectory": found.trajectory,
                **({"searched_architecture": arch.to_dict()} if retrained != arch else {}),
                **controllers.summary(),
            },
            notes=method.notes(),
        )
        _write(result, run_dir)
        return result


def retrain_run(arch: Architecture, cfg: RunConfig, run_dir: Path, log: Log = print) -> RunResult:
    """Retrain a given Architecture alone, from fresh initialisation."""

    def check(data: SequenceData) -> None:
        space = cfg.space(data)
        if (arch.d, arch.inner, arch.head_dim) != (space.d, space.inner, space.head_dim):
            raise ConfigError(
                f"architecture sizes d={arch.d}, inner={arch.inner}, head_dim={arch.head_dim} do not match "
                f"dataset.d={space.d}, dataset.inner={space.inner}, head size {space.head_dim}"
            )

    with _running("retrain", cfg, run_dir, log, check=check, architecture=arch.to_dict()) as run:
        # The un-pruned supernet is the one the architecture was searched in: its gate depth is the file's
        # (a search writes its own gates.layers there), not this run's gates.layers, which a retrain never uses.
        space = cfg.space(run.data)
        searched_in = dataclasses.replace(space, gate_layers=arch.gate_layers)
        arch = retrained_architecture(arch, cfg.retrain.gate_layers)
        compact = build_compact(arch, space, cfg.retrain.shape)
        outcome = fit(
            compact, run.data, run.evaluator, cfg.retrain_train(), run_dir=run_dir, log=run.log, stamp=run.stamp
        )
        result = _result(
            "retrain",
            cfg,
            compact,
            outcome,
            run,
            run_dir,
            **_unpruned_figures(searched_in),
            architecture=arch.to_dict(),
        )
        _write(result, run_dir)
        return result


def _write(result: RunResult, run_dir: Path) -> None:
    """Rank 0 writes result.json; every rank returns once it is there."""
    if distributed.is_main():
        result.write(run_dir)
    distributed.barrier()


def _unpruned_config(space: SearchSpace) -> SASRecConfig:
    """The supernet's shape as a plain model: L full-width layers with gates (the 'un-pruned supernet shape')."""
    return SASRecConfig(
        n_items=space.n_items,
        max_len=space.max_len,
        d=space.d,
        inner=space.inner,
        n_layers=space.n_layers,
        n_heads=space.n_heads,
        dropout=space.dropout,
        attention=space.attention,  # type: ignore[arg-type]
        gate_layers=space.gate_layers,
    )


def _unpruned_figures(space: SearchSpace) -> dict[str, Any]:
    """FLOPs and parameters of the un-pruned supernet shape, which every DNS-Rec result records beside its
    own model's (searched or retrained alone), so any such result can state the saving."""
    full = _unpruned_config(space)
    flops = model_flops(full)
    return {
        "flops": {"supernet": flops.total, "supernet_scoring": flops.scoring},
        "supernet_params": sum(p.numel() for p in SASRec(full).parameters()),
    }


def _plain(x: Any) -> Any:
    """Tuples -> lists so the stored config is plain JSON."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
