"""The NAS baselines over the DNS-Rec supernet (`search.method`, dnsrec.nas.methods): what each does differently
(ProxylessNAS's one path per step and binarised gradients, DARTS's CE-only loss, RecNAS's pruning schedule and
bounded selection), and a tiny whole run of each: it derives a valid architecture, retrains, and is recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TINY_RUN

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.errors import ConfigError
from dnsrec.evaluate import Evaluator
from dnsrec.nas.arch_step import ArchBatches, arch_ce, arch_step
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.methods import (
    METHODS,
    DARTSControllers,
    ProxylessControllers,
    RecNASControllers,
    recnas_pruned,
    search_method,
)
from dnsrec.nas.search import candidate_flops, search
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet
from dnsrec.results import open_store
from dnsrec.run_result import RunResult
from dnsrec.train.device import Placement

CPU = Placement.resolve("cpu", "fp32")


def tiny_space(gate_layers: int = 0) -> tuple[SearchSpace, Evaluator]:
    data = load_dataset("gowalla-100")
    space = SearchSpace(
        n_items=data.n_items,
        max_len=data.max_len,
        d=16,
        inner=32,
        n_heads=4,
        n_layers=2,
        pruning=(0.0, 0.5, 0.75),
        gate_layers=gate_layers,
    )
    return space, Evaluator(data)


def one_hot_rows(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all() and (x.sum(dim=-1) == 1).all())


def test_proxyless_trains_exactly_one_path_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every forward of the supernet during a ProxylessNAS search (weight steps, architecture steps, the
    validation pass) gets a one-hot p (one candidate per layer) and a one-hot q (one exit depth)."""
    # arch_part 0: one forward per architecture step, so the forwards count the steps
    overrides = ["search.method=proxyless", "search.arch_every=2", "search.per_layer_alpha=true", "search.arch_part=0"]
    cfg = RunConfig.from_mapping(compose("run", [*TINY_RUN, *overrides]))
    data = load_dataset("gowalla-100")
    space = search_method("proxyless").space(cfg.space(data))
    assert space.gate_layers == 0  # a baseline's supernet has no data-aware gates
    controllers = search_method("proxyless").controllers(space, cfg.search)
    assert isinstance(controllers, ProxylessControllers)
    seen: list[tuple[torch.Tensor, torch.Tensor, bool]] = []
    forward = Supernet.forward

    def spy(self: Supernet, seqs: torch.Tensor, p: torch.Tensor, q: torch.Tensor, last: Any = None) -> torch.Tensor:
        seen.append((p.detach().clone(), q.detach().clone(), p.requires_grad))
        return forward(self, seqs, p, q, last)

    monkeypatch.setattr(Supernet, "forward", spy)
    torch.manual_seed(0)
    out = search(Supernet(space), controllers, data, Evaluator(data), cfg.search, cfg.train, log=lambda _: None)
    weight_calls = [s for s in seen if not s[2]]
    arch_calls = [s for s in seen if s[2]]
    assert len(arch_calls) == out.steps // 2 and len(weight_calls) >= out.steps
    for p, q, _ in seen:
        assert p.shape == (2, 3) and q.shape == (2,)
        assert one_hot_rows(p) and one_hot_rows(q[None]), (p, q)
    paths = {(tuple(p.argmax(-1).tolist()), int(q.argmax())) for p, q, _ in weight_calls}
    assert len(paths) > 1  # sampled, not fixed
    # the trajectory records the distribution the paths are drawn from (the one-hot path is what was evaluated)
    trajectory = out.trajectory[0]
    alpha, beta = torch.tensor(trajectory["alpha"]), torch.tensor(trajectory["beta"])
    assert trajectory["tau"] == 1.0 and not one_hot_rows(torch.tensor(trajectory["p"]))
    assert torch.allclose(torch.tensor(trajectory["p"]), torch.softmax(alpha, -1).expand(2, -1))
    assert torch.allclose(torch.tensor(trajectory["q"]), torch.softmax(beta, -1))


