"""Engine pieces on one process: the step split, rank discovery, config errors, gradient accumulation, and
each DeepSpeed ZeRO stage against plain torch."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch
from train_support import load_worker

from dnsrec.compose import compose
from dnsrec.config import TrainConfig
from dnsrec.config.run import RunConfig, TrainRunConfig
from dnsrec.errors import ConfigError
from dnsrec.train.distributed import DistEnv, epoch_seed, read_env
from dnsrec.train.engine import split_step


@pytest.mark.parametrize("n_parts", [1, 2, 3, 4, 7])
def test_split_step_keeps_order_and_balances_targets(n_parts: int) -> None:
    rng = np.random.default_rng(n_parts)
    counts = rng.integers(1, 50, size=200)
    idx = rng.permutation(200)[:37]
    parts = split_step(idx, counts, n_parts)
    assert len(parts) == n_parts
    assert np.array_equal(np.concatenate(parts), idx)
    targets = [int(counts[p].sum()) for p in parts]
    assert max(targets) - min(targets) <= 2 * int(counts[idx].max())


def test_split_step_with_fewer_samples_than_parts() -> None:
    counts = np.array([5, 1, 9])
    parts = split_step(np.array([2, 0]), counts, 4)
    assert len(parts) == 4 and np.array_equal(np.concatenate(parts), [2, 0])
    assert sum(len(p) == 0 for p in parts) == 2


def test_ranks_from_torchrun_slurm_or_nothing() -> None:
    torchrun = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h1", "MASTER_PORT": "1234"}
    assert read_env(torchrun) == DistEnv(1, 4, 1, "h1", 1234, "torchrun")
    slurm = {
        "SLURM_PROCID": "3",
        "SLURM_NTASKS": "4",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "gpu[07-08],cpu1",
        "SLURM_JOB_ID": "991",
    }
    env = read_env(slurm)
    assert (env.rank, env.world_size, env.local_rank, env.master_addr, env.source) == (3, 4, 1, "gpu07", "slurm")
    assert env.master_port is not None and 20000 <= env.master_port <= 60000
    assert read_env(slurm).master_port == env.master_port  # every task derives the same port from the job id
    assert read_env({**slurm, "MASTER_PORT": "29999"}).master_port == 29999
    assert read_env({**slurm, **torchrun}).source == "torchrun"  # torchrun inside a SLURM job wins
    assert read_env({}) == DistEnv()
    with pytest.raises(ConfigError, match="rank 4"):
        read_env({**slurm, "SLURM_PROCID": "4"})


def test_epoch_seeds_differ_by_epoch_and_rank() -> None:
    seeds = {epoch_seed(0, e, r) for e in range(1, 4) for r in range(3)}
    assert len(seeds) == 9 and epoch_seed(0, 1, 0) == epoch_seed(0, 1, 0)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.engine=jax", "train.engine"),
        ("train.zero_stage=4", "train.zero_stage"),
        ("train.zero_stage=-1", "train.zero_stage"),
        ("train.grad_accum=0", "train.grad_accum"),
        ("train.micro_batch=0", "train.micro_batch"),
    ],
)
def test_bad_engine_settings_name_the_key(override: str, key: str) -> None:
    for config, build in (("train", TrainRunConfig.from_mapping), ("run", RunConfig.from_mapping)):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            build(compose(config, [override]))


def test_micro_batch_and_grad_accum_are_alternatives() -> None:
    with pytest.raises(ConfigError, match=r"train\.micro_batch"):
        TrainConfig(grad_accum=2, micro_batch=100)
    assert TrainConfig(grad_accum=3).micro_batches(2048, 2) == 3
    assert TrainConfig(micro_batch=300).micro_batches(2048, 2) == 4  # ceil(2048 / (2 * 300))
    assert TrainConfig(micro_batch=4096).micro_batches(2048, 1) == 1


@functools.cache
def reference() -> dict[str, Any]:
    """Six steps of the torch engine, one process, one micro-batch per step (computed once per module;
    called from inside tests, where the data directory is set)."""
    return load_worker().steps(n_steps=6)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("grad_accum", "n_steps"), [(3, 6), (16, 2)])
def test_gradient_accumulation_gives_the_same_steps(grad_accum: int, n_steps: int) -> None:
    """16 micro-batches of a 256-target step leave some empty (fewer windows than parts): they run one
    window with weight 0, which changes nothing."""
    plain, accumulated = reference(), load_worker().steps(n_steps=n_steps, grad_accum=grad_accum)
    assert np.max(np.abs(np.subtract(plain["losses"][:n_steps], accumulated["losses"]))) < 1e-5


@pytest.mark.parametrize("stage", [0, 1, 3])
def test_deepspeed_stage_on_one_process_matches_torch(stage: int) -> None:
    """ZeRO-2, the default, is compared on two ranks in test_ranks.py."""
    linear = torch.nn.functional.linear
    plain, ds = reference(), load_worker().steps(n_steps=6, engine="deepspeed", zero_stage=stage)
    assert torch.nn.functional.linear is linear, "DeepSpeed left torch.nn.functional.linear replaced"
    assert np.max(np.abs(np.subtract(plain["losses"], ds["losses"]))) < 1e-5
    assert ds["shard_numel"] == ds["n_params"]  # one rank holds every partition
    assert ds["weights_sum"] == pytest.approx(plain["weights_sum"], rel=1e-6)
