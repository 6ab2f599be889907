"""The tiny but real configurations the tests run: gowalla-100 (100 users of the real Gowalla check-ins)
with small models, so a whole run takes seconds on one core. One place, so every test means the same run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dnsrec.nas.search import SearchOutcome

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


def tiny_search(*extra: str, run_dir: Path | None = None) -> list[dict[str, Any]]:
    """A tiny real search on gowalla-100 (one architecture step per weight step); its trajectory, and its
    `search.pt` in `run_dir` when one is given."""
    return tiny_outcome(*extra, run_dir=run_dir).trajectory


def tiny_outcome(*extra: str, run_dir: Path | None = None) -> SearchOutcome:
    """`tiny_search`'s whole outcome (decision epoch included)."""
    from dnsrec.compose import compose  # here, not at the top: most importers of this module need no torch
    from dnsrec.config.run import RunConfig
    from dnsrec.data import load_dataset
    from dnsrec.evaluate import Evaluator
    from dnsrec.nas.controllers import Controllers
    from dnsrec.nas.search import search
    from dnsrec.nas.space import SearchSpace
    from dnsrec.nas.supernet import Supernet

    cfg = RunConfig.from_mapping(compose("run", [*TINY_RUN, "search.arch_every=1", *extra]))
    data = load_dataset("gowalla-100")
    space = SearchSpace(
        data.n_items, data.max_len, d=16, inner=32, n_heads=4, n_layers=2, pruning=(0.0, 0.5, 0.75), gate_layers=1
    )
    return search(
        Supernet(space), Controllers(2, 3), data, Evaluator(data), cfg.search, cfg.train, run_dir, log=lambda _: None
    )
