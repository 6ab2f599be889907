"""Inference memory (dnsrec.measure): the peak of the torch profiler's allocation events against allocations
counted by hand, and a model's scoring memory against what it must at least hold (its weights and one batch's
score matrix). The CUDA branch (the allocator's own peak statistics) cannot run here: no GPU."""

from __future__ import annotations

import torch

from dnsrec.data import load_dataset
from dnsrec.evaluate import Evaluator
from dnsrec.measure import inference_memory_mb, peak_allocated_bytes
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.train.device import Placement

CPU = torch.device("cpu")


def test_peak_is_the_most_bytes_alive_at_once() -> None:
    kept: list[torch.Tensor] = []

    def allocate() -> None:
        a = torch.empty(1000)  # 4,000 bytes
        b = torch.empty(2000)  # 8,000: 12,000 alive
        del a  # 8,000
        kept.append(torch.empty(500))  # 10,000
        kept.append(b)

    assert peak_allocated_bytes(allocate, CPU) == 12_000
    assert peak_allocated_bytes(lambda: None, CPU) == 0
    big = torch.ones(1_000_000)  # allocated before: never counted
    assert peak_allocated_bytes(big.clone, CPU) == 4_000_000  # the copy alone


def test_scoring_memory_holds_the_weights_and_a_batch_of_scores() -> None:
    data = load_dataset("gowalla-100")
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=data.n_items, max_len=data.max_len, d=16, inner=32, n_layers=2, n_heads=2))
    placement = Placement.resolve("cpu", "fp32")
    evaluator = Evaluator(data, batch_size=32, device=CPU)
    weights = sum(p.numel() * 4 for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    users = min(32, data.n_users)
    mb = inference_memory_mb(model, evaluator, placement, batch=32)
    assert mb * 2**20 >= weights + users * (data.n_items + 1) * 4  # the largest batch's score matrix
    assert mb * 2**20 < weights + 64 * 2**20  # and not the process: a tiny model scores in well under 64 MiB
    assert inference_memory_mb(model, evaluator, placement, batch=8) < mb  # fewer users at once, less memory
