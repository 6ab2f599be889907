"""Training engines: one interface for the retraining loop and the search's weight steps.

`make_engine(model, loss_fn, cfg, ...)` returns a `TorchEngine` (plain `torch.optim.Adam`) or a
`DeepSpeedEngine` (DeepSpeed ZeRO stage 0-3 around the same client `torch.optim.Adam`, no gradient
clipping, constant learning rate: the same update as plain torch). Either runs on one process or on
many (`dnsrec.train.distributed`). One training step on a GLOBAL batch (`Engine.train_step`):

- the step's samples are cut into `world_size x micro_batches` contiguous parts of about equal target
  counts (`split_step`, a pure function of the step, so every rank computes the same cut); rank r takes
  parts r*k .. r*k+k-1 and runs them as k micro-batches of gradient accumulation;
- each micro-batch's summed CE is divided by (the step's target count / world_size), and the engines
  average gradients over ranks, so the summed gradient is the gradient of the whole step's mean CE,
  whatever the shards' sizes;
- a rank whose part is empty (a step with fewer samples than parts) runs one sample with weight 0, so
  every rank takes part in every collective;
- the reported loss is the step's mean CE, all-reduced, identical on every rank.

DeepSpeed is imported only inside `DeepSpeedEngine`. It trains a deep copy of the caller's model (ZeRO-3
partitions parameters in place and every stage attaches hooks); `Engine.weights()` lends a plain module
holding the current weights (evaluation, architecture steps) and `Engine.state_dict()` a full CPU copy.
Checkpoints: `save` writes what the engine owns (torch: state dicts returned for the caller's resume
file; DeepSpeed: one ZeRO checkpoint per rank under a directory, collectively) and returns the entries
the caller stores; `load` takes them back.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dnsrec.config import TrainConfig
from dnsrec.errors import CheckpointError, ConfigError
from dnsrec.train import distributed
from dnsrec.train.checkpoint import check_digests, file_digests, load_model_state
from dnsrec.train.device import Placement

LossFn = Callable[..., Tensor]  # loss_fn(model, *batch, denominator=float) -> summed CE / denominator


def split_step(idx: np.ndarray, counts: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """Cut one step's samples (in their order) into `n_parts` contiguous parts of about equal targets.

    Part j ends where the running target count first reaches (j + 1) / n_parts of the step's targets;
    a part may be empty when the step holds fewer samples than parts.
    """
    if n_parts == 1:
        return [idx]
    cum = np.cumsum(counts[idx])  # targets up to and including each sample
    total = cum[-1] if len(cum) else 0
    bounds = [int(np.searchsorted(cum, total * j / n_parts, side="left")) + 1 for j in range(1, n_parts)]
    bounds = [min(b, len(idx)) for b in bounds]
    return np.split(idx, bounds)


class _LossModule(nn.Module):
    """The network plus its loss as one module, the shape DeepSpeed wraps (its forward returns the loss)."""

    def __init__(self, net: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.net = net
        self.loss_fn = loss_fn

    def forward(self, *batch: Any, denominator: float) -> Tensor:
        return self.loss_fn(self.net, *batch, denominator=denominator)


class Engine(ABC):
    """Trains `model` on the loss `loss_fn(model, *batch, denominator=...)`; see the module docstring."""

    kind: str
    micro_batches: int  # micro-batches per rank per step (gradient accumulation)

    def __init__(self, micro_batches: int) -> None:
        self.micro_batches = micro_batches
        self.rank, self.world_size = distributed.rank(), distributed.world_size()

    # --- one step -------------------------------------------------------------------------------------
    def my_parts(self, idx: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
        """This rank's micro-batches of the global step `idx` (sample indices with `counts` targets each)."""
        k = self.micro_batches
        return split_step(idx, counts, self.world_size * k)[self.rank * k : (self.rank + 1) * k]

    def train_step(
        self, idx: np.ndarray, counts: np.ndarray, batch_of: Callable[[np.ndarray], tuple[Any, ...]]
    ) -> float:
        """One optimizer step on the global batch `idx`; `batch_of(part)` gives a part's loss arguments.
        Returns the step's mean loss (the same on every rank)."""
        denominator = float(counts[idx].sum()) / self.world_size
        local = torch.zeros((), dtype=torch.float64, device=self.device)  # summed on the device: one sync
        for part in self.my_parts(idx, counts):
            empty = len(part) == 0
            loss = self.forward(*batch_of(idx[:1] if empty else part), denominator=denominator)
            if empty:
                loss = loss * 0.0  # takes part in the collectives, changes no gradient
            self.add_micro_batch(loss)
            local += loss.detach().double()
        self.finish_step()
        return float(distributed.all_reduce_sum(local).item()) / self.world_size

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def set_training(self, mode: bool) -> None:
        """Training mode (dropout on) or evaluation mode for the trained network."""

    @abstractmethod
    def forward(self, *batch: Any, denominator: float) -> Tensor: ...

    @abstractmethod
    def add_micro_batch(self, loss: Tensor) -> None:
        """Backpropagate one micro-batch's loss into the step's gradient (DeepSpeed also counts the
        micro-step here and applies the update itself at the accumulation boundary)."""

    @abstractmethod
    def finish_step(self) -> None:
        """End the step: apply the accumulated update (plain torch) or check that it was applied."""

    # --- the weights ----------------------------------------------------------------------------------
    @abstractmethod
    def weights(self) -> contextlib.AbstractContextManager[nn.Module]:
        """A plain module holding the current weights, for evaluation and forward passes outside the
        engine (collective under ZeRO-3: every rank must enter it)."""

    def state_dict(self) -> dict[str, Tensor]:
        """A full copy of the model's current weights on the CPU."""
        with self.weights() as net:
            return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}

    @abstractmethod
    def optimizer_shard_numel(self) -> int:
        """Optimizer (fp32 master) elements this rank holds: all of them, or its ZeRO partition."""

    # --- checkpoints ----------------------------------------------------------------------------------
    @abstractmethod
    def save(self, directory: Path, tag: str) -> dict[str, Any]:
        """Save the weights and optimizer state (collective); returns the entries of the resume file."""

    @abstractmethod
    def load(self, directory: Path, entries: dict[str, Any], source: Path) -> None:
        """Restore what `save` wrote; `source` (the resume file) names the run in errors."""

    def prune(self, directory: Path, keep: str) -> None:
        """Remove checkpoints older than `keep` once the resume file points at it (rank 0)."""
        return None


