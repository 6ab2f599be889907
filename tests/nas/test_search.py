"""Bilevel search: step separation, the resource constraint acting, determinism, resume, a whole run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_runs import TINY_RUN

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config import TrainConfig
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.errors import CheckpointError
from dnsrec.evaluate import Evaluator
from dnsrec.nas.arch_step import ArchBatches, arch_step
from dnsrec.nas.controllers import Controllers, temperature
from dnsrec.nas.search import candidate_flops, search, supernet_loss, weight_step
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet
from dnsrec.pipeline import dnsrec_run
from dnsrec.train.checkpoint import load_checkpoint, save_checkpoint
from dnsrec.train.device import Placement
from dnsrec.train.engine import make_engine

QUIET = {"log": lambda _: None}


def tiny(*extra: str) -> RunConfig:
    return RunConfig.from_mapping(compose("run", [*TINY_RUN, *extra]))


def setup(lam_gates: int = 1) -> tuple[Supernet, Controllers, Evaluator, SearchSpace]:
    data = load_dataset("gowalla-100")
    space = SearchSpace(
        n_items=data.n_items,
        max_len=data.max_len,
        d=16,
        inner=32,
        n_heads=4,
        n_layers=2,
        pruning=(0.0, 0.5, 0.75),
        gate_layers=lam_gates,
    )
    torch.manual_seed(0)
    return Supernet(space), Controllers(2, 3), Evaluator(data), space


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_steps_touch_only_their_own_parameters() -> None:
    supernet, controllers, evaluator, space = setup()
    placement = Placement.resolve("cpu", "fp32")
    train = TrainConfig(lr=1e-2)
    engine = make_engine(supernet, supernet_loss(placement), train, placement, batch=10**6, weight_decay=0.0)
    a_opt = torch.optim.Adam(controllers.parameters(), lr=1e-2)
    arch_batch = ArchBatches(evaluator, 32, 0, torch.device("cpu")).get(0)
    seqs = arch_batch.seqs
    window_targets = torch.zeros_like(seqs)
    window_targets[:, :-1] = seqs[:, 1:]
    idx, counts = np.arange(len(seqs)), (window_targets > 0).sum(dim=1).numpy()

    w0, a0 = snapshot(supernet), snapshot(controllers)
    weight_step(engine, controllers, idx, counts, lambda part: (seqs[part], window_targets[part]), 5)
    assert changed(w0, supernet) and not changed(a0, controllers)

    w1, a1 = snapshot(supernet), snapshot(controllers)
    arch_step(supernet, controllers, a_opt, arch_batch, 6, 0.1, candidate_flops(space), placement)
    assert changed(a1, controllers) and not changed(w1, supernet)
    assert all(p.grad is None for p in supernet.parameters())


def test_temperature_is_a_pure_schedule() -> None:
    assert temperature(0) == 1.0 and temperature(10_000) == pytest.approx(0.5) and temperature(10**7) == 0.01


@pytest.mark.parametrize("lams", [(0.0, 1.0, 100.0)])
def test_larger_lambda_never_gives_larger_expected_flops(lams: tuple[float, ...], tmp_path: Path) -> None:
    """Same seed and data, only lambda differs: the searched expected FLOPs must not grow with lambda."""
    final = []
    for lam in lams:
        cfg = tiny(f"search.lam={lam}", "search.arch_every=1", "search.arch_lr=0.05", "search.epochs=2")
        supernet, controllers, evaluator, _ = setup()
        data = load_dataset("gowalla-100")
        out = search(supernet, controllers, data, evaluator, cfg.search, cfg.train, **QUIET)
        final.append(out.trajectory[-1]["expected_flops"])
    assert all(a >= b for a, b in itertools.pairwise(final)), final
    assert final[-1] < 0.9 * final[0], final  # the constraint really acts, not a tie


def test_search_with_architecture_steps_on_training_batches() -> None:
    """`search.arch_batch=train` (the published code): alpha/beta move, and differently from `valid`."""
    trajectories = []
    for where in ("train", "valid"):
        cfg = tiny(f"search.arch_batch={where}", "search.epochs=1", "search.arch_every=1")
        supernet, controllers, evaluator, _ = setup()
        out = search(supernet, controllers, load_dataset("gowalla-100"), evaluator, cfg.search, cfg.train, **QUIET)
        trajectories.append(out.trajectory[-1])
    train, valid = trajectories
    assert any(abs(b) > 1e-4 for b in train["beta"]) and train["beta"] != valid["beta"]


def test_same_seed_same_architecture_and_metrics(tmp_path: Path) -> None:
    a = dnsrec_run(tiny(), tmp_path / "a", **QUIET)
    b = dnsrec_run(tiny(), tmp_path / "b", **QUIET)
    assert a.architecture == b.architecture and a.metrics == b.metrics
    assert a.search is not None and b.search is not None
    assert a.search["trajectory"][0]["alpha"] == b.search["trajectory"][0]["alpha"]


def test_whole_run_result_and_resume(tmp_path: Path) -> None:
    # A search of 1 epoch stands for one interrupted after its first epoch: that is the same state only
    # under the step-counted temperature (spread over the whole search, tau depends on search.epochs) and
    # without the depth hold (a fraction of the whole search's architecture steps).
    def tiny(*extra: str) -> RunConfig:
        overrides = [*TINY_RUN, "search.tau_schedule=steps", "search.depth_hold=0", *extra]
        return RunConfig.from_mapping(compose("run", overrides))

    straight = dnsrec_run(tiny("search.epochs=2"), tmp_path / "straight", **QUIET)
    # Interrupted after the first search epoch, then the same command again on the same directory.
    dnsrec_run(tiny("search.epochs=1", "retrain.max_epochs=1"), tmp_path / "resumed", **QUIET)
    (tmp_path / "resumed" / "last.pt").unlink()  # the retraining had not started yet
    (tmp_path / "resumed" / "best.pt").unlink()
    logs: list[str] = []
    resumed = dnsrec_run(tiny("search.epochs=2"), tmp_path / "resumed", log=logs.append)
    assert any("resuming search" in line for line in logs)
    assert resumed.architecture == straight.architecture and resumed.metrics == straight.metrics
    assert resumed.search is not None and straight.search is not None
    assert [e["alpha"] for e in resumed.search["trajectory"]] == [e["alpha"] for e in straight.search["trajectory"]]

    r = straight
    assert r.stage == "run" and r.schema_version == 1
    assert set(r.metrics) == {"valid", "test"} and "full/ndcg@10" in r.metrics["test"]
    assert 0 < r.flops["model"] <= r.flops["supernet"] and r.supernet_params and r.n_params <= r.supernet_params
    assert {"search", "retrain", "inference"} <= set(r.seconds) and r.peak_memory_mb > 0
    traj = r.search["trajectory"]
    assert len(traj) == 2 and {"alpha", "beta", "tau", "expected_flops", "valid"} <= set(traj[0])
    arch = json.loads((tmp_path / "straight" / "architecture.json").read_text())
    assert arch["hidden"] == r.architecture["hidden"]


def test_retrain_cli_from_architecture_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = {"d": 16, "inner": 32, "head_dim": 4, "hidden": [8], "inner_widths": [16], "gate_layers": 1}
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    assert main(["retrain", str(tmp_path / "arch.json"), *TINY_RUN, f"run_dir={tmp_path / 'r'}"]) == 0
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["stage"] == "retrain" and result["architecture"]["hidden"] == [8]
    assert "pop100/ndcg@10" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.pruning=[0.0,0.3]", "dataset.pruning"),
        ("gates.layers=5", "gates.layers"),
        ("search.lam=-0.1", "search.lam"),
        ("dataset.pruning=[0.0,0.25,0.5,0.75,0.8]", "dataset.pruning"),
        ("retrain.shape=square", "retrain.shape"),
    ],
)
def test_bad_run_input_is_refused_at_start(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *TINY_RUN, override, f"run_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnsrec: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "result.json").exists() and not (tmp_path / "search.pt").exists()


def test_search_pt_of_the_older_layout_resumes_and_a_damaged_one_is_one_clear_error(tmp_path: Path) -> None:
    """`search.pt` keeps its layout (SearchState saved as a plain dict): a file with the weights under the
    oldest keys (supernet, w_opt) still resumes; one missing an entry is a CheckpointError naming the file."""
    cfg = tiny("search.epochs=1", "search.arch_every=1")
    data = load_dataset("gowalla-100")

    def run(log: list[str]) -> Any:
        supernet, controllers, evaluator, _ = setup()
        return search(supernet, controllers, data, evaluator, cfg.search, cfg.train, tmp_path, log=log.append)

    first = run([])
    saved = load_checkpoint(tmp_path / "search.pt")
    weights = saved.pop("weights")
    save_checkpoint(tmp_path / "search.pt", {**saved, "supernet": weights["model"], "w_opt": weights["optimizer"]})
    logs: list[str] = []
    again = run(logs)  # nothing left to run: the state, decision and trajectory come from the file
    assert any(line.startswith("resuming search from") and "after epoch 1" in line for line in logs)
    assert again.trajectory == first.trajectory and again.architecture == first.architecture

    del saved["a_opt"]
    save_checkpoint(tmp_path / "search.pt", {**saved, "weights": weights})
    with pytest.raises(CheckpointError, match=r"search\.pt is not a search resume file .*\(KeyError: 'a_opt'\)"):
        run([])
