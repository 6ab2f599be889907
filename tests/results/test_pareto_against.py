"""`dnsrec results pareto --against RUN [--cost-ratio R]`: which front runs are as good as a reference run
(e.g. SASRec) at no more than R x its cost, the search issue's sweep bar; numbers written here by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnsrec.cli import main
from dnsrec.results import open_store


@pytest.fixture
def db(tmp_path: Path, make_result: Any) -> tuple[str, dict[str, int]]:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(url)
    ids = {"sasrec": store.record(make_result(stage="train", search=None, ndcg=0.3, flops=100_000), tmp_path / "s")}
    runs = {
        "a": (0.31, 40_000),  # as good at 0.4x: the one that meets the bar at 0.5x
        "b": (0.35, 60_000),  # better, but 0.6x
        "c": (0.2, 10_000),  # cheap, worse
        "d": (0.30, 45_000),  # dominated by a (same cost band, lower quality)
        "e": (0.30, 50_000),  # exactly as good at exactly 0.5x, but dominated by a: not on the front
    }
    for name, (ndcg, flops) in runs.items():
        ids[name] = store.record(make_result(ndcg=ndcg, flops=flops), tmp_path / name)
    store.close()
    return url, ids


def test_the_front_runs_as_good_at_half_the_cost(db: tuple[str, dict[str, int]]) -> None:
    url, ids = db
    store = open_store(url)
    try:
        found = store.pareto("valid/pop100/ndcg@10")
        reference = store.pareto_point(ids["sasrec"], "valid/pop100/ndcg@10")
        assert (reference.quality, reference.cost) == (0.3, 100_000)
        assert [p.run.id for p in found.matching(reference, 0.5)] == [ids["a"]]
        assert [p.run.id for p in found.matching(reference, 0.6)] == [ids["a"], ids["b"]]
        assert found.matching(reference, 0.3) == []
        # the reference itself on the front (here: the best run) is never its own match
        best = store.pareto_point(ids["b"], "valid/pop100/ndcg@10")
        assert [p.run.id for p in found.front if p.run.id == ids["b"]] == [ids["b"]]
        assert found.matching(best, 1.0) == []
    finally:
        store.close()


def test_as_good_means_at_least_as_good_and_at_most_the_ratio(tmp_path: Path, make_result: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        ref = store.record(make_result(stage="train", search=None, ndcg=0.3, flops=100_000), tmp_path / "s")
        tie = store.record(make_result(ndcg=0.3, flops=50_000), tmp_path / "tie")  # equal quality, exactly 0.5x
        found = store.pareto("valid/pop100/ndcg@10")
        reference = store.pareto_point(ref, "valid/pop100/ndcg@10")
        assert [p.run.id for p in found.matching(reference, 0.5)] == [tie]
        assert found.matching(reference, 0.49) == []
    finally:
        store.close()


def test_cli_names_them_or_the_best_within_the_cost(
    db: tuple[str, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = db
    assert main(["results", "pareto", "--db", url, "--against", str(ids["sasrec"])]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(f"at <= 0.5x its flops: run {ids['a']} (0.3100, 0.40x)"), last
    assert main(["results", "pareto", "--db", url, "--against", str(ids["sasrec"]), "--cost-ratio", "0.3"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(f"none; the best front run within that cost is run {ids['c']} (0.2000, -0.1000, 0.10x)"), last
    assert main(["results", "pareto", "--db", url, "--against", "999"]) == 2
    assert "no run with id 999" in capsys.readouterr().err


def test_a_reference_without_a_result_or_a_bad_ratio_is_one_clear_line(
    db: tuple[str, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = db
    store = open_store(url)
    failed = store.record_failure(tmp_path / "crashed", "diverged", stage="train", dataset="ml-100k")
    store.close()
    assert main(["results", "pareto", "--db", url, "--against", str(failed)]) == 2
    assert f"run {failed} is FAILED, not COMPLETE" in capsys.readouterr().err
    assert main(["results", "pareto", "--db", url, "--cost-ratio", "0.5"]) == 2
    assert "--cost-ratio needs --against" in capsys.readouterr().err
    assert main(["results", "pareto", "--db", url, "--against", str(ids["sasrec"]), "--cost-ratio", "0"]) == 2
    assert "--cost-ratio must be a positive number" in capsys.readouterr().err
