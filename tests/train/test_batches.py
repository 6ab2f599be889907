"""Window and per-prefix training samples (docs/method.md, "Training objective")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnsrec.data.sequences import SequenceData
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.train.batches import (
    build_windows,
    pack_batches,
    prefix_batch,
    prefix_samples,
    prefix_windows,
    window_starts,
)
from dnsrec.train.device import Placement
from dnsrec.train.loop import TrainingSamples, train_step


def toy_data(lengths: list[int], n_items: int = 40, max_len: int = 8, seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, n_items + 1, size=sum(lengths))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SequenceData(name="toy", n_items=n_items, max_len=max_len, items=items, offsets=offsets)


@pytest.mark.parametrize("n_targets", [1, 5, 8, 9, 12, 13, 30, 31])
def test_windows_cover_each_target_once_with_enough_history(n_targets: int) -> None:
    n = 8
    data = toy_data([n_targets + 3], max_len=n)  # train = n_targets + 1 items
    s = data.sequence(0)[:-2]
    w = build_windows(data)
    seen: dict[int, int] = {}  # target index -> items it sees
    for a, (inp, tgt) in zip(window_starts(n_targets, n), zip(w.inputs, w.targets, strict=True), strict=True):
        for p in np.flatnonzero(tgt):
            j = a + p + 1
            assert j not in seen, "a target's loss taken twice"
            assert tgt[p] == s[j] and np.array_equal(inp[: p + 1], s[a : a + p + 1])
            seen[j] = p + 1
    assert sorted(seen) == list(range(1, n_targets + 1))
    for j, visible in seen.items():
        assert visible >= min(n // 2, j), (j, visible)
    assert w.n_targets == n_targets


def test_short_sequences_give_per_prefix_logits() -> None:
    """For T <= N + 1 the window formulation's logits equal the per-prefix formulation's, exactly."""
    data = toy_data([5, 9, 10, 3], max_len=8)  # training lengths 3, 7, 8, 1 -> at most N + 1 = 9
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=40, max_len=8, d=8, inner=8, n_layers=2, n_heads=2, attention="linear"))
    model = model.double().eval()
    w = build_windows(data)
    p = prefix_batch(data, prefix_samples(data))
    assert w.n_targets == p.n_targets == len(prefix_samples(data))
    with torch.no_grad():
        hw = model(torch.from_numpy(w.inputs))[torch.from_numpy(w.targets > 0)]
        hp = model(torch.from_numpy(p.inputs))[torch.from_numpy(p.targets > 0)]
    tw, tp = w.targets[w.targets > 0], p.targets[p.targets > 0]
    # Same multiset of (target, logits): sort both by target then by the first hidden unit.
    kw = np.lexsort((hw[:, 0].numpy(), tw))
    kp = np.lexsort((hp[:, 0].numpy(), tp))
    assert np.array_equal(tw[kw], tp[kp])
    torch.testing.assert_close(hw[torch.from_numpy(kw)], hp[torch.from_numpy(kp)])


def test_prefix_mode_gives_every_target_its_per_prefix_context_and_logits() -> None:
    """`train.mode=prefix` (stride-1 windows) against one materialised sample per prefix, sequences longer
    than N included: the same targets, each with the same visible items and the same logits."""
    data = toy_data([5, 9, 30, 14, 23, 3], max_len=8)
    samples = TrainingSamples(data, "prefix", torch.device("cpu"))
    ref = prefix_batch(data, prefix_samples(data))
    assert samples.n_targets == ref.n_targets == len(prefix_samples(data))
    w_in, w_tg = samples.inputs.numpy(), samples.targets.numpy()

    def contexts(inputs: np.ndarray, targets: np.ndarray) -> list[tuple[int, tuple[int, ...]]]:
        """(target, the nonzero items at and before its position) for every target: what it may attend to."""
        rows, cols = np.nonzero(targets)
        return sorted(
            (int(targets[r, c]), tuple(int(x) for x in inputs[r, : c + 1] if x))
            for r, c in zip(rows, cols, strict=True)
        )

    assert contexts(w_in, w_tg) == contexts(ref.inputs, ref.targets)
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=40, max_len=8, d=8, inner=8, n_layers=2, n_heads=2, attention="linear"))
    model = model.double().eval()
    with torch.no_grad():
        hw = model(samples.inputs)[samples.targets > 0]
        hp = model(torch.from_numpy(ref.inputs))[torch.from_numpy(ref.targets > 0)]
    tw, tp = w_tg[w_tg > 0], ref.targets[ref.targets > 0]
    kw, kp = np.lexsort((hw[:, 0].numpy(), tw)), np.lexsort((hp[:, 0].numpy(), tp))
    assert np.array_equal(tw[kw], tp[kp])
    torch.testing.assert_close(hw[torch.from_numpy(kw)], hp[torch.from_numpy(kp)])
    # The per-prefix forward is shorter: a user's first N targets share one window.
    assert (w_in > 0).sum() < (ref.inputs > 0).sum()


@pytest.mark.parametrize(("attention", "gate_layers"), [("linear", 0), ("linear", 2), ("softmax", 2)])
def test_prefix_steps_with_the_last_layer_at_the_target_give_the_full_forward_loss(
    attention: str, gate_layers: int
) -> None:
    """`last_only` (train.mode=prefix) runs a one-target window's last layer at its target only: same loss and
    gradients as the full forward, on steps that mix users' first windows with one-target windows."""
    data = toy_data([5, 9, 30, 14, 23, 3], max_len=8)
    samples = TrainingSamples(data, "prefix", torch.device("cpu"))
    placement = Placement.resolve("cpu", "fp32")
    torch.manual_seed(0)
    cfg = SASRecConfig(
        n_items=40, max_len=8, d=8, inner=8, n_layers=2, n_heads=2, attention=attention, gate_layers=gate_layers
    )  # type: ignore[arg-type]
    model = SASRec(cfg).double().eval()
    steps = samples.steps(12, np.random.default_rng(0))
    mixed = [i for i in steps if len(set(samples.counts[i].tolist())) > 1]
    assert mixed, "no step mixes first windows with one-target windows"
    for idx in steps:
        inputs, targets = samples.get(idx)
        grads = []
        for last_only in (False, True):
            model.zero_grad()
            loss = train_step(model, inputs, targets, placement, last_only=last_only)
            loss.backward()
            grads.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
        (full, g_full), (last, g_last) = grads
        torch.testing.assert_close(last, full)
        for a, b in zip(g_last, g_full, strict=True):
            torch.testing.assert_close(a, b)