class TorchEngine(Engine):
    """Plain torch: Adam on the model in place; several ranks average gradients (as DDP does)."""

    kind = "torch"

    def __init__(self, model: nn.Module, loss_fn: LossFn, lr: float, weight_decay: float, micro_batches: int) -> None:
        super().__init__(micro_batches)
        self.model = model
        self.module = _LossModule(model, loss_fn)
        distributed.broadcast_module_(model)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def set_training(self, mode: bool) -> None:
        self.model.train(mode)

    def forward(self, *batch: Any, denominator: float) -> Tensor:
        loss: Tensor = self.module(*batch, denominator=denominator)
        return loss

    def add_micro_batch(self, loss: Tensor) -> None:
        loss.backward()

    def finish_step(self) -> None:
        distributed.all_reduce_grads_(self.model.parameters(), average=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @contextlib.contextmanager
    def weights(self) -> Iterator[nn.Module]:
        yield self.model

    def optimizer_shard_numel(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def save(self, directory: Path, tag: str) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load(self, directory: Path, entries: dict[str, Any], source: Path) -> None:
        if "zero" in entries:
            raise CheckpointError(f"{source} was written by the deepspeed engine; rerun with train.engine=deepspeed")
        load_model_state(self.model, entries["model"], source)
        self.optimizer.load_state_dict(entries["optimizer"])


class DeepSpeedEngine(Engine):
    """DeepSpeed ZeRO around a client `torch.optim.Adam`, weights in fp32 (bf16 comes from the caller's
    autocast, as in the torch engine), `gradient_clipping` 0, no scheduler."""

    kind = "deepspeed"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        lr: float,
        weight_decay: float,
        micro_batches: int,
        zero_stage: int,
        placement: Placement,
    ) -> None:
        deepspeed = _import_deepspeed(placement)
        super().__init__(micro_batches)
        self.zero_stage = zero_stage
        self.plain = model  # the caller's module: never touched by DeepSpeed, refreshed for ZeRO-3 reads
        net = copy.deepcopy(model)
        module = _LossModule(net, loss_fn)
        if zero_stage == 3 and hasattr(net, "output_weight"):
            # The tied output layer is read by the loss outside the embedding's own forward.
            deepspeed.zero.register_external_parameter(module, net.output_weight)
        optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
        config = {
            # DeepSpeed counts samples; ours are variable-size, so these are bookkeeping: one "sample" per
            # micro-batch. The real batch is cut by `split_step`.
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": micro_batches,
            "train_batch_size": micro_batches * self.world_size,
            "gradient_clipping": 0.0,  # DeepSpeed's default is 1.0; plain torch does not clip
            # memory_efficient_linear (on by default) makes ZeRO-3 replace torch.nn.functional.linear for the
            # whole process, and the replacement outlives the engine: a later export in that process (its
            # torch.jit trace) then fails. Our linears are small next to the catalogue CE, so it stays off.
            "zero_optimization": {"stage": zero_stage, "memory_efficient_linear": False},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 2**31 - 1,
            "wall_clock_breakdown": False,
        }
        self.ds, self.optimizer, _, _ = deepspeed.initialize(model=module, optimizer=optimizer, config=config)
        self.net = net

    @property
    def device(self) -> torch.device:
        return torch.device(self.ds.device)

    def set_training(self, mode: bool) -> None:
        self.ds.train(mode)

    def forward(self, *batch: Any, denominator: float) -> Tensor:
        loss: Tensor = self.ds(*batch, denominator=denominator)
        return loss

    def add_micro_batch(self, loss: Tensor) -> None:
        # The loss is already divided by the step's targets: no further division by the accumulation
        # steps. DeepSpeed then averages over ranks, as the shards' denominators assume.
        self.ds.backward(loss, scale_wrt_gas=False)
        self.ds.step()  # applies the update only at the accumulation boundary (micro_batches calls)

    def finish_step(self) -> None:
        if self.ds.micro_steps % self.micro_batches:
            raise RuntimeError(f"DeepSpeed is off its accumulation boundary ({self.ds.micro_steps} micro-steps)")

    @contextlib.contextmanager
    def weights(self) -> Iterator[nn.Module]:
        if self.zero_stage < 3:
            yield self.net  # stages 0-2 keep a full, up-to-date copy of the weights on every rank
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(self.net.parameters()), modifier_rank=None):
            state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.plain.to(self.device).load_state_dict(state)
        self.plain.train(self.net.training)
        yield self.plain

    def optimizer_shard_numel(self) -> int:
        groups = getattr(self.optimizer, "single_partition_of_fp32_groups", None)  # ZeRO-1/2
        if groups is None:
            groups = getattr(self.optimizer, "fp32_partitioned_groups_flat", None)  # ZeRO-3
        if groups is None:  # stage 0: the client optimizer, unpartitioned
            return sum(p.numel() for g in self.optimizer.param_groups for p in g["params"])
        return sum(int(g.numel()) for g in groups)

    def save(self, directory: Path, tag: str) -> dict[str, Any]:
        self.ds.save_checkpoint(str(directory), tag=tag, save_latest=False)
        distributed.barrier()  # every rank's shard is on disk before rank 0 points the resume file at it
        files = file_digests(directory / tag)  # what `load` checks before DeepSpeed unpickles anything
        return {"zero": {"tag": tag, "stage": self.zero_stage, "world_size": self.world_size, "files": files}}

    def load(self, directory: Path, entries: dict[str, Any], source: Path) -> None:
        zero = entries.get("zero")
        if zero is None:
            raise CheckpointError(f"{source} was written by the torch engine; rerun with train.engine=torch")
        if (zero["stage"], zero["world_size"]) != (self.zero_stage, self.world_size):
            raise CheckpointError(
                f"{source} holds a ZeRO-{zero['stage']} checkpoint of {zero['world_size']} ranks; this run is "
                f"ZeRO-{self.zero_stage} on {self.world_size}: resume with the same train.zero_stage and ranks"
            )
        # DeepSpeed reads its checkpoint with torch.load(weights_only=False), i.e. as pickles that can run
        # code, and offers no safe mode (its files hold optimizer objects). So it is given only this run's
        # own files: the resume file (read with weights_only=True, its config stamp checked) records their
        # SHA-256, and any file added, removed or changed since is refused before DeepSpeed opens one.
        check_digests(directory / zero["tag"], zero.get("files"), source)
        path, _ = self.ds.load_checkpoint(
            str(directory), tag=zero["tag"], load_optimizer_states=True, load_lr_scheduler_states=False
        )
        if path is None:
            raise CheckpointError(f"ZeRO checkpoint {directory / zero['tag']} named by {source} is missing")

    def prune(self, directory: Path, keep: str) -> None:
        if not distributed.is_main() or not directory.is_dir():
            return
        for old in directory.iterdir():
            if old.is_dir() and old.name != keep:
                shutil.rmtree(old, ignore_errors=True)