def test_proxyless_gradient_is_the_binarised_path_gradient() -> None:
    """dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i) with g the sampled one-hot gates (ProxylessNAS Eq. 4),
    dL/dg_j taken at the one-hot path; the resource term is the expected FLOPs under softmax(alpha, beta)."""
    space, evaluator = tiny_space()
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    controllers = ProxylessControllers(2, 3)
    with torch.no_grad():
        controllers.alpha.copy_(torch.tensor([[0.3, -0.2, 0.1]]))
        controllers.beta.copy_(torch.tensor([0.4, -0.1]))
    batch = ArchBatches(evaluator, 16, 0, torch.device("cpu")).get(0)
    gen = torch.Generator().manual_seed(3)
    g_p, g_q = controllers(0, generator=gen)
    arch_ce(supernet, g_p, g_q, batch, CPU).backward()
    want_alpha, want_beta = controllers.alpha.grad.clone(), controllers.beta.grad.clone()  # type: ignore[union-attr]

    # by hand: leaf one-hot gates, their gradients, then the softmax's Jacobian
    hard_p = g_p.detach()[:1].clone().requires_grad_(True)
    hard_q = g_q.detach().clone().requires_grad_(True)
    arch_ce(supernet, hard_p.expand(2, -1), hard_q, batch, CPU).backward()
    p = F.softmax(controllers.alpha.detach(), dim=-1)[0]
    q = F.softmax(controllers.beta.detach(), dim=-1)
    jac_p, jac_q = torch.diag(p) - p[:, None] * p[None], torch.diag(q) - q[:, None] * q[None]
    torch.testing.assert_close(want_alpha[0], jac_p @ hard_p.grad[0])  # type: ignore[index]
    torch.testing.assert_close(want_beta, jac_q @ hard_q.grad)  # type: ignore[operator]

    flops = candidate_flops(space)
    rc = controllers.resource_term(g_p, g_q, flops, l_t=1)
    assert rc is not None
    pe = p.expand(2, -1)
    want = (q[0] * (pe[0] @ flops) + q[1] * ((pe[0] + pe[1]) @ flops)) / (flops.max() - flops.min())
    torch.testing.assert_close(rc, want)


def test_darts_loss_is_the_cross_entropy_exactly() -> None:
    space, evaluator = tiny_space()
    torch.manual_seed(0)
    supernet = Supernet(space).eval()
    controllers = DARTSControllers(2, 3)
    with torch.no_grad():
        controllers.alpha.copy_(torch.tensor([[0.5, 0.0, -0.5]]))
    p, q = controllers(123)
    torch.testing.assert_close(p[0], F.softmax(controllers.alpha.detach()[0], dim=-1))  # tau = 1, whatever the step
    assert controllers.schedule(10**6) == 1.0
    batch = ArchBatches(evaluator, 16, 0, torch.device("cpu")).get(0)
    with torch.no_grad():
        ce = arch_ce(supernet, p, q, batch, CPU)
    opt = torch.optim.Adam(controllers.parameters(), lr=0.1)
    loss, _ = arch_step(supernet, controllers, opt, batch, 123, 100.0, candidate_flops(space), CPU)
    assert controllers.resource_term(p, q, candidate_flops(space), 2) is None
    assert float(loss) == float(ce)  # lambda = 100 and nothing but the CE


def test_recnas_pruning_schedule() -> None:
    # A = 3 architecture epochs: of 3 candidates one goes after epoch 1, one after epoch 2; of 2 depths one
    # after epoch 2 (ceil(3 / 2)); with one warm-up epoch the schedule moves one epoch later.
    assert [recnas_pruned(e, 3, 3, 0) for e in (1, 2, 3)] == [0, 1, 2]
    assert [recnas_pruned(e, 2, 3, 0) for e in (1, 2, 3)] == [0, 0, 1]
    assert [recnas_pruned(e, 3, 4, 1) for e in (1, 2, 3, 4)] == [0, 0, 1, 2]
    assert [recnas_pruned(e, 4, 10, 0) for e in range(1, 11)] == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]  # after epochs 3, 5, 8

    space, _ = tiny_space()
    c = RecNASControllers(2, 3, False, "softmax", candidate_flops(space), 1.0, epochs=3, warmup_epochs=0)
    with torch.no_grad():
        c.alpha.copy_(torch.tensor([[0.2, -0.3, 0.1]]))
        c.beta.copy_(torch.tensor([0.5, -0.5]))
    c.begin_epoch(1)
    assert c.alive_alpha.all() and c.alive_beta.all()
    c.begin_epoch(2)
    assert c.alive_alpha.tolist() == [[True, False, True]] and c.alive_beta.all()  # the weakest candidate
    p, q = c(0)
    assert p[:, 1].eq(0).all() and torch.allclose(p.sum(-1), torch.ones(2))
    c.begin_epoch(2)  # idempotent: the schedule says how many, not how many more
    assert int((~c.alive_alpha).sum()) == 1
    with torch.no_grad():
        c.alpha.copy_(torch.tensor([[-1.0, 5.0, 0.0]]))  # a pruned candidate's logit no longer counts
    c.begin_epoch(3)
    assert c.alive_alpha.tolist() == [[False, False, True]] and c.alive_beta.tolist() == [True, False]
    assert c.decision() == ([2, 2], 1)
    p, q = c(0)
    assert p.tolist() == [[0.0, 0.0, 1.0]] * 2 and q.tolist() == [1.0, 0.0]

    # the masks are state: a resumed search keeps them
    fresh = RecNASControllers(2, 3, False, "softmax", candidate_flops(space), 1.0, epochs=3, warmup_epochs=0)
    fresh.load_state_dict(c.state_dict())
    assert torch.equal(fresh.alive_alpha, c.alive_alpha) and torch.equal(fresh.alive_beta, c.alive_beta)


