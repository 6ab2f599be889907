"""`train.window_overlap`: the default reproduces the windows of before, and every overlap gives each target
its loss once, in the earliest window that covers it, with the context an independent computation says."""

from __future__ import annotations

import numpy as np
import pytest

from dnsrec.config import TrainConfig, build
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import ConfigError
from dnsrec.train.batches import build_windows, window_starts, window_stride


def toy_data(lengths: list[int], n_items: int = 50, max_len: int = 8, seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, n_items + 1, size=sum(lengths))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SequenceData(name="toy", n_items=n_items, max_len=max_len, items=items, offsets=offsets)


def windows_before(data: SequenceData) -> tuple[np.ndarray, np.ndarray]:
    """A frozen copy of build_windows as it was before the overlap was a key (stride N // 2)."""
    n = data.max_len
    inputs, targets = [], []
    for u in range(data.n_users):
        s = data.sequence(u)[:-2]
        n_t = len(s) - 1
        if n_t < 1:
            continue
        if n_t <= n:
            starts = [0]
        else:
            starts, a = [], n_t - n
            while a > 0:
                starts.append(a)
                a -= n // 2
            starts = [0, *starts[::-1]]
        covered = 0
        for a in starts:
            inp, tgt = np.zeros(n, np.int64), np.zeros(n, np.int64)
            width = min(n, n_t - a)
            inp[:width], tgt[:width] = s[a : a + width], s[a + 1 : a + width + 1]
            tgt[: max(0, covered - a)] = 0
            covered = a + width
            inputs.append(inp)
            targets.append(tgt)
    return np.stack(inputs), np.stack(targets)


LENGTHS = [3, 4, 5, 9, 10, 11, 12, 13, 20, 31, 32, 33, 60, 101, 150]


@pytest.mark.parametrize("max_len", [7, 8, 9, 50])
def test_default_overlap_reproduces_the_windows_of_before(max_len: int) -> None:
    data = toy_data(LENGTHS, max_len=max_len)
    want_inputs, want_targets = windows_before(data)
    for w in (build_windows(data), build_windows(data, overlap=0.5)):
        assert np.array_equal(w.inputs, want_inputs) and np.array_equal(w.targets, want_targets)
    assert TrainConfig().window_overlap == 0.5


def test_default_overlap_reproduces_the_windows_of_before_on_real_data() -> None:
    from dnsrec.data import load_dataset

    data = load_dataset("gowalla-100")
    w, (inputs, targets) = build_windows(data), windows_before(data)
    assert np.array_equal(w.inputs, inputs) and np.array_equal(w.targets, targets)


def per_target(data: SequenceData, overlap: float) -> list[tuple[int, tuple[int, ...], int]]:
    """(user, context, target) of every training target, computed per target: the window starts are the
    last window's start n_t - N stepped back by the stride, clipped at 0; target j (predicted from s[:j])
    is scored in the earliest window starting at a with a < j <= a + N, whose context is s[a:j]."""
    n = data.max_len
    stride = max(1, int(np.floor(n * (1 - overlap) + 1e-9)))
    out = []
    for u in range(data.n_users):
        s = data.sequence(u)[:-2]
        n_t = len(s) - 1
        starts = sorted({max(0, n_t - n - k * stride) for k in range(n_t // stride + 2)})
        for j in range(1, n_t + 1):
            a = min(a for a in starts if a < j <= a + n)
            out.append((u, tuple(int(x) for x in s[a:j]), int(s[j])))
    return out


def from_windows(data: SequenceData, overlap: float) -> list[tuple[int, tuple[int, ...], int]]:
    """(user, context, target) of every scored position of build_windows."""
    w = build_windows(data, overlap=overlap)
    users = [u for u in range(data.n_users) if len(data.sequence(u)) - 3 >= 1]
    out, row = [], 0
    for u in users:
        n_t = len(data.sequence(u)) - 3
        for _ in window_starts(n_t, data.max_len, overlap):
            inp, tgt = w.inputs[row], w.targets[row]
            out.extend((u, tuple(int(x) for x in inp[: p + 1]), int(tgt[p])) for p in np.flatnonzero(tgt))
            row += 1
    assert row == len(w.inputs)
    return out


@pytest.mark.parametrize("overlap", [0.5, 0.75, 0.9])
@pytest.mark.parametrize("max_len", [8, 9, 50])
def test_windows_match_a_per_target_computation(overlap: float, max_len: int) -> None:
    data = toy_data(LENGTHS, max_len=max_len, seed=max_len)
    got, want = from_windows(data, overlap), per_target(data, overlap)
    assert sorted(got) == sorted(want)
    assert len(got) == len(want) == sum(n - 3 for n in LENGTHS if n - 3 >= 1)  # each target once
    # the guarantee: target j (whose history is j items) sees at least min(o N, j) of them
    n_t = [len(data.sequence(u)) - 3 for u in range(data.n_users)]
    for u in range(data.n_users):
        contexts = [c for uu, c, _ in want if uu == u]  # per_target lists user u's targets j = 1..n_t in order
        assert len(contexts) == max(0, n_t[u])
        for j, context in enumerate(contexts, start=1):
            assert len(context) >= min(overlap * max_len, j) - 1e-9, (u, j, len(context))


def test_more_overlap_means_more_windows() -> None:
    data = toy_data(LENGTHS, max_len=10)
    counts = [len(build_windows(data, overlap=o).inputs) for o in (0.5, 0.75, 0.9)]
    assert counts[0] < counts[1] < counts[2]
    assert [window_stride(10, o) for o in (0.5, 0.75, 0.9)] == [5, 2, 1]
    assert window_stride(50, 0.8) == 10  # 50 * (1 - 0.8) = 9.999... in floats


@pytest.mark.parametrize("bad", [0.4, 1.0, 1.5, -0.1, True])
def test_overlap_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"train\.window_overlap"):
        build(TrainConfig, {"window_overlap": bad}, "train.")
