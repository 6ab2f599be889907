"""Supernet masks, one-hot equivalence with the compact model, and weight transfer."""

from __future__ import annotations

import pytest
import torch

from dnsrec.errors import ConfigError
from dnsrec.models import layers
from dnsrec.models.layers import Block
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.derive import build_compact, derive_architecture, transfer_weights
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet


def space(gate_layers: int = 2, layers: int = 3, attention: str = "linear") -> SearchSpace:
    return SearchSpace(
        n_items=30,
        max_len=10,
        d=16,
        inner=32,
        n_heads=4,
        n_layers=layers,
        pruning=(0.0, 0.25, 0.5),
        gate_layers=gate_layers,
        attention=attention,
        dropout=0.1,
    )


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    seqs = torch.randint(1, 31, (3, 10))
    lengths = torch.tensor([10, 6, 2])
    seqs[torch.arange(10)[None] >= lengths[:, None]] = 0
    return seqs, lengths


def one_hot(n: int, i: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(i), n).double()


@pytest.mark.parametrize("gate_layers", [0, 1, 3])
def test_expected_mask_equals_sum_over_masked_candidates_per_site(
    gate_layers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At every mask site of a layer: x * (sum_i p_i M_i) == sum_i p_i (x * M_i), values and gradients."""
    sp = space(gate_layers)
    torch.manual_seed(0)
    block = Block(sp.d, sp.d, sp.inner, sp.head_dim, "linear", gate_layers, 0.0).double().eval()
    x = torch.randn(2, 10, sp.d, dtype=torch.double)
    p = torch.softmax(torch.randn(sp.m, dtype=torch.double), 0).requires_grad_()
    candidate_masks = {sp.d: sp.hidden_masks().double(), sp.inner: sp.inner_masks().double()}
    sites: list[int] = []
    original = layers._masked

    def checked(value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return value
        masks = candidate_masks[mask.shape[-1]]
        ours = original(value, mask)
        explicit = sum(p[i] * (value * masks[i]) for i in range(sp.m))
        torch.testing.assert_close(ours, explicit)
        w = torch.randn_like(ours)  # a random cotangent, so every output element matters
        g_ours = torch.autograd.grad((ours * w).sum(), (p, value), retain_graph=True)
        g_explicit = torch.autograd.grad((explicit * w).sum(), (p, value), retain_graph=True)
        for a, b in zip(g_ours, g_explicit, strict=True):
            torch.testing.assert_close(a, b)
        sites.append(mask.shape[-1])
        return ours

    monkeypatch.setattr(layers, "_masked", checked)
    x.requires_grad_()
    block(
        x,
        torch.ones(2, 10, dtype=torch.bool),
        x,
        hidden_mask=p @ candidate_masks[sp.d],
        inner_mask=p @ candidate_masks[sp.inner],
    )
    # Q, K, V, attention output, dense2 (hidden); dense1 (inner); each gate: L_d layers + its output.
    assert sites.count(sp.d) == 5 + (gate_layers + 1 if gate_layers else 0)
    assert sites.count(sp.inner) == 1 + (gate_layers + 1 if gate_layers else 0)


def test_space_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.pruning.*not in \[0, 1\)"):
        SearchSpace(n_items=5, max_len=5, d=16, inner=32, n_heads=4, n_layers=1, pruning=(0.0, 1.0), gate_layers=0)
    with pytest.raises(ConfigError, match="whole heads"):
        SearchSpace(n_items=5, max_len=5, d=16, inner=32, n_heads=4, n_layers=1, pruning=(0.0, 0.1), gate_layers=0)
    with pytest.raises(ConfigError, match=r"gates\.layers"):
        SearchSpace(n_items=5, max_len=5, d=16, inner=32, n_heads=4, n_layers=1, pruning=(0.0, 0.5), gate_layers=5)
    with pytest.raises(ConfigError, match="at most 2 candidates"):
        SearchSpace(n_items=5, max_len=5, d=16, inner=32, n_heads=2, n_layers=1, pruning=(0.0, 0.5, 0.5), gate_layers=0)


@pytest.mark.parametrize("attention", ["linear", "softmax"])
@pytest.mark.parametrize("gate_layers", [0, 2, 4])
def test_one_hot_supernet_equals_wide_compact_model(gate_layers: int, attention: str) -> None:
    sp = space(gate_layers, attention=attention)
    torch.manual_seed(1)
    supernet = Supernet(sp).double().eval()
    seqs, lengths = batch()
    for cand in range(sp.m):
        for depth in range(1, sp.n_layers + 1):
            p = one_hot(sp.m, cand).expand(sp.n_layers, -1)
            q = one_hot(sp.n_layers, depth - 1)
            arch = derive_architecture(sp, [cand] * sp.n_layers, depth)
            compact = build_compact(arch, sp, "wide").double().eval()
            transfer_weights(supernet, compact)
            with torch.no_grad():
                torch.testing.assert_close(compact(seqs), supernet(seqs, p, q))
                torch.testing.assert_close(compact.score(seqs, lengths), supernet.score(seqs, lengths, p, q))


@pytest.mark.parametrize("attention", ["linear", "softmax"])
def test_last_positions_only_equal_the_full_forward_there(attention: str) -> None:
    """forward(last=...) runs the final layer for one position; values and p/q gradients must equal the
    full forward read at those positions, under a soft mixture (every candidate and exit weighted)."""
    sp = space(2, layers=3, attention=attention)
    torch.manual_seed(2)
    supernet = Supernet(sp).double().eval()
    seqs, lengths = batch()
    logits = torch.randn(sp.n_layers, sp.m, dtype=torch.double), torch.randn(sp.n_layers, dtype=torch.double)
    outputs, grads = [], []
    for last_only in (False, True):
        a, b = (t.clone().requires_grad_() for t in logits)
        p, q = a.softmax(-1), b.softmax(-1)  # per-layer candidate weights
        rows = torch.arange(len(seqs))
        y = supernet(seqs, p, q, last=lengths - 1) if last_only else supernet(seqs, p, q)[rows, lengths - 1]
        outputs.append(y.detach())
        grads.append(torch.autograd.grad(y.square().sum(), [a, b]))
    torch.testing.assert_close(outputs[1], outputs[0])
    for got, want in zip(grads[1], grads[0], strict=True):
        assert want.abs().max() > 1e-8
        torch.testing.assert_close(got, want)


def test_narrow_weights_are_leading_slices() -> None:
    sp = space(2)
    supernet = Supernet(sp)
    arch = derive_architecture(sp, [2, 2, 2], 2)  # 50%: h = 8 of 16, D' = 16 of 32, two layers
    compact = build_compact(arch, sp, "narrow")
    transfer_weights(supernet, compact)
    sd = supernet.state_dict()
    assert compact.cfg.d == 8 and compact.cfg.n_heads == 2 and len(compact.blocks) == 2
    assert torch.equal(compact.item_emb.weight, sd["item_emb.weight"][:, :8])
    assert torch.equal(compact.blocks[1].attn.query.weight, sd["blocks.1.attn.query.weight"][:8, :8])
    assert torch.equal(compact.blocks[0].ffn.dense1.weight, sd["blocks.0.ffn.dense1.weight"][:16, :8])
    assert torch.equal(compact.blocks[0].ffn.dense2.bias, sd["blocks.0.ffn.dense2.bias"][:8])
    assert torch.equal(compact.blocks[0].ffn.gate1.layers[1].weight, sd["blocks.0.ffn.gate1.layers.1.weight"][:16, :16])
    assert torch.equal(compact.blocks[1].attn.norm.weight, sd["blocks.1.attn.norm.weight"][:8])
    for name, tensor in compact.state_dict().items():
        assert torch.equal(tensor, sd[name][tuple(slice(0, n) for n in tensor.shape)]), name


def test_architecture_json_round_trip() -> None:
    arch = derive_architecture(space(3), [1, 1, 1], 2)
    again = Architecture.from_dict(__import__("json").loads(arch.to_json()))
    assert again == arch and again.depth == 2 and again.hidden == (12, 12) and again.inner_widths == (24, 24)
    with pytest.raises(ConfigError, match="whole number of heads"):
        Architecture(d=16, inner=32, head_dim=4, hidden=(6,), inner_widths=(8,), gate_layers=0)
    assert "method" not in arch.to_dict()  # unrecorded: left out, so files without the key read as written
    named = Architecture.from_dict(arch.to_dict() | {"method": "darts"})
    assert named.method == "darts" and Architecture.from_dict(named.to_dict()) == named
    with pytest.raises(ConfigError, match="method must be a string"):
        Architecture.from_dict(arch.to_dict() | {"method": 3})
