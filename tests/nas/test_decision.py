"""The decision under a FLOPs bound (`search.max_flops`, RecNAS's budget): the most probable architecture that
fits, checked against a brute force over explicit probabilities and against a real search's numbers."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TINY_RUN

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.errors import ConfigError
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.controllers import Controllers
from dnsrec.nas.decision import log_probabilities, most_probable_within
from dnsrec.nas.derive import compact_config, derive_architecture
from dnsrec.nas.flops import model_flops
from dnsrec.nas.methods import RecNASControllers, search_method
from dnsrec.nas.search import candidate_flops
from dnsrec.run_result import RunResult


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def brute_force(alpha: np.ndarray, beta: np.ndarray, costs: list[float], bound: float) -> tuple[tuple[int, ...], int]:
    """Independent: the probability of every path as an explicit product of softmax probabilities."""
    p, q = softmax(alpha), softmax(beta)
    best, best_prob = None, -1.0
    for depth in range(1, len(beta) + 1):
        rows = (
            [[(i,) * depth for i in range(p.shape[1])]]
            if len(p) == 1
            else [itertools.product(range(p.shape[1]), repeat=depth)]
        )
        for kept in rows[0]:
            prob = (p[0, kept[0]] if len(p) == 1 else np.prod([p[layer, i] for layer, i in enumerate(kept)])) * q[
                depth - 1
            ]
            if sum(costs[i] for i in kept) <= bound and prob > best_prob:
                best, best_prob = (kept, depth), prob
    assert best is not None
    return best


@pytest.mark.parametrize("per_layer", [False, True])
def test_the_bounded_decision_is_the_most_probable_path_that_fits(per_layer: bool) -> None:
    rng = np.random.default_rng(0)
    costs = [4.0, 2.0, 1.0]  # one layer of each width candidate, widest first
    for _ in range(200):
        alpha = rng.normal(0, 2, (3 if per_layer else 1, 3))
        beta = rng.normal(0, 2, 3)
        bound = float(rng.uniform(1, 12))
        log_p, log_q = log_probabilities(torch.tensor(alpha), torch.tensor(beta))
        choice = most_probable_within(log_p, log_q, costs, bound)
        assert choice is not None
        candidates, depth = choice
        kept, want_depth = brute_force(alpha, beta, costs, bound)
        assert (tuple(candidates[:depth]), depth) == (kept, want_depth)
        assert len(candidates) == 3 and sum(costs[i] for i in candidates[:depth]) <= bound


def test_without_a_binding_bound_the_decision_is_the_argmax() -> None:
    """Shared alpha: a width is one choice whatever the depth. Scoring a path by its logits summed once per kept
    layer (RecNAS's selection before) picked depth 3 here, where beta is flat and the argmax is depth 1."""
    c = Controllers(3, 3)
    with torch.no_grad():
        c.alpha.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
    assert c.decision() == ([0, 0, 0], 1)
    c.limit_flops([4.0, 2.0, 1.0], bound=1e9)
    assert c.decision() == ([0, 0, 0], 1)
    recnas = RecNASControllers(3, 3, False, "softmax", torch.tensor([4.0, 2.0, 1.0]), 1.0, epochs=3, warmup_epochs=0)
    with torch.no_grad():
        recnas.alpha.copy_(c.alpha)
    assert recnas.decision() == ([0, 0, 0], 1)  # budget 1.0: nothing is excluded
    rng = np.random.default_rng(1)
    for _ in range(50):
        with torch.no_grad():
            c.alpha.copy_(torch.tensor(rng.normal(0, 2, (1, 3))))
            c.beta.copy_(torch.tensor(rng.normal(0, 2, 3)))
        unbounded = Controllers(3, 3)
        unbounded.load_state_dict(c.state_dict())
        assert c.decision() == unbounded.decision()


def test_no_path_fits_gives_none_and_a_pruned_candidate_never_counts() -> None:
    log_p, log_q = log_probabilities(torch.tensor([[0.0, 0.0, -float("inf")]]), torch.tensor([0.0, 0.0]))
    assert most_probable_within(log_p, log_q, [4.0, 2.0, 1.0], bound=1.5) is None  # only width 2 (cost 1) fits
    assert most_probable_within(log_p, log_q, [4.0, 2.0, 1.0], bound=2.0) == ([1, 1], 1)


def gowalla_space():  # type: ignore[no-untyped-def]
    return RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k"])).space_for(n_items=8253, max_len=100)


def test_gowalla_seed_4_within_a_quarter_of_the_supernet() -> None:
    """The decision-epoch logits of the gowalla-1k seed-4 search (benchmark at 8d17178, result.json epoch 10):
    unbounded it chose depth 2, width 64 (56.5M FLOPs, more than SASRec-LinRec's 54.1M); within 0.25 of the
    un-pruned supernet's 113.05M it is depth 2, width 32 (14.3M): p(width 32) 0.38 at q(depth 2) 1.00 outweighs
    depth 1 at width 64, the only other way to use the budget, whose q is 4e-18."""
    space = gowalla_space()
    cfg = RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k", "search.max_flops=0.25"]))
    c = search_method("dnsrec").controllers(space, cfg.search)
    with torch.no_grad():
        c.alpha.copy_(torch.tensor([[0.35419991612434387, 0.31788453459739685, 0.13771982491016388]]))
        c.beta.copy_(torch.tensor([0.20314611494541168, 4.203381538391113, -2.4629154205322266, -2.0742504596710205]))
    assert c.flops_limit is not None and c.flops_limit[1] == pytest.approx(0.25 * 113_049_600)
    candidates, depth = c.decision()
    assert (candidates[:depth], depth) == ([1, 1], 2)
    arch = derive_architecture(space, candidates, depth)
    assert (arch.hidden, arch.inner_widths) == ((32, 32), (128, 128))
    cfg_compact = compact_config(arch, space.n_items, space.max_len, "narrow", space.attention, space.dropout)
    assert model_flops(cfg_compact).total == 14_336_000  # the FLOPs seed 3's run recorded for this model


def test_the_bound_is_exact_for_every_shared_width_model_retraining_builds() -> None:
    """The bound sums the searched layers' costs; the retrained `narrow` model's FLOPs (counted from its own
    config by dnsrec.nas.flops.model_flops) are exactly that sum for every width and depth."""
    space = gowalla_space()
    costs = candidate_flops(space).tolist()
    assert 4 * max(costs) == 113_049_600  # the un-pruned supernet's FLOPs its runs record
    for i, depth in itertools.product(range(space.m), range(1, 5)):
        arch = derive_architecture(space, [i] * 4, depth)
        compact = compact_config(arch, space.n_items, space.max_len, "narrow", space.attention, space.dropout)
        assert model_flops(compact).total == depth * costs[i]


def test_a_bound_below_the_smallest_model_and_combinations_it_cannot_bound_are_refused() -> None:
    space = gowalla_space()
    cfg = RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k", "search.max_flops=0.001"]))
    with pytest.raises(ConfigError, match=re.escape("'search.max_flops': 0.001 of the un-pruned")):
        search_method("dnsrec").controllers(space, cfg.search)
    for override, key in (
        ("search.per_layer_alpha=true", "search.per_layer_alpha"),
        ("retrain.shape=wide", "retrain.shape"),
        ("retrain.gate_layers=0", "retrain.gate_layers"),
        ("search.max_flops=1.5", "search.max_flops"),
    ):
        extra = [override] + ([] if "max_flops=" in override else ["search.max_flops=0.25"])
        with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
            RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k", *extra]))


def test_a_tiny_run_under_a_bound_derives_retrains_and_records_a_model_within_it(tmp_path: Path) -> None:
    """A bound between the cheapest model (one layer of the narrowest width) and the next cheapest leaves one
    choice, whatever the controllers learn: the run must derive, retrain and record that model."""
    cfg = RunConfig.from_mapping(compose("run", TINY_RUN))
    space = cfg.space(load_dataset("gowalla-100"))
    costs = sorted(candidate_flops(space).tolist())
    un_pruned = space.n_layers * costs[-1]
    between = (costs[0] + min(costs[1], 2 * costs[0])) / 2
    run_dir = tmp_path / "bounded"
    args = [*TINY_RUN, f"search.max_flops={between / un_pruned!r}", "retrain.max_epochs=1", f"run_dir={run_dir}"]
    assert main(["run", "--no-db", *args]) == 0
    r = RunResult.read(run_dir / "result.json")
    assert r.search is not None and r.search["flops_bound"] == pytest.approx(between)
    arch = Architecture.from_dict(r.architecture)
    assert arch.depth == 1 and arch.hidden == (min(space.hidden_widths),)
    assert r.flops["model"] == costs[0] <= r.search["flops_bound"]
    assert all((e["depth"], e["candidates"][0]) == (1, space.m - 1) for e in r.search["trajectory"])


def test_a_run_whose_bound_no_model_fits_is_refused_before_it_claims_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "refused"
    assert main(["run", "--no-db", *TINY_RUN, "search.max_flops=0.0001", f"run_dir={run_dir}"]) != 0
    assert "config key 'search.max_flops': 0.0001 of the un-pruned supernet's" in capsys.readouterr().err
    assert not run_dir.exists()
