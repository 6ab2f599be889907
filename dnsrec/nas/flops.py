"""Analytic FLOPs of SASRec-shaped layers and the differentiable expected FLOPs of the supernet.

One definition is used everywhere (docs/method.md "Resource constraint": results, database, reports, the search
penalty): FLOPs = 2 x multiply-adds of the forward pass of ONE sequence of N positions through the
transformer layers. Counted: linear layers (weights only; biases are not counted, as torch's FLOP counter
does not count them), the attention products and the data-aware gates. Not counted: LayerNorm, softmax,
activations, elementwise products and embedding lookups. The scoring layer against the item catalogue is
reported as a separate number, because it depends on the dataset, not on the searched architecture.

Linear (LinRec) attention is counted in its prefix-sum form, O(N dh^2) per head — the efficiency LinRec
sells — whichever form the training code computes: both give the same values. The formulas are computed
here, not measured, so they hold for the dataset's real d, D and N without building a model (the published
code hard-codes sizes); tests check them against `torch.utils.flop_counter.FlopCounterMode`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dnsrec.models import SASRecConfig

LINEAR_ATTENTIONS = ("linear", "linear-prefix")  # the same LinRec values, counted in the prefix-sum form
ATTENTIONS = (*LINEAR_ATTENTIONS, "softmax")


def _linear(n: int, d_in: int, d_out: int) -> int:
    """FLOPs of one Linear(d_in, d_out) applied at n positions, weights only."""
    return 2 * n * d_in * d_out


def attention_flops(n: int, h: int, head_dim: int, attention: str = "linear") -> int:
    """FLOPs of the attention products of one layer (projections excluded).

    Linear attention, prefix-sum form, per head: the outer products k'_t^T v_t (N dh^2 multiply-adds) and
    q'_t S_t (N dh^2), i.e. 2 N h dh multiply-adds per layer. Softmax attention: Q K^T and P V, N^2 h
    multiply-adds each (the full N x N products the code computes; the causal mask does not skip any).
    """
    if attention in LINEAR_ATTENTIONS:
        return 2 * (2 * n * h * head_dim)
    if attention == "softmax":
        return 2 * (2 * n * n * h)
    raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")


def gate_flops(n: int, r: int, width: int, gate_layers: int) -> int:
    """FLOPs of one data-aware gate: Linear(r, width) then (gate_layers - 1) x Linear(width, width)."""
    if gate_layers == 0:
        return 0
    return _linear(n, r, width) + (gate_layers - 1) * _linear(n, width, width)


def layer_flops(
    n: int, r: int, h: int, inner: int, head_dim: int, gate_layers: int = 0, attention: str = "linear"
) -> int:
    """FLOPs of one `dnsrec.models.layers.Block` over n positions.

    r: residual width (d for SASRec and the `wide` shape, h for `narrow`); h: attention width, whole heads of
    `head_dim`; inner: the FFN width D; gate_layers: L_d (0 = no gates). Q, K, V are Linear(r, h), the
    attention output Linear(h, h), the FFN Linear(r, D) and Linear(D, h); gate 1 maps r -> D (-> D ...),
    gate 2 r -> h (-> h ...), each at every position.
    """
    for name, value in (("n", n), ("r", r), ("h", h), ("inner", inner), ("head_dim", head_dim)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if h % head_dim:
        raise ValueError(f"attention width h={h} is not a whole number of heads of head_dim={head_dim}")
    if h > r:
        raise ValueError(f"attention width h={h} exceeds the residual width r={r}")
    if gate_layers < 0:
        raise ValueError(f"gate_layers must be >= 0, got {gate_layers}")
    projections = 3 * _linear(n, r, h) + _linear(n, h, h)
    ffn = _linear(n, r, inner) + _linear(n, inner, h)
    gates = gate_flops(n, r, inner, gate_layers) + gate_flops(n, r, h, gate_layers)
    return projections + attention_flops(n, h, head_dim, attention) + ffn + gates


@dataclass(frozen=True)
class ModelFlops:
    """FLOPs of one sequence through a model: per layer, their sum, and the (separate) scoring layer."""

    layers: tuple[int, ...]  # per transformer layer, N = max_len positions
    total: int  # sum of `layers`: what results and the database report as the model's FLOPs
    scoring: int  # 2 * d * n_items: scoring ONE position against the catalogue, reported separately


def model_flops(cfg: SASRecConfig) -> ModelFlops:
    """FLOPs of `SASRec(cfg)` for one sequence of N = cfg.max_len positions.

    Works for plain SASRec (r = h = d), the `narrow` compact model (cfg.d is the kept width) and the `wide`
    one (cfg.d is the supernet width, per-layer widths in cfg.widths): the residual width is always cfg.d.
    """
    layers = tuple(
        layer_flops(cfg.max_len, cfg.d, h, inner, cfg.head_dim, cfg.gate_layers, cfg.attention)
        for h, inner in cfg.layer_widths()
    )
    return ModelFlops(layers=layers, total=sum(layers), scoring=2 * cfg.d * cfg.n_items)


def _check_p(p: Tensor, candidate_flops: Tensor) -> None:
    if p.dim() != 2:
        raise ValueError(f"p must be (L, m), got shape {tuple(p.shape)}")
    if candidate_flops.shape not in ((p.shape[1],), tuple(p.shape)):
        shape = tuple(candidate_flops.shape)
        raise ValueError(f"candidate_flops must be (m,) or (L, m) = {tuple(p.shape)}, got {shape}")


def depth_flops(p: Tensor, candidate_flops: Tensor) -> Tensor:
    """Expected cost of exiting after each layer: C_j = sum_{l<=j} sum_i p[l, i] F_i. Shape (L,).

    p (L, m): each layer's candidate distribution; candidate_flops (m,) the cost of one layer of candidate i
    ((L, m) is accepted too, for layer-dependent costs). Differentiable in p; the costs carry no gradient.
    """
    _check_p(p, candidate_flops)
    per_layer = (p * candidate_flops.to(p)).sum(dim=-1)  # (L,)
    return per_layer.cumsum(dim=0)


def expected_flops(p: Tensor, q: Tensor, candidate_flops: Tensor) -> Tensor:
    """Differentiable expected FLOPs of the supernet: E = sum_j q_j sum_{l<=j} sum_i p[l, i] F_i (scalar).

    Exiting after layer j costs layers 1..j (paper Eq. 12-13): this is the unnormalised resource term; the
    caller scales it (L_t / L, F_max - F_min). q (L,) is the depth distribution. The gradients are
    dE/dp[l, i] = F_i sum_{j>=l} q_j and dE/dq_j = C_j.
    """
    _check_p(p, candidate_flops)
    if q.shape != (p.shape[0],):
        raise ValueError(f"q must be (L,) = ({p.shape[0]},), got shape {tuple(q.shape)}")
    return (q * depth_flops(p, candidate_flops)).sum()
