"""Architecture step against an independent computation: every scored target as its own unpadded prefix.

The reference runs the supernet on each prefix alone (batch of one, no padding, no window) and takes
torch's cross_entropy over the real items; the architecture step's alpha/beta gradient (read off one SGD
step of lr 1) must equal the reference's, for validation batches (last positions) and for training
windows (every target position, the published code's `search.arch_batch=train`).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TINY_RUN

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.errors import DNSRecError
from dnsrec.evaluate import Evaluator
from dnsrec.nas.arch_step import ArchBatch, ArchBatches, arch_step
from dnsrec.nas.controllers import Controllers
from dnsrec.nas.derive import build_compact, derive_architecture, transfer_weights
from dnsrec.nas.search import candidate_flops, load_decision
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet
from dnsrec.pipeline import dnsrec_run
from dnsrec.train.device import Placement
from dnsrec.train.loop import TrainingSamples

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
GRADIENTS_SCRIPT = BENCHMARKS / "controller_gradients.py"
PROBE_SCRIPT = BENCHMARKS / "subnet_probe.py"
COST_SCRIPT = BENCHMARKS / "search_step_cost.py"


def tiny_supernet() -> tuple[Supernet, Controllers, Evaluator, TrainingSamples]:
    data = load_dataset("gowalla-100")
    space = SearchSpace(
        n_items=data.n_items, max_len=data.max_len, d=16, inner=32, n_heads=4, n_layers=3,
        pruning=(0.0, 0.5, 0.75), gate_layers=2,
    )  # fmt: skip
    torch.manual_seed(0)
    supernet, controllers = Supernet(space).eval(), Controllers(3, 3)
    with torch.no_grad():  # away from the uniform start, so every logit has its own gradient
        controllers.alpha.normal_(0, 0.5)
        controllers.beta.normal_(0, 0.5)
    return supernet, controllers, Evaluator(data), TrainingSamples(data, "window", torch.device("cpu"))


def step_gradient(
    supernet: Supernet, controllers: Controllers, batch: ArchBatch, part_positions: int = 0, exits: str = "mixture"
) -> list[torch.Tensor]:
    """-(change of alpha, beta) under one SGD step of lr 1 = the step's gradient (CE only, lambda 0)."""
    before = [p.detach().clone() for p in controllers.parameters()]
    opt = torch.optim.SGD(controllers.parameters(), lr=1.0)
    flops = candidate_flops(supernet.space)
    placement = Placement.resolve("cpu", "fp32")
    arch_step(supernet, controllers, opt, batch, 7, 0.0, flops, placement,
              resource=False, part_positions=part_positions, exits=exits)  # fmt: skip
    after = [p.detach().clone() for p in controllers.parameters()]
    with torch.no_grad():
        for p, b in zip(controllers.parameters(), before, strict=True):
            p.copy_(b)
    return [b - a for a, b in zip(after, before, strict=True)]


def reference_gradient(
    supernet: Supernet,
    controllers: Controllers,
    prefixes: list[torch.Tensor],
    targets: list[int],
    exits: str = "mixture",
) -> list[torch.Tensor]:
    """Mixture: the CE of sum_l q_l T^(l); each: sum_l q_l CE(T^(l)), every exit read off `Supernet.exits`."""
    p, q = controllers(7)
    items = supernet.output_weight.detach()[1:]
    losses = []
    for prefix, target in zip(prefixes, targets, strict=True):
        label = torch.tensor([target - 1])
        if exits == "mixture":
            h = supernet(prefix[None], p, q)[0, -1]
            losses.append(F.cross_entropy((h @ items.T)[None], label))
        else:
            outs = supernet.exits(prefix[None], p)
            losses.append(sum(q[i] * F.cross_entropy((t[0, -1] @ items.T)[None], label) for i, t in enumerate(outs)))
    return list(torch.autograd.grad(torch.stack(losses).mean(), list(controllers.parameters())))


