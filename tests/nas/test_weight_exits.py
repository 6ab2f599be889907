"""`search.weight_exits`: the weight step's loss over the supernet's exits, against a hand computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_temperature import tiny_search
from tiny_runs import TINY_RUN

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.errors import ConfigError
from dnsrec.nas.search import supernet_loss
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


def test_a_search_trains_what_the_option_says() -> None:
    # The same tiny search (same data, seed and steps) with each value: the weight-step losses differ from the
    # first epoch, so the option reaches the weight step; both searches decide.
    mixture, each = tiny_search("search.epochs=2"), tiny_search("search.epochs=2", "search.weight_exits=each")
    assert mixture[0]["loss"] != pytest.approx(each[0]["loss"], rel=1e-6)
    assert len(mixture) == len(each) == 2
