"""The numbers a report prints: mean and sample standard deviation over seeds, a two-sided Welch t-test, and
the paper's relative improvement ("Imprv."). Pure functions of lists of floats, so tests compare them with
numpy and scipy directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SIGNIFICANCE = 0.05  # the paper's: two-sided t-test, p < 0.05


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    sd: float | None  # sample standard deviation (ddof=1); None below two values


def summary(values: Sequence[float]) -> Summary:
    import numpy as np

    if not values:
        return Summary(0, None, None)
    a = np.asarray(values, dtype=float)
    return Summary(len(a), float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else None)


def mean_sd_text(values: Sequence[float]) -> str:
    """'mean ± sample sd' to 4 decimals (sd 0 for one value), as the benchmarks print a metric over seeds."""
    s = summary(values)
    if s.mean is None:
        raise ValueError("mean_sd_text: no values")
    return f"{s.mean:.4f} ± {s.sd or 0.0:.4f}"


def welch_p(ours: Sequence[float], other: Sequence[float]) -> float | None:
    """Two-sided Welch t-test (unequal variances) of `ours` against `other`: its p-value, or None where it is
    undefined (fewer than two values on a side, or no variance on either side)."""
    if len(ours) < 2 or len(other) < 2:
        return None
    import warnings

    from scipy.stats import ttest_ind

    # Seeds often give the same value (the FLOPs of one architecture, a Recall@10 of k/943 users), and scipy
    # then warns of precision loss from deep inside; the report shows that sd itself, so the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(list(ours), list(other), equal_var=False).pvalue)
    return None if math.isnan(p) else p


def significant(p: float | None) -> bool:
    return p is not None and p < SIGNIFICANCE


def improvement(ours: float | None, baseline: float | None, better: str = "higher") -> float | None:
    """The paper's "Imprv.": ours' gain relative to the baseline, positive when ours is better.
    Higher-is-better metrics: (ours - baseline) / baseline (paper Table 6); lower-is-better costs (time,
    memory, FLOPs): (baseline - ours) / baseline (paper Table 4)."""
    if ours is None or baseline is None or baseline == 0:
        return None
    gain = (ours - baseline) if better == "higher" else (baseline - ours)
    return gain / abs(baseline)


def improvement_range(gains: Sequence[float | None]) -> tuple[float, float] | None:
    """The paper's Table 4 form "min~max" over the baselines."""
    found = [g for g in gains if g is not None]
    return (min(found), max(found)) if found else None


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"
