"""The tiny but real configurations the tests run: gowalla-100 (100 users of the real Gowalla check-ins)
with small models, so a whole run takes seconds on one core. One place, so every test means the same run."""

from __future__ import annotations

from typing import Any

import pytest

# `dnsrec train`: a 1-layer SASRec, d = 16
TINY_TRAIN = [
    "dataset=gowalla-100",
    "model.d=16",
    "model.inner=16",
    "model.layers=1",
    "model.heads=2",
    "batch=1024",
    "train.progress=false",
]

# `dnsrec run`: a 2-layer supernet, d = 16, 1 search epoch, 2 retraining epochs
TINY_RUN = [
    "dataset=gowalla-100",
    "dataset.d=16",
    "dataset.inner=32",
    "search.layers=2",
    "search.epochs=1",
    "search.batch=512",
    "retrain.max_epochs=2",
    "retrain.batch=1024",
    "train.progress=false",
]


def assert_same_numbers(got: Any, want: Any, rel: float, where: str = "", abs_tol: float = 1e-9) -> None:
    """Recorded numbers (nested dicts and lists, as JSON gives them) equal, floats within `rel` (or `abs_tol`):
    the guard that a refactor left a seeded tiny run's trajectory as it was."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_same_numbers(got[k], want[k], rel, f"{where}.{k}", abs_tol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_numbers(g, w, rel, f"{where}[{i}]", abs_tol)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=rel, abs=abs_tol), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
