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