def test_overlap_995_at_n_200_builds_the_prefix_windows() -> None:
    """ML-100K's N = 200 at train.window_overlap=0.995 is stride 1: the per-prefix formulation exactly (the
    README's formulation table ran it that way)."""
    data = toy_data([230, 450, 120], n_items=500, max_len=200)
    a, b = build_windows(data, overlap=0.995), prefix_windows(data)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert build_windows(data, overlap=0.99).inputs.shape[0] < a.inputs.shape[0]  # stride 2: fewer windows


def test_bucketed_steps_cover_every_sample_once_and_group_lengths() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 50, size=400)
    lengths = counts + rng.integers(0, 3, size=400)
    steps = pack_batches(counts, 200, np.random.default_rng(0), lengths, bucket_batches=8)
    assert sorted(np.concatenate(steps).tolist()) == list(range(400))
    assert max(counts[s].sum() for s in steps) < 200 + counts.max()
    # Within a step lengths are close: the mean spread is far below that of random steps.
    plain = pack_batches(counts, 200, np.random.default_rng(0))
    spread = np.mean([np.ptp(lengths[s]) for s in steps if len(s) > 1])
    random_spread = np.mean([np.ptp(lengths[s]) for s in plain if len(s) > 1])
    assert spread < 0.5 * random_spread
    again = pack_batches(counts, 200, np.random.default_rng(0), lengths, bucket_batches=8)
    assert all(np.array_equal(a, b) for a, b in zip(steps, again, strict=True))


def test_trimmed_window_batches_give_the_untrimmed_loss() -> None:
    data = toy_data([5, 9, 30, 12, 4], max_len=16)
    samples = TrainingSamples(data, "window", torch.device("cpu"))
    idx = np.flatnonzero(samples.lengths < 12)  # short windows only: the batch is trimmed below N
    assert len(idx) >= 3
    inputs, targets = samples.get(idx)
    assert inputs.shape[1] < 16
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(n_items=40, max_len=16, d=8, inner=8, n_layers=2, n_heads=2)).double().eval()
    placement = Placement.resolve("cpu", "fp32")
    full_inputs, full_targets = samples.inputs[torch.from_numpy(idx)], samples.targets[torch.from_numpy(idx)]
    torch.testing.assert_close(
        train_step(model, inputs, targets, placement), train_step(model, full_inputs, full_targets, placement)
    )


def test_pack_batches_counts_targets() -> None:
    counts = np.array([5, 1, 7, 3, 8, 2, 2, 9])
    steps = list(pack_batches(counts, 10, np.random.default_rng(0)))
    assert sorted(np.concatenate(steps).tolist()) == list(range(len(counts)))
    for s in steps[:-1]:
        assert counts[s].sum() - counts[s[-1]] < 10  # the step closes once it holds >= batch targets
    again = list(pack_batches(counts, 10, np.random.default_rng(0)))
    assert all(np.array_equal(a, b) for a, b in zip(steps, again, strict=True))
