"""`search.weight_exits` and `search.weight_widths`: what a weight step trains, against hand computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TINY_RUN, tiny_search

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.errors import ConfigError
from dnsrec.nas.controllers import Controllers
from dnsrec.nas.search import supernet_loss, uniform_widths
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet
from dnsrec.train.device import Placement

L = 3


def supernet() -> Supernet:
    sp = SearchSpace(
        n_items=30, max_len=10, d=16, inner=32, n_heads=4, n_layers=L, pruning=(0.0, 0.25, 0.5), gate_layers=1,
        attention="linear", dropout=0.0,
    )  # fmt: skip
    torch.manual_seed(3)
    return Supernet(sp).double().eval()


def window_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(4)
    inputs = torch.randint(1, 31, (4, 10))
    targets = torch.randint(1, 31, (4, 10))
    inputs[2, 6:] = targets[2, 6:] = 0  # a padded tail: no target there
    targets[0, :3] = 0
    return inputs, targets


def by_hand_ce(
    net: Supernet, inputs: torch.Tensor, targets: torch.Tensor, p: torch.Tensor, q: torch.Tensor
) -> torch.Tensor:
    """Mean catalogue CE over the target positions of the q-mixture, from full logits over the real items
    1..n (the padding row 0 is never a class)."""
    logits = net(inputs, p, q) @ net.item_emb.weight[1:].T
    mask = targets > 0
    return F.cross_entropy(logits[mask], targets[mask] - 1)


def test_each_exit_is_the_mixture_of_a_one_hot_depth() -> None:
    net, (inputs, _) = supernet(), window_batch()
    p = torch.softmax(torch.randn(L, 3, dtype=torch.double), -1)
    exits = net.exits(inputs, p)
    assert len(exits) == L
    for depth, t in enumerate(exits):
        torch.testing.assert_close(t, net(inputs, p, torch.eye(L, dtype=torch.double)[depth]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("exits", ["mixture", "each"])
def test_weight_step_loss_matches_the_mean_ce_computed_by_hand(exits: str) -> None:
    net, (inputs, targets) = supernet(), window_batch()
    p = torch.softmax(torch.randn(L, 3, dtype=torch.double), -1)
    q = torch.tensor([0.7, 0.2, 0.1], dtype=torch.double)
    n_targets = int((targets > 0).sum())
    got = supernet_loss(Placement.resolve("cpu", "fp32"), exits=exits)(
        net, inputs, targets, p, q, denominator=n_targets
    )
    if exits == "mixture":
        expected = by_hand_ce(net, inputs, targets, p, q)
    else:  # q is ignored: the mean over depths of each one-hot depth's CE
        expected = torch.stack(
            [by_hand_ce(net, inputs, targets, p, torch.eye(L, dtype=torch.double)[j]) for j in range(L)]
        ).mean()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)


def test_each_trains_the_deepest_layer_where_the_mixture_gives_it_nothing() -> None:
    # q all on depth 1: under the mixture the last layer gets no gradient; under `each` it does (its exit's CE).
    net, (inputs, targets) = supernet(), window_batch()
    p = torch.full((L, 3), 1 / 3, dtype=torch.double)
    q = torch.tensor([1.0, 0.0, 0.0], dtype=torch.double)
    placement = Placement.resolve("cpu", "fp32")
    norms = {}
    for exits in ("mixture", "each"):
        net.zero_grad()
        supernet_loss(placement, exits=exits)(net, inputs, targets, p, q, denominator=1.0).backward()
        grads = [g.grad for g in net.blocks[L - 1].parameters() if g.grad is not None]
        norms[exits] = float(torch.stack([g.norm() for g in grads]).norm()) if grads else 0.0
    assert norms["mixture"] == 0.0
    assert norms["each"] > 1e-6


def test_an_unknown_value_is_refused_by_key() -> None:
    with pytest.raises(ConfigError, match=r"search\.weight_exits': expected one of 'mixture', 'each', got 'all'"):
        RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.weight_exits=all"]))
    with pytest.raises(ConfigError, match=r"search\.arch_exits': expected mixture with search.method=proxyless"):
        RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.arch_exits=each", "search.method=proxyless"]))


def test_a_search_trains_what_the_option_says() -> None:
    # The same tiny search (same data, seed and steps) with each value: the weight-step losses differ from the
    # first epoch, so the option reaches the weight step; both searches decide.
    mixture, each = tiny_search("search.epochs=2"), tiny_search("search.epochs=2", "search.weight_exits=each")
    assert mixture[0]["loss"] != pytest.approx(each[0]["loss"], rel=1e-6)
    assert len(mixture) == len(each) == 2


def test_uniform_widths_are_one_hot_and_drawn_evenly() -> None:
    shared, per_layer = Controllers(4, 3), Controllers(4, 3, per_layer=True)
    generator = torch.Generator().manual_seed(0)
    draws = [uniform_widths(shared, generator) for _ in range(3000)]
    for p in draws[:20]:
        assert p.shape == (4, 3) and set(p.unique().tolist()) == {0.0, 1.0}
        assert bool((p == p[0]).all()) and float(p[0].sum()) == 1.0  # one width for every layer
    counts = torch.stack([p[0] for p in draws]).sum(0)
    assert bool(((counts - 1000).abs() < 5 * (3000 * (1 / 3) * (2 / 3)) ** 0.5).all()), counts  # within 5 sd
    rows = torch.stack([uniform_widths(per_layer, generator) for _ in range(200)])  # (200, 4, 3)
    assert bool((rows.sum(-1) == 1).all())
    assert bool((rows.argmax(-1) != rows.argmax(-1)[:, :1]).any())  # layers drawn apart


def test_uniform_widths_train_other_widths_than_p_and_repeat_exactly() -> None:
    mixture = tiny_search("search.epochs=2")
    uniform = tiny_search("search.epochs=2", "search.weight_widths=uniform")
    again = tiny_search("search.epochs=2", "search.weight_widths=uniform")
    assert mixture[0]["loss"] != pytest.approx(uniform[0]["loss"], rel=1e-6)
    assert [e["loss"] for e in uniform] == [e["loss"] for e in again]  # the draws come from the seeded generator
    assert [e["alpha"] for e in uniform] == [e["alpha"] for e in again]


def test_uniform_widths_are_refused_where_the_method_trains_its_own_paths() -> None:
    with pytest.raises(ConfigError, match=r"search\.weight_widths': expected mixture with search\.method=recnas"):
        RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.weight_widths=uniform", "search.method=recnas"]))
