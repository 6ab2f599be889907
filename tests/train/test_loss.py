"""Chunked full-softmax CE == the plain (materialised) CE, in value and in both gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dnsrec.train.loss import chunked_cross_entropy, item_cross_entropy


@pytest.mark.parametrize("chunk_elements", [1, 37 * 5, 10_000_000])
def test_chunked_equals_unchunked(chunk_elements: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(23, 8, dtype=torch.double, requires_grad=True)
    weight = torch.randn(37, 8, dtype=torch.double, requires_grad=True)
    targets = torch.randint(0, 37, (23,))
    ref = F.cross_entropy(hidden @ weight.T, targets)
    gh, gw = torch.autograd.grad(3.0 * ref, (hidden, weight))
    ours = chunked_cross_entropy(hidden, weight, targets, chunk_elements=chunk_elements)
    oh, ow = torch.autograd.grad(3.0 * ours, (hidden, weight))
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(oh, gh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ow, gw, rtol=1e-5, atol=1e-7)


def test_item_ce_excludes_padding_row() -> None:
    torch.manual_seed(1)
    hidden = torch.randn(5, 4, requires_grad=True)
    weight = torch.randn(11, 4, requires_grad=True)  # row 0 = padding
    targets = torch.tensor([1, 10, 3, 3, 7])
    ours = item_cross_entropy(hidden, weight, targets)
    ref = F.cross_entropy(hidden @ weight[1:].T, targets - 1)
    torch.testing.assert_close(ours, ref)
    ours.backward()
    assert weight.grad is not None and weight.grad[0].abs().sum() == 0


def test_bf16_compute_close_to_fp32() -> None:
    torch.manual_seed(2)
    hidden, weight = torch.randn(64, 16), torch.randn(500, 16) * 0.1
    targets = torch.randint(0, 500, (64,))
    ref = F.cross_entropy(hidden @ weight.T, targets)
    ours = chunked_cross_entropy(hidden, weight, targets, compute_dtype=torch.bfloat16)
    assert abs(ours.item() - ref.item()) < 2e-2 and ours.dtype == torch.float32


@pytest.mark.parametrize("chunk_elements", [0, 1, 700 * 64, 10_000_000])
def test_fp32_chunked_equals_materialised_at_catalogue_scale(chunk_elements: int) -> None:
    """`train.ce_chunk` (logits per chunk, 0 = unchunked) changes memory, not the loss or its gradients."""
    torch.manual_seed(3)
    hidden = torch.randn(300, 32, requires_grad=True)
    weight = (0.3 * torch.randn(5000, 32)).requires_grad_()
    targets = torch.randint(0, 5000, (300,))
    ref = F.cross_entropy(hidden @ weight.T, targets, reduction="sum") / 1000.0
    gh, gw = torch.autograd.grad(ref, (hidden, weight))
    ours = chunked_cross_entropy(hidden, weight, targets, chunk_elements=chunk_elements, denominator=1000.0)
    oh, ow = torch.autograd.grad(ours, (hidden, weight))
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(oh, gh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ow, gw, rtol=1e-5, atol=1e-7)


def test_only_the_needed_gradient_is_computed() -> None:
    """Detached item weights (an architecture step) get no gradient; the hidden states' is unchanged."""
    torch.manual_seed(4)
    hidden = torch.randn(40, 8, requires_grad=True)
    weight = torch.randn(90, 8)
    targets = torch.randint(0, 90, (40,))
    (gh,) = torch.autograd.grad(F.cross_entropy(hidden @ weight.T, targets), (hidden,))
    ours = chunked_cross_entropy(hidden, weight, targets, chunk_elements=90 * 7)
    (oh,) = torch.autograd.grad(ours, (hidden,))
    torch.testing.assert_close(oh, gh, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(
            chunked_cross_entropy(hidden, weight, targets), F.cross_entropy(hidden @ weight.T, targets)
        )


def test_negative_chunk_is_refused() -> None:
    with pytest.raises(ValueError, match="chunk_elements"):
        chunked_cross_entropy(torch.randn(2, 3), torch.randn(4, 3), torch.tensor([0, 1]), chunk_elements=-1)


def test_ce_chunk_key_reaches_the_training_loss() -> None:
    """`train.ce_chunk` is validated, and the training step's loss and gradients do not depend on it."""
    from dnsrec.compose import compose
    from dnsrec.config.run import TrainRunConfig
    from dnsrec.errors import ConfigError
    from dnsrec.models import SASRec, SASRecConfig
    from dnsrec.train.device import Placement
    from dnsrec.train.loop import train_step

    assert TrainRunConfig.from_mapping(compose("train", ["train.ce_chunk=0"])).train.ce_chunk == 0
    with pytest.raises(ConfigError, match=r"train\.ce_chunk"):
        TrainRunConfig.from_mapping(compose("train", ["train.ce_chunk=-5"]))
    torch.manual_seed(6)
    model = SASRec(SASRecConfig(n_items=300, max_len=9, d=16, inner=16, n_layers=1, n_heads=2, dropout=0.0))
    inputs = torch.randint(1, 301, (5, 9))
    targets = torch.randint(0, 301, (5, 9))
    placement = Placement(torch.device("cpu"), bf16=False)
    results = []
    for chunk in (0, 300 * 4, 1 << 25):
        loss = train_step(model, inputs, targets, placement, ce_chunk=chunk)
        results.append((loss, torch.autograd.grad(loss, list(model.parameters()))))
    for loss, grads in results[1:]:
        torch.testing.assert_close(loss, results[0][0], rtol=1e-6, atol=1e-7)
        for got, want in zip(grads, results[0][1], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
