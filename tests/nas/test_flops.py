"""FLOPs formulas checked against torch's FLOP counter on real models, and the expected-FLOPs penalty
against explicit loops and independent gradients.

torch's `FlopCounterMode` counts matmuls (`addmm` for the linear layers, without the bias; `bmm` for the
attention products, einsum included once it lowers to `bmm`). The prefix form's outer products k'_t^T v_t,
however, are an einsum with no contracted index, which lowers to a broadcast elementwise `mul` that the
stock counter counts as 0. The counter used here adds one formula: a broadcast product (..., m, 1) * (..., 1, n)
is the batched matmul with inner size 1 that it is (2 m n FLOPs per batch element). Nothing else in the model
has that pattern (gates and masks multiply equal or (.., N, 1) shapes), and a separate test pins exactly what
the stock counter misses.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dnsrec.models import SASRec, SASRecConfig
from dnsrec.nas.flops import depth_flops, expected_flops, layer_flops, model_flops

N_ITEMS = 30
PRUNING_SETS = {"ml1m": (0.0, 0.25, 0.5), "gowalla": (0.0, 0.5, 0.75)}  # gamma = gamma' (docs/method.md)
# (d, D, N, n_heads, L_d, n_layers): small, but every gate depth 0..4, both d, D, N and 1-3 layers.
Combo = tuple[int, int, int, int, int, int]
COMBOS: list[Combo] = [
    (64, 256, 20, 4, 0, 1),
    (64, 128, 50, 4, 1, 3),
    (128, 128, 50, 4, 2, 2),
    (64, 256, 20, 4, 3, 2),
    (128, 256, 20, 4, 4, 1),
]


def _outer_product_flop(a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """aten.mul: 2 * numel(out) for a broadcast outer product (..., m, 1) * (..., 1, n), else 0 (stock)."""
    if not (isinstance(a_shape, torch.Size) and isinstance(b_shape, torch.Size)):
        return 0  # a product with a Python scalar
    if min(len(a_shape), len(b_shape)) < 2:
        return 0
    for x, y in ((a_shape, b_shape), (b_shape, a_shape)):
        if x[-1] == 1 and y[-2] == 1 and x[-2] > 1 and y[-1] > 1:
            return 2 * math.prod(out_shape)
    return 0


def counted(cfg: SASRecConfig, outer_products: bool = True) -> tuple[int, ...]:
    """Per-layer FLOPs that torch counts for `SASRec(cfg).eval()` on one sequence of N real items."""
    model = SASRec(cfg).eval()
    seqs = torch.randint(1, N_ITEMS + 1, (1, cfg.max_len), generator=torch.Generator().manual_seed(0))
    mapping = {torch.ops.aten.mul: _outer_product_flop} if outer_products else None
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter, torch.no_grad():
        model(seqs)
    counts = counter.get_flop_counts()
    per_layer = tuple(sum(counts[f"SASRec.blocks.{i}"].values()) for i in range(cfg.n_layers))
    assert sum(per_layer) == counter.get_total_flops(), "FLOPs counted outside the transformer layers"
    return per_layer


def compact(
    shape: str, d: int, inner: int, n: int, n_heads: int, gate_layers: int, n_layers: int, gamma: float, attention: str
) -> SASRecConfig:
    """The compact model of candidate gamma (= gamma') at every layer, in the `narrow` or `wide` shape."""
    head_dim = d // n_heads
    h, inner_kept = round((1 - gamma) * d), round((1 - gamma) * inner)
    common: dict[str, Any] = dict(
        n_items=N_ITEMS, max_len=n, n_layers=n_layers, gate_layers=gate_layers, attention=attention, dropout=0.0
    )
    if shape == "narrow":
        return SASRecConfig(d=h, n_heads=h // head_dim, inner=inner_kept, **common)
    return SASRecConfig(d=d, n_heads=n_heads, inner=inner, widths=((h, inner_kept),) * n_layers, **common)


@pytest.mark.parametrize("shape", ["narrow", "wide"])
@pytest.mark.parametrize("candidate", range(3))
@pytest.mark.parametrize("pruning", sorted(PRUNING_SETS))
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "d{}-D{}-N{}-H{}-Ld{}-L{}".format(*c))
def test_formula_equals_flop_counter_for_every_candidate(
    combo: Combo, pruning: str, candidate: int, shape: str
) -> None:
    cfg = compact(shape, *combo, gamma=PRUNING_SETS[pruning][candidate], attention="linear-prefix")
    flops = model_flops(cfg)
    assert flops.layers == counted(cfg)
    assert flops.total == sum(flops.layers)


@pytest.mark.parametrize("shape", ["narrow", "wide"])
@pytest.mark.parametrize(("combo", "gamma"), [(COMBOS[1], 0.5), (COMBOS[4], 0.25)])
def test_softmax_formula_equals_flop_counter(combo: Combo, gamma: float, shape: str) -> None:
    cfg = compact(shape, *combo, gamma=gamma, attention="softmax")
    assert model_flops(cfg).layers == counted(cfg)


@pytest.mark.parametrize("attention", ["linear-prefix", "softmax"])
def test_mixed_per_layer_widths_wide(attention: str) -> None:
    widths = ((64, 256), (16, 64), (48, 192))  # 4, 1 and 3 heads of 16
    cfg = SASRecConfig(
        n_items=N_ITEMS, max_len=20, d=64, inner=256, n_layers=3, n_heads=4, gate_layers=2, widths=widths,
        attention=attention,  # type: ignore[arg-type]
    )  # fmt: skip
    flops = model_flops(cfg)
    assert flops.layers == counted(cfg)
    assert len(set(flops.layers)) == 3


def test_stock_counter_misses_exactly_the_outer_products() -> None:
    """Pins the one gap: stock FlopCounterMode sees q'_t S_t (bmm) but not k'_t^T v_t (a broadcast mul)."""
    cfg = compact("wide", *COMBOS[2], gamma=0.25, attention="linear-prefix")
    n, h = cfg.max_len, 96
    outer = 2 * n * h * cfg.head_dim
    assert counted(cfg, outer_products=False) == tuple(f - outer for f in model_flops(cfg).layers)


def test_linear_counts_the_prefix_form_whatever_the_training_form() -> None:
    """The quadratic "linear" training form and "linear-prefix" give the same values, so the same FLOPs."""
    base = dict(n_items=N_ITEMS, max_len=50, d=64, inner=128, n_layers=2, n_heads=4, gate_layers=2)
    assert model_flops(SASRecConfig(attention="linear", **base)) == model_flops(  # type: ignore[arg-type]
        SASRecConfig(attention="linear-prefix", **base)  # type: ignore[arg-type]
    )


def test_layer_flops_by_hand() -> None:
    """The paper's ML-1M SASRec layer, N = 200, d = 128, D = 256, 8 heads of 16, written out term by term."""
    n, d, inner, dh = 200, 128, 256, 16
    linear = 2 * n * (4 * d * d + 2 * d * inner)
    assert layer_flops(n, d, d, inner, dh, attention="linear") == linear + 2 * 2 * n * d * dh
    assert layer_flops(n, d, d, inner, dh, attention="softmax") == linear + 2 * 2 * n * n * d
    gates = 2 * n * (d * inner + inner * inner + d * d + d * d)  # L_d = 2: d->D->D and d->d->d
    assert layer_flops(n, d, d, inner, dh, gate_layers=2) == linear + 2 * 2 * n * d * dh + gates


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(h=40), "whole number of heads"),
        (dict(h=128, r=64), "exceeds the residual width"),
        (dict(gate_layers=-1), "gate_layers"),
        (dict(attention="flash"), "attention must be"),
        (dict(n=0), "n must be"),
    ],
)
def test_layer_flops_rejects_impossible_layers(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = dict(n=20, r=64, h=64, inner=128, head_dim=16) | kwargs
    with pytest.raises(ValueError, match=message):
        layer_flops(**args)


@pytest.mark.parametrize("shape", ["narrow", "wide"])
def test_scoring_is_separate(shape: str) -> None:
    cfg = compact(shape, 128, 256, 20, 4, 2, 2, gamma=0.5, attention="linear")
    flops = model_flops(cfg)
    assert flops.scoring == 2 * cfg.d * N_ITEMS
    assert flops.total == sum(flops.layers)


# --- expected FLOPs of the supernet -------------------------------------------------------------------------

CANDIDATE_FLOPS = torch.tensor([9_000_000.0, 5_250_000.0, 2_500_000.0], dtype=torch.float64)
L, M = 4, 3


def soft(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(L, M, generator=g, dtype=torch.float64).softmax(-1)
    q = torch.randn(L, generator=g, dtype=torch.float64).softmax(-1)
    return p, q


@pytest.mark.parametrize("i", range(M))
@pytest.mark.parametrize("j", range(1, L + 1))
def test_expected_flops_one_hot_is_j_layers_of_candidate_i(i: int, j: int) -> None:
    p = torch.zeros(L, M, dtype=torch.float64)
    p[:, i] = 1.0
    q = torch.zeros(L, dtype=torch.float64)
    q[j - 1] = 1.0
    assert expected_flops(p, q, CANDIDATE_FLOPS).item() == j * CANDIDATE_FLOPS[i].item()
    assert depth_flops(p, CANDIDATE_FLOPS).tolist() == [k * CANDIDATE_FLOPS[i].item() for k in range(1, L + 1)]


@pytest.mark.parametrize("seed", range(3))
def test_expected_flops_soft_equals_double_loop(seed: int) -> None:
    p, q = soft(seed)
    f = CANDIDATE_FLOPS.tolist()
    explicit = 0.0
    for j in range(L):
        cost = 0.0
        for layer in range(j + 1):
            cost += sum(p[layer, i].item() * f[i] for i in range(M))
        explicit += q[j].item() * cost
    assert expected_flops(p, q, CANDIDATE_FLOPS).item() == pytest.approx(explicit, rel=1e-12)


def test_expected_flops_gradients_by_hand_and_finite_differences() -> None:
    p, q = soft(7)
    p.requires_grad_(True)
    q.requires_grad_(True)
    expected_flops(p, q, CANDIDATE_FLOPS).backward()
    assert p.grad is not None and q.grad is not None
    f = CANDIDATE_FLOPS
    # dE/dp[l, i] = F_i * sum_{j >= l} q_j ; dE/dq_j = sum_{l <= j} p[l] . F
    tail_q = torch.stack([q.detach()[k:].sum() for k in range(L)])
    torch.testing.assert_close(p.grad, tail_q[:, None] * f[None, :], rtol=1e-12, atol=0.0)
    head_cost = torch.stack([(p.detach()[: j + 1] * f).sum() for j in range(L)])
    torch.testing.assert_close(q.grad, head_cost, rtol=1e-12, atol=0.0)
    # and an independent finite-difference check (scaled costs keep the central differences well conditioned)
    scaled = CANDIDATE_FLOPS / 1e6
    assert torch.autograd.gradcheck(
        lambda p_, q_: expected_flops(p_, q_, scaled), (p.detach().requires_grad_(), q.detach().requires_grad_())
    )


def test_expected_flops_accepts_integer_costs_and_checks_shapes() -> None:
    p, q = soft(1)
    as_int = CANDIDATE_FLOPS.to(torch.int64)
    assert expected_flops(p, q, as_int).item() == pytest.approx(expected_flops(p, q, CANDIDATE_FLOPS).item())
    with pytest.raises(ValueError, match="q must be"):
        expected_flops(p, q[:-1], CANDIDATE_FLOPS)
    with pytest.raises(ValueError, match="candidate_flops"):
        expected_flops(p, q, CANDIDATE_FLOPS[:-1])
    with pytest.raises(ValueError, match="p must be"):
        expected_flops(p[0], q, CANDIDATE_FLOPS)