def resource_term(c: RecNASControllers, flops: torch.Tensor) -> float:
    with torch.no_grad():
        term = c.resource_term(*c(0), flops, 2)
    assert term is not None
    return float(term)


def test_recnas_selects_the_most_probable_architecture_within_the_flops_bound() -> None:
    space, _ = tiny_space()
    flops = candidate_flops(space)  # decreasing: candidate 0 is the widest
    budget = float(flops[1] / (2 * flops[0]))  # C = budget * 2 * F_0 = F_1: one layer of candidate 1 at most
    c = RecNASControllers(2, 3, False, "softmax", flops, budget, epochs=1, warmup_epochs=0)
    with torch.no_grad():
        c.alpha.copy_(torch.tensor([[2.0, 1.0, 0.0]]))
        c.beta.copy_(torch.tensor([0.0, 0.5]))
    # unbounded argmax: candidate 0 at depth 2 (log-score 2.5); within the bound: candidate 1 at depth 1 (1 + 0),
    # not candidate 2 at depth 2 (0 + 0.5) nor at depth 1 (0 + 0)
    assert c.decision() == ([1, 1], 1)
    assert resource_term(c, flops) > 0  # E[F] is above the bound: penalised
    loose = RecNASControllers(2, 3, False, "softmax", flops, 1.0, epochs=1, warmup_epochs=0)
    loose.load_state_dict(c.state_dict())
    assert loose.decision() == ([0, 0], 2)
    assert resource_term(loose, flops) == 0.0
    # per-layer alpha: enumerated per layer
    per_layer = RecNASControllers(2, 3, True, "softmax", flops, 1.0, epochs=1, warmup_epochs=0)
    with torch.no_grad():
        per_layer.alpha.copy_(torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]]))
        per_layer.beta.copy_(torch.tensor([0.0, 3.0]))
    assert per_layer.decision() == ([0, 2], 2)


def test_method_keys_are_validated() -> None:
    for bad, key in (
        ("search.method=enas", "search.method"),
        ("search.flops_budget=1.5", "search.flops_budget"),
        ("retrain.gate_layers=5", "retrain.gate_layers"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            RunConfig.from_mapping(compose("run", [*TINY_RUN, bad]))
    with pytest.raises(ConfigError, match=r"search\.relax"):  # DARTS and ProxylessNAS relax by their own rule
        RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.method=darts", "search.relax=gumbel"]))
    assert set(METHODS) == {"dnsrec", "darts", "proxyless", "recnas"}
    assert [m for m in METHODS.values() if m.reconstruction] == [METHODS["recnas"]]
    assert "reconstruction" in METHODS["recnas"].notes()[0]


@pytest.mark.parametrize("method", ["darts", "proxyless", "recnas"])
def test_tiny_run_of_each_method_derives_retrains_and_is_recorded(method: str, tmp_path: Path) -> None:
    run_dir = tmp_path / method
    epochs = "3" if method == "recnas" else "2"  # RecNAS prunes before epochs 2 and 3
    args = [*TINY_RUN, f"search.method={method}", f"search.epochs={epochs}", "search.arch_every=2"]
    assert main(["run", *args, "retrain.max_epochs=1", f"run_dir={run_dir}"]) == 0
    r = RunResult.read(run_dir / "result.json")
    assert r.stage == "run" and r.config["search"]["method"] == method
    arch = Architecture.from_dict(r.architecture)
    assert arch == Architecture.read(run_dir / "architecture.json")
    assert arch.gate_layers == 0 and 1 <= arch.depth <= 2  # no gates in a baseline
    assert r.epochs == 1 and r.metrics["test"]["pop100/ndcg@10"] > 0 and 0 < r.flops["model"] <= r.flops["supernet"]
    assert r.search is not None and len(r.search["trajectory"]) == int(epochs)
    stored = [v for v in open_store().list_runs() if Path(v.run_dir) == run_dir.resolve()]
    assert len(stored) == 1 and stored[0].status == "COMPLETE" and stored[0].method == arch.method == method
    if method == "darts":  # a retrain of the searched file is recorded as the method that searched it
        again = tmp_path / "retrain"
        args = [*TINY_RUN, "retrain.max_epochs=1", f"run_dir={again}"]
        assert main(["retrain", str(run_dir / "architecture.json"), *args]) == 0
        assert [v.method for v in open_store().list_runs() if Path(v.run_dir) == again.resolve()] == ["darts"]
    if method == "recnas":
        assert "reconstruction" in r.notes[0] and r.search["flops_bound"] > 0
        assert sum(r.search["alive_candidates"][0]) == 1 and sum(r.search["alive_depths"]) == 1
        assert "reconstruction" in json.loads((run_dir / "result.json").read_text())["notes"][0]
    else:
        assert r.notes == []