def _import_deepspeed(placement: Placement) -> Any:
    """Import DeepSpeed for `placement`'s device and join (or create) the process group it uses."""
    if placement.device.type == "cpu" and "deepspeed" not in sys.modules:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # a CPU run on a GPU machine
    try:
        import deepspeed
        import deepspeed.ops
        from deepspeed.accelerator import get_accelerator
    except ImportError as e:
        raise ConfigError(
            "config key 'train.engine': 'deepspeed' needs DeepSpeed: pip install 'dnsrec[deepspeed]'"
        ) from e
    for name in ("DeepSpeed", "deepspeed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    accelerator = get_accelerator().device_name()
    if accelerator != placement.device.type:
        raise ConfigError(
            f"config key 'train.device': DeepSpeed runs on {accelerator!r} here, the run on "
            f"{placement.device.type!r} (set DS_ACCELERATOR={placement.device.type} before starting)"
        )
    if accelerator == "cpu":
        # The shared-memory comm op speeds up only DeepSpeed's inference all-reduce, which training never
        # calls, and costs a 25-120 s C++ compile at first use; gloo does everything we need without it.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    if distributed.init_from_env(placement.device.type).world_size == 1:
        distributed.one_process_group(accelerator)
    deepspeed.init_distributed(dist_backend="gloo" if accelerator == "cpu" else "nccl")
    return deepspeed


def make_engine(
    model: nn.Module,
    loss_fn: LossFn,
    cfg: TrainConfig,
    placement: Placement,
    *,
    batch: int,
    weight_decay: float,
) -> Engine:
    """The engine `cfg.engine` for `model` (already on `placement.device`), steps of `batch` targets."""
    env = distributed.init_from_env(placement.device.type)
    micro_batches = cfg.micro_batches(batch, env.world_size)
    if cfg.engine == "deepspeed":
        return DeepSpeedEngine(model, loss_fn, cfg.lr, weight_decay, micro_batches, cfg.zero_stage, placement)
    if cfg.engine == "torch":
        return TorchEngine(model, loss_fn, cfg.lr, weight_decay, micro_batches)
    raise ConfigError(f"config key 'train.engine': expected 'torch' or 'deepspeed', got {cfg.engine!r}")
