"""Select on validation, report test: `results best` and `results pareto` choose by the validation metric by
default and show the test value beside it; choosing by a test metric needs --select-on-test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnsrec.cli import main
from dnsrec.results import open_store


def _metrics(valid: float, test: float) -> dict[str, dict[str, float]]:
    keys = [f"{p}/{m}@10" for p in ("pop100", "full") for m in ("recall", "mrr", "ndcg")]
    return {"valid": dict.fromkeys(keys, valid), "test": dict.fromkeys(keys, test)}


@pytest.fixture
def db(tmp_path: Path, make_result: Any) -> str:
    """Three runs on which validation and test disagree: 'a' is best on validation, 'b' on test."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(url)
    for name, valid, test, flops in [("a", 0.40, 0.20, 5000), ("b", 0.30, 0.35, 5000), ("c", 0.10, 0.10, 1000)]:
        store.record(make_result(metrics=_metrics(valid, test), flops=flops), tmp_path / name)
    store.close()
    return url


def _table(out: str) -> list[dict[str, str]]:
    lines = [line for line in out.splitlines() if line and not line.startswith(("run directory", "selecting"))]
    head = lines[0].replace("test pop100 ndcg@10", "test_pop100").replace("test full ndcg@10", "test_full").split()
    return [dict(zip(head, line.split(), strict=True)) for line in lines[1:] if len(line.split()) == len(head)]


def test_best_selects_on_validation_and_shows_test(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "best", "--db", db]) == 0
    out = capsys.readouterr().out
    (row,) = _table(out)
    assert out.strip().endswith(str(tmp_path / "a"))
    assert (row["valid/pop100/ndcg@10"], row["test_pop100"]) == ("0.4", "0.2")


def test_selecting_on_test_must_be_spelled_out(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "best", "--db", db, "--metric", "test/pop100/ndcg@10"]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert "--select-on-test" in err and "optimistic" in err
    assert main(["results", "best", "--db", db, "--metric", "test/pop100/ndcg@10", "--select-on-test"]) == 0
    out = capsys.readouterr().out
    assert "a TEST metric" in out and out.strip().endswith(str(tmp_path / "b"))


def test_pareto_front_is_on_validation(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "pareto", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 complete runs on the valid/pop100/ndcg@10 vs flops front" in out
    rows = _table(out)
    # on validation, a (0.40) dominates b (0.30) at the same FLOPs; on test it would be b
    assert [(r["valid/pop100/ndcg@10"], r["test_pop100"]) for r in rows] == [("0.1", "0.1"), ("0.4", "0.2")]


def test_sweep_summary_reads_the_test_value_of_each_trial(tmp_path: Path, make_result: Any) -> None:
    from dnsrec.cli import _test_ndcg

    make_result(metrics=_metrics(0.4, 0.2345678)).write(tmp_path / "trial")
    assert _test_ndcg(str(tmp_path / "trial")) == "0.2346"
    assert _test_ndcg(str(tmp_path / "lost")) == "?" and _test_ndcg(None) == "?"