def assert_close(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    for g, w in zip(got, want, strict=True):
        assert w.abs().max() > 1e-5  # a real gradient, not two zeros
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


# 0: one forward of the whole batch; 1: a part per sequence; 50: several sequences per part (`search.arch_part`).
PARTS = [0, 1, 50]


@pytest.mark.parametrize("part_positions", PARTS)
def test_validation_batch_scores_each_users_last_position(part_positions: int) -> None:
    supernet, controllers, evaluator, _ = tiny_supernet()
    batch = ArchBatches(evaluator, 12, 0, torch.device("cpu")).get(3)
    lengths = batch.cols + 1
    prefixes = [batch.seqs[r, : int(n)] for r, n in enumerate(lengths)]
    want = reference_gradient(supernet, controllers, prefixes, batch.targets.tolist())
    assert_close(step_gradient(supernet, controllers, batch, part_positions), want)


@pytest.mark.parametrize("part_positions", PARTS)
def test_training_windows_equal_one_sample_per_prefix(part_positions: int) -> None:
    supernet, controllers, _, samples = tiny_supernet()
    idx = np.flatnonzero(samples.counts >= 3)[:4]
    batch = ArchBatch.windows(*samples.get(idx))
    inputs, targets = samples.get(idx)
    rows, cols = (targets > 0).nonzero(as_tuple=True)
    assert len(batch) == len(rows) > len(idx)  # several targets per window
    prefixes = [inputs[r, : int(c) + 1] for r, c in zip(rows, cols, strict=True)]
    want = reference_gradient(supernet, controllers, prefixes, targets[rows, cols].tolist())
    assert_close(step_gradient(supernet, controllers, batch, part_positions), want)


@pytest.mark.parametrize("part_positions", [0, 50])
@pytest.mark.parametrize("form", ["valid", "train"])
def test_each_exit_scored_alone_is_the_expected_ce_over_depths(form: str, part_positions: int) -> None:
    """`search.arch_exits=each`: the step's gradient is that of sum_l q_l CE(T^(l)), and not the mixture's."""
    supernet, controllers, evaluator, samples = tiny_supernet()
    with torch.no_grad():  # logits of a trained model's scale: at init's tiny logits the CE is nearly linear in
        supernet.item_emb.weight.mul_(10)  # the hidden state and the two objectives' gradients nearly agree
    if form == "valid":
        batch = ArchBatches(evaluator, 12, 0, torch.device("cpu")).get(3)
        prefixes = [batch.seqs[r, : int(c) + 1] for r, c in enumerate(batch.cols)]
        targets = batch.targets.tolist()
    else:
        inputs, windows = samples.get(np.flatnonzero(samples.counts >= 3)[:4])
        batch = ArchBatch.windows(inputs, windows)
        rows, cols = (windows > 0).nonzero(as_tuple=True)
        prefixes = [inputs[r, : int(c) + 1] for r, c in zip(rows, cols, strict=True)]
        targets = windows[rows, cols].tolist()
    got = step_gradient(supernet, controllers, batch, part_positions, exits="each")
    assert_close(got, reference_gradient(supernet, controllers, prefixes, targets, exits="each"))
    mixture = reference_gradient(supernet, controllers, prefixes, targets)
    assert not torch.allclose(got[1], mixture[1], rtol=1e-2)  # the depth's gradient is another one


@pytest.mark.parametrize("form", ["valid", "train"])
def test_parts_hold_every_scored_target_once_within_the_bound(form: str) -> None:
    _, _, evaluator, samples = tiny_supernet()
    if form == "valid":
        batch = ArchBatches(evaluator, 12, 0, torch.device("cpu")).get(3)
    else:
        batch = ArchBatch.windows(*samples.get(np.flatnonzero(samples.counts >= 3)[:5]))
    width = batch.seqs.shape[1]
    parts = batch.parts(3 * width)
    assert len(parts) == -(-len(batch.seqs) // 3) > 1
    scored = [(int(r) + 3 * k, int(c), int(t)) for k, part in enumerate(parts) for r, c, t in
              zip(part.rows, part.cols, part.targets, strict=True)]  # fmt: skip
    assert scored == list(zip(batch.rows.tolist(), batch.cols.tolist(), batch.targets.tolist(), strict=True))
    for k, part in enumerate(parts):
        assert part.seqs.numel() <= 3 * width
        assert torch.equal(part.seqs, batch.seqs[3 * k : 3 * k + 3, : part.seqs.shape[1]])
        if form == "valid":  # cut to the part's own longest history
            assert part.seqs.shape[1] == int(part.cols.max()) + 1
    assert batch.parts(0) == [batch] and batch.parts(10**9) == [batch]


def test_a_rank_share_is_the_rows_of_the_whole_batch() -> None:
    _, _, evaluator, _ = tiny_supernet()
    batches = ArchBatches(evaluator, 10, 0, torch.device("cpu"))
    whole, share = batches.get(5), batches.get(5, np.arange(4, 10))
    assert torch.equal(share.targets, whole.targets[4:])
    assert torch.equal(share.cols, whole.cols[4:])
    assert len(batches.get(5, np.arange(0))) == 0


@pytest.mark.parametrize("k", [0, 7])
def test_validation_batches_are_a_pure_function_of_seed_and_index(k: int) -> None:
    _, _, evaluator, _ = tiny_supernet()
    a = ArchBatches(evaluator, 16, 3, torch.device("cpu")).get(k)
    b = ArchBatches(evaluator, 16, 3, torch.device("cpu")).get(k)
    assert torch.equal(a.seqs, b.seqs) and torch.equal(a.targets, b.targets)


def test_controller_gradients_report_on_a_finished_run(tmp_path: Path) -> None:
    """benchmarks/controller_gradients.py on a tiny run: one row per candidate and per depth; L_RC's
    gradient on softmax logits sums to zero over each controller (a property of softmax, so wiring the
    gradient to p or q instead of the logits would fail here)."""
    dnsrec_run(RunConfig.from_mapping(compose("run", TINY_RUN)), tmp_path, log=lambda _: None)
    out = subprocess.run(
        [sys.executable, str(GRADIENTS_SCRIPT), str(tmp_path), "--batches", "2", "--", *TINY_RUN],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith(("alpha[", "beta["))]
    assert [r[0] for r in rows] == [
        "alpha[width 16]",
        "alpha[width 8]",
        "alpha[width 4]",
        "beta[depth 1]",
        "beta[depth 2]",
    ]  # fmt: skip  (the tiny run: d 16, pruning {0, 50, 75}%, 2 layers)
    rc = [float(r[3]) for r in rows]
    assert abs(sum(rc[:3])) < 1e-4 and abs(sum(rc[3:])) < 1e-4 and max(map(abs, rc)) > 1e-3
    assert "lambda at which" in out.splitlines()[-1]


def test_subnet_probe_scores_the_choice_as_its_compact_model(tmp_path: Path) -> None:
    """benchmarks/subnet_probe.py on a tiny run: one row per (depth, width); the search's choice scores what the
    `wide` compact model with the transferred decision-epoch weights scores (an independent forward), and its
    FLOPs column is the retrained model's as result.json records it."""
    cfg = RunConfig.from_mapping(compose("run", TINY_RUN))
    dnsrec_run(cfg, tmp_path, log=lambda _: None)
    out = subprocess.run(
        [sys.executable, str(PROBE_SCRIPT), str(tmp_path), "--", *TINY_RUN],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    rows = [line.split(" | ") for line in out.splitlines() if line[:1].isdigit()]
    assert sorted((int(r[0]), int(r[1])) for r in rows) == [(d, w) for d in (1, 2) for w in (4, 8, 16)]
    chosen = next(r for r in rows if r[-1] == "<-")
    result = json.loads((tmp_path / "result.json").read_text())
    assert float(chosen[3]) == pytest.approx(result["flops"]["model"] / 1e6, abs=0.005)

    data = load_dataset("gowalla-100")
    space = cfg.space(data)
    supernet, at = load_decision(tmp_path, space)
    arch = derive_architecture(space, at["candidates"], at["depth"])
    compact = build_compact(arch, space, shape="wide").eval()
    transfer_weights(supernet, compact)
    with torch.no_grad():
        want = Evaluator(data).evaluate(compact.score, "valid")["pop100/ndcg@10"]
    assert float(chosen[4]) == pytest.approx(want, abs=1e-4)


def test_search_step_cost_benchmark_prints_every_form(tmp_path: Path) -> None:
    """benchmarks/search_step_cost.py on the tiny supernet: one row per step form (timings not asserted)."""
    tiny = ["dataset.d=16", "dataset.inner=32", "search.layers=2", "search.batch=256", "search.arch_part=512"]
    out = subprocess.run(
        [sys.executable, str(COST_SCRIPT), "--dataset", "gowalla-100", "--repeats", "1", "--", *tiny],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    names = [line.split(" | ")[0] for line in out.splitlines() if line.count(" | ") == 4][1:]
    assert names == [
        "weight step",
        "  the same, every exit trained (search.weight_exits=each)",
        "arch step, validation batch (97 users), parts of 512 positions",
        "  the same batch in one forward",
        "  the same, final layer at every position (old form)",
        "arch step, training windows",
        "arch step, one prefix per target (old form), 128 targets",
        "arch step, validation batch in parts, every exit scored (search.arch_exits=each)",
        "arch step, training windows, every exit scored (search.arch_exits=each)",
    ]
    assert out.splitlines()[-5].startswith("validation batch in parts of 512 positions against one forward: ")
    assert out.splitlines()[-4].startswith("validation batch, final layer at the last position only: ")
    assert out.splitlines()[-3].startswith("weight step training every exit: ")
    assert out.splitlines()[-2].startswith("arch step scoring every exit against the mixture's: validation batch ")
    assert out.splitlines()[-1].startswith("seconds per target: training windows ")


def test_controller_gradients_train_batches_are_the_searchs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--ce-batch train` takes the training batches the search's architecture steps took in the decision epoch:
    checked against the batches a spy on the search's `arch_step` saw, per epoch (3 epochs, an architecture
    step every 4th weight step, a count that does not divide an epoch's steps, so the picks shift by epoch)."""
    import dnsrec.nas.search as search_module

    overrides = [*TINY_RUN, "search.epochs=3", "search.arch_every=4", "search.arch_batch=train"]
    seen: list[tuple[int, list[int]]] = []  # (global weight step, the batch's targets)

    def spy(net: Supernet, ctl: Controllers, opt: torch.optim.Optimizer, batch: ArchBatch, step: int, *a, **k):  # type: ignore[no-untyped-def]
        seen.append((step, batch.targets.tolist()))
        return arch_step(net, ctl, opt, batch, step, *a, **k)

    monkeypatch.setattr(search_module, "arch_step", spy)
    cfg = RunConfig.from_mapping(compose("run", overrides))
    dnsrec_run(cfg, tmp_path, log=lambda _: None)
    script = _gradients_script()
    data = load_dataset("gowalla-100")
    samples = TrainingSamples(data, "window", torch.device("cpu"))
    rng = np.random.default_rng
    counts = [len(samples.steps(512, rng([cfg.train.seed, e]), cfg.train.bucket)) for e in (1, 2, 3)]
    assert counts[0] % 4 != 0  # else the global count would not matter
    bounds = np.cumsum([0, *counts])
    for epoch in (1, 2, 3):
        want = [t for step, t in seen if bounds[epoch - 1] < step <= bounds[epoch]]
        picked = script.ce_batches("train", data, cfg, 0, len(want), Placement.resolve("cpu", "fp32"), epoch)
        assert want and [b.targets.tolist() for b in picked] == want, f"epoch {epoch}"


def test_controller_gradients_refuses_train_batches_of_a_warm_up_epoch() -> None:
    """A decision epoch inside the warm-up took no architecture steps: a one-line error, not batches it never saw."""
    script = _gradients_script()
    cfg = RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.epochs=3", "search.warmup=0.34"]))
    data = load_dataset("gowalla-100")
    with pytest.raises(DNSRecError, match=r"decision epoch 1 lies in the search's warm-up \(search\.warmup=0\.34\)"):
        script.ce_batches("train", data, cfg, 0, 1, Placement.resolve("cpu", "fp32"), 1)
    assert script.ce_batches("train", data, cfg, 0, 1, Placement.resolve("cpu", "fp32"), 2)  # after it: batches


def _gradients_script() -> ModuleType:
    """benchmarks/controller_gradients.py as a module (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("controller_gradients", GRADIENTS_SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script
