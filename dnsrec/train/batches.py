"""Training samples: causal windows (default) or the per-prefix formulation (the reference's objective).

docs/method.md, "Training objective". A user's training sequence s = seq[:-2] has targets s[1..T-1]; the
target s[t] must be predicted from its prefix s[:t].

- Per prefix (RecBole): one sample per target, the last N items of s[:t], loss on its last position.
- Windows (ours): windows of N inputs s[a:a+N] with targets s[a+1:a+N+1] and causal attention, so
  position p predicts s[a+p+1] from s[a..a+p]. Windows are counted back from the end of s, consecutive
  windows overlap by a fraction o of N (`train.window_overlap`, default 0.5: the stride is
  floor(N (1 - o)), N//2 at the default), and each target's loss is taken in the EARLIEST window that
  covers it, so a target sees at least min(N - stride + 1, t) >= min(o N, t) items (per prefix:
  min(N, t)). More overlap means more windows (about 1 / (1 - o) times the targets' positions fed
  through the model) and longer contexts. For T <= N + 1 there is one window and the two formulations
  give identical logits.
- Per prefix, computed (`train.mode=prefix`): windows at stride 1 (`prefix_windows`). The first window
  takes targets 1..min(N, T - 1), each seeing its whole prefix; every later window ends at the next
  target and takes only that one, which sees exactly its last N items. So every target gets the same
  context, hence the same logits and loss term, as its own per-prefix sample, while a user's first N
  targets share one forward: on ML-100K (N = 200) about a third of the positions one sample per prefix
  feeds through the model. Only the grouping of targets into steps differs. `prefix_samples` and
  `prefix_batch` materialise one sample per prefix as the reference library does; the tests and
  benchmarks/training_speed.py compare against them.

Batch sizes count target positions: a step takes windows until it holds about `batch` targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dnsrec.data.sequences import SequenceData


@dataclass(frozen=True)
class Windows:
    """Training windows. inputs/targets: int64 (W, N), right-padded; targets are 0 where no loss."""

    inputs: np.ndarray
    targets: np.ndarray

    @property
    def n_targets(self) -> int:
        return int((self.targets > 0).sum())


DEFAULT_WINDOW_OVERLAP = 0.5  # train.window_overlap


def window_stride(n: int, overlap: float = DEFAULT_WINDOW_OVERLAP) -> int:
    """Items between consecutive window starts: floor(N (1 - o)), at least 1.

    Floored, not rounded, so that consecutive windows share at least o N items (the guarantee the
    module docstring states) and the default o = 0.5 gives exactly N // 2 for odd N too. The small
    tolerance keeps e.g. 50 * (1 - 0.8) = 9.999... at 10."""
    if not 0 <= overlap < 1:
        raise ValueError(f"window overlap must be in [0, 1), got {overlap!r}")
    return max(1, math.floor(n * (1 - overlap) + 1e-9))


def window_starts(
    n_targets: int, n: int, overlap: float = DEFAULT_WINDOW_OVERLAP, stride: int | None = None
) -> list[int]:
    """Start offsets, chronological, of the windows over a training sequence with `n_targets` targets
    (`stride`, when given, instead of the overlap's)."""
    if n_targets <= n:
        return [0]
    stride = stride or window_stride(n, overlap)
    starts, a = [], n_targets - n  # the last window's targets end at the last target
    while a > 0:
        starts.append(a)
        a -= stride
    starts.append(0)
    return starts[::-1]


def build_windows(
    data: SequenceData,
    max_len: int | None = None,
    overlap: float = DEFAULT_WINDOW_OVERLAP,
    stride: int | None = None,
) -> Windows:
    """Every user's training windows at `overlap` (`train.window_overlap`), or at `stride` when given."""
    n = max_len or data.max_len
    inputs_rows: list[np.ndarray] = []
    targets_rows: list[np.ndarray] = []
    for u in range(data.n_users):
        s = data.sequence(u)[:-2]
        n_t = len(s) - 1
        if n_t < 1:
            continue
        covered = 0  # targets 1..covered were taken by earlier windows
        for a in window_starts(n_t, n, overlap, stride):
            inp = np.zeros(n, dtype=np.int64)
            tgt = np.zeros(n, dtype=np.int64)
            width = min(n, n_t - a)
            inp[:width] = s[a : a + width]
            tgt[:width] = s[a + 1 : a + width + 1]
            first_new = max(0, covered - a)  # position p predicts target index a + p + 1
            tgt[:first_new] = 0
            covered = a + width
            inputs_rows.append(inp)
            targets_rows.append(tgt)
    if not inputs_rows:
        return Windows(np.zeros((0, n), np.int64), np.zeros((0, n), np.int64))
    return Windows(np.stack(inputs_rows), np.stack(targets_rows))


def prefix_windows(data: SequenceData, max_len: int | None = None) -> Windows:
    """The per-prefix formulation as stride-1 windows: every target with its whole last-N context (above)."""
    return build_windows(data, max_len, stride=1)


def prefix_samples(data: SequenceData) -> np.ndarray:
    """(user, t) pairs, one per training target s[t], t >= 1: one sample per prefix, the reference form."""
    pairs = [(u, t) for u in range(data.n_users) for t in range(1, len(data.sequence(u)) - 2)]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def prefix_batch(data: SequenceData, pairs: np.ndarray, max_len: int | None = None) -> Windows:
    """Materialise per-prefix samples: input = last N items of s[:t], loss only at its last position."""
    n = max_len or data.max_len
    inputs = np.zeros((len(pairs), n), dtype=np.int64)
    targets = np.zeros((len(pairs), n), dtype=np.int64)
    for row, (u, t) in enumerate(pairs):
        s = data.sequence(int(u))
        hist = s[max(0, t - n) : t]
        inputs[row, : len(hist)] = hist
        targets[row, len(hist) - 1] = s[t]
    return Windows(inputs, targets)


def pack_batches(
    target_counts: np.ndarray,
    batch: int,
    rng: np.random.Generator,
    lengths: np.ndarray | None = None,
    bucket_batches: int = 32,
) -> list[np.ndarray]:
    """Shuffle samples and group them into steps of about `batch` targets each; returns index arrays.

    With `lengths` (real items per sample), samples are bucketed: the shuffled order is cut into groups
    of about `bucket_batches` steps, each group is sorted by length before it is cut into steps, and the
    steps are shuffled again. A step then holds samples of similar length, so trimming its right padding
    saves most of the padded positions (ML-100K windows are ~58% padding at N = 200), while each step still
    holds about `batch` targets drawn from a random slice of the data.
    """
    order = rng.permutation(len(target_counts))
    if lengths is None:
        return _cut(order, target_counts, batch)
    group = (np.cumsum(target_counts[order]) - target_counts[order]) // (batch * bucket_batches)
    steps: list[np.ndarray] = []
    for members in np.split(order, np.flatnonzero(np.diff(group)) + 1):
        members = members[np.argsort(lengths[members], kind="stable")]
        steps.extend(_cut(members, target_counts, batch))
    return [steps[i] for i in rng.permutation(len(steps))]


def _cut(order: np.ndarray, target_counts: np.ndarray, batch: int) -> list[np.ndarray]:
    before = np.cumsum(target_counts[order]) - target_counts[order]  # targets ahead of each sample
    step = before // batch
    return np.split(order, np.flatnonzero(np.diff(step)) + 1)
