"""SASRec with softmax and LinRec attention, checked against independent computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dnsrec.models import SASRec, SASRecConfig
from dnsrec.models.attention import (
    linear_attention,
    linear_attention_last,
    linear_attention_prefix,
    softmax_attention,
)

ATTENTIONS = ["linear", "softmax"]


def make_model(attention: str, n_items: int = 50, max_len: int = 12, layers: int = 2) -> SASRec:
    torch.manual_seed(0)
    cfg = SASRecConfig(
        n_items=n_items, max_len=max_len, d=16, inner=24, n_layers=layers, n_heads=4, dropout=0.3, attention=attention
    )  # type: ignore[arg-type]
    return SASRec(cfg).double().eval()


def padded(rows: list[list[int]], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        seqs[i, : len(r)] = torch.tensor(r)
    return seqs, torch.tensor([len(r) for r in rows])


def naive_linrec(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, length: int) -> torch.Tensor:
    """LinRec for ONE head of ONE sequence, position by position, straight from the formula."""
    out = torch.zeros_like(v)
    dh = q.shape[-1]

    def feat(x: torch.Tensor) -> torch.Tensor:
        e = torch.where(x > 0, x, torch.exp(x) - 1)
        return e / max(float(e.norm()), 1e-6)

    for t in range(length):
        kv = sum(torch.outer(feat(k[s]), v[s]) for s in range(t + 1))
        out[t] = feat(q[t]) @ kv / math.sqrt(dh)
    return out


def test_linear_attention_matches_naive_formula() -> None:
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 7, 5, dtype=torch.double) for _ in range(3))
    lengths = [7, 4]
    key_mask = torch.arange(7)[None] < torch.tensor(lengths)[:, None]
    fast = linear_attention(q, k, v, key_mask)
    for b, n in enumerate(lengths):
        for h in range(3):
            ref = naive_linrec(q[b, h], k[b, h], v[b, h], n)
            torch.testing.assert_close(fast[b, h, :n], ref[:n])


def test_last_position_linear_form_equals_masked_quadratic() -> None:
    torch.manual_seed(2)
    q, k, v = (torch.randn(3, 2, 9, 4, dtype=torch.double) for _ in range(3))
    lengths = torch.tensor([9, 5, 1])
    key_mask = torch.arange(9)[None] < lengths[:, None]
    full = linear_attention(q, k, v, key_mask)
    last = lengths - 1
    q_last = q[torch.arange(3), :, last][:, :, None]  # (B, H, 1, dh)
    fast = linear_attention_last(q_last, k, v, key_mask)
    torch.testing.assert_close(fast[:, :, 0], full[torch.arange(3), :, last])


def test_prefix_sum_form_equals_quadratic_form() -> None:
    torch.manual_seed(4)
    q, k, v = (torch.randn(2, 3, 8, 4, dtype=torch.double) for _ in range(3))
    key_mask = torch.arange(8)[None] < torch.tensor([8, 3])[:, None]
    torch.testing.assert_close(linear_attention_prefix(q, k, v, key_mask), linear_attention(q, k, v, key_mask))


def test_zero_head_gives_zero_not_nan() -> None:
    q = torch.zeros(1, 1, 3, 4)
    out = linear_attention(q, q, torch.randn(1, 1, 3, 4), torch.ones(1, 3, dtype=torch.bool))
    assert torch.isfinite(out).all() and out.abs().max() == 0


def test_softmax_attention_matches_torch_sdpa() -> None:
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 6, 4, dtype=torch.double) for _ in range(3))
    ours = softmax_attention(q, k, v, torch.ones(2, 6, dtype=torch.bool), dropout=0.0)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_causal_positions_equal_per_prefix_last_position(attention: str) -> None:
    model = make_model(attention)
    seq = [5, 3, 9, 12, 1, 44, 7, 7, 30]
    seqs, _ = padded([seq], 12)
    with torch.no_grad():
        hidden = model(seqs)[0]  # (N, d)
        logits_all = hidden @ model.output_weight.T
        for t in range(1, len(seq) + 1):
            pre, length = padded([seq[:t]], 12)
            torch.testing.assert_close(model.score(pre, length)[0], logits_all[t - 1])


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padding_never_changes_real_positions(attention: str) -> None:
    model = make_model(attention)
    rows = [[4, 8, 15, 16, 23], [42, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
    with torch.no_grad():
        batch, lengths = padded(rows, 12)
        together = model(batch)
        for i, r in enumerate(rows):
            for width in (len(r), 12):  # no padding at all, and as much as fits
                alone, _ = padded([r], width)
                torch.testing.assert_close(model(alone)[0, : len(r)], together[i, : len(r)])
        # Different padding ids' garbage cannot leak either: the last-position path sees only real keys.
        torch.testing.assert_close(model.last_hidden(batch, lengths), together[torch.arange(3), lengths - 1])


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_fast_inference_equals_all_position_forward(attention: str) -> None:
    model = make_model(attention, layers=3)
    rows = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7], [1]]
    seqs, lengths = padded(rows, 12)
    with torch.no_grad():
        ref = model(seqs)[torch.arange(3), lengths - 1] @ model.output_weight.T
        torch.testing.assert_close(model.score(seqs, lengths), ref)


def test_output_layer_is_the_item_embedding() -> None:
    model = make_model("linear").train()
    assert model.output_weight.data_ptr() == model.item_emb.weight.data_ptr()
    before = model.item_emb.weight.detach().clone()
    seqs, _ = padded([[1, 2, 3]], 12)
    # A loss that touches only the output layer (no lookup of item 40) must still move row 40.
    (model(seqs)[0, 2] @ model.output_weight.T)[40].backward()
    assert model.item_emb.weight.grad is not None and model.item_emb.weight.grad[40].abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert not torch.equal(before[40], model.item_emb.weight[40])
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in set(model.parameters()))


@pytest.mark.parametrize(("n", "block"), [(7, 20), (20, 20), (57, 20), (57, 8), (9, 1)])
def test_blockwise_causal_form_equals_quadratic_form(n: int, block: int) -> None:
    """The blockwise causal LinRec (training's form) == the quadratic form (Q'K'^T * causal) V, in value and
    gradients, for lengths that are and are not whole blocks, with padding keys."""
    torch.manual_seed(5)
    q, k, v = (torch.randn(2, 3, n, 4, dtype=torch.double, requires_grad=True) for _ in range(3))
    key_mask = torch.arange(n)[None] < torch.tensor([n, max(1, n // 2)])[:, None]

    def quadratic() -> torch.Tensor:
        e = [F.normalize(F.elu(x), dim=-1, eps=1e-6) for x in (q, k)]
        kf = e[1] * key_mask[:, None, :, None]
        return ((e[0] @ kf.transpose(-2, -1)).tril() @ v) / math.sqrt(4)

    g = torch.randn(2, 3, n, 4, dtype=torch.double)
    ref = quadratic()
    ref_grads = torch.autograd.grad(ref, (q, k, v), g)
    out = linear_attention(q, k, v, key_mask, block=block)
    grads = torch.autograd.grad(out, (q, k, v), g)
    torch.testing.assert_close(out, ref)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_scores_trimmed_histories_of_any_length(fmt: str, tmp_path: Path) -> None:
    """N = 60 spans three causal blocks: an export traced at one length must still score histories whose
    padding is trimmed to other lengths (7, 25, 41 positions), as the eager model does. The block count is
    Python arithmetic a trace would freeze (seen: gowalla-1k's export failed on trimmed inputs)."""
    from dnsrec.export import example_inputs, load_exported, write_model

    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=30, max_len=60, d=16, inner=32, n_heads=2, n_layers=2)).eval()
    out = tmp_path / f"model.{fmt}"
    write_model(model, fmt, out, {"format": fmt})
    exported = load_exported(out, fmt)
    for n in (7, 25, 41):
        seqs, lengths = example_inputs(30, 60, [n, max(1, n - 5), 1], seed=n)
        seqs = seqs[:, :n]
        with torch.no_grad():
            want = model.score(seqs, lengths).numpy()
        np.testing.assert_allclose(exported(seqs.numpy(), lengths.numpy()), want, rtol=1e-4, atol=1e-5)
