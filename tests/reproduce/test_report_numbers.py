"""The report's numbers are numpy's and scipy's: mean and sample sd over seeds, two-sided Welch t-test, and
the paper's Imprv. as the paper defines it (Tables 4 and 6)."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from report_support import BASE, NAS, OURS, complete, missing, run, spec
from scipy.stats import ttest_ind

from dnsrec.reproduce import stats
from dnsrec.reproduce.render import csv_text, markdown, write
from dnsrec.reproduce.report import build
from dnsrec.reproduce.tables import load_paper

OURS_NDCG = [0.3012, 0.3105, 0.2987]
BASE_NDCG = [0.2811, 0.2790, 0.2875]
OURS_S = [1.5, 1.7, 1.6]
BASE_S = [3.1, 2.9, 3.3]


def test_summary_and_welch_equal_numpy_and_scipy() -> None:
    s = stats.summary(OURS_NDCG)
    assert s.n == 3
    assert s.mean == pytest.approx(np.mean(OURS_NDCG), abs=0, rel=1e-15)
    assert s.sd == pytest.approx(np.std(OURS_NDCG, ddof=1), rel=1e-15)
    expected = ttest_ind(OURS_NDCG, BASE_NDCG, equal_var=False).pvalue
    assert stats.welch_p(OURS_NDCG, BASE_NDCG) == pytest.approx(expected, rel=1e-12)
    # Welch, not Student: unequal variances give another p than the pooled test
    student = ttest_ind(OURS_NDCG, [0.1, 0.5, 0.3], equal_var=True).pvalue
    assert stats.welch_p(OURS_NDCG, [0.1, 0.5, 0.3]) != pytest.approx(student, rel=1e-6)
    assert stats.welch_p([0.3], BASE_NDCG) is None  # one seed: no test
    # seeds with one value (FLOPs of one architecture): scipy's p, without its precision-loss warning
    same = [14.7456e6 * (1 + 1e-16 * i) for i in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.welch_p(same, [27.85e6, 27.85e6, 55.7e6]) is not None
    assert stats.summary([0.3]).sd is None


def test_mean_sd_text_is_numpys_mean_and_sample_sd() -> None:
    want = f"{np.mean(OURS_NDCG):.4f} ± {np.std(OURS_NDCG, ddof=1):.4f}"
    assert stats.mean_sd_text(OURS_NDCG) == want == "0.3035 ± 0.0062"
    assert stats.mean_sd_text([0.3]) == "0.3000 ± 0.0000"
    with pytest.raises(ValueError, match="no values"):
        stats.mean_sd_text([])


def test_improvement_is_the_papers() -> None:
    # Table 6, Search & Retrain, MRR@10: (0.4207 - 0.4141) / 0.4141 = 1.59%
    assert stats.percent(stats.improvement(0.4207, 0.4141) or 0) == "1.6%"
    assert stats.improvement(0.4207, 0.4141) == pytest.approx((0.4207 - 0.4141) / 0.4141)
    # Table 4, Gowalla memory against FDSA (w/o LinRec): (21.68 - 5.54) / 21.68 = 74.4%
    assert stats.improvement(5.54, 21.68, "lower") == pytest.approx((21.68 - 5.54) / 21.68)
    assert stats.improvement_range([0.1, None, -0.2, 0.4]) == (-0.2, 0.4)


def test_the_report_shows_numpys_mean_sd_and_scipys_p(tmp_path: Path) -> None:
    results = [complete(OURS, s, run(s + 1, OURS_NDCG[s], OURS_S[s])) for s in range(3)]
    results += [complete(BASE, s, run(s + 10, BASE_NDCG[s], BASE_S[s], stage="train")) for s in range(3)]
    results += [missing(NAS, s, "unavailable", "needs config key `search.method`") for s in range(3)]
    report = build(spec(), "gowalla-100", [0, 1, 2], results, load_paper(), "dnsrec reproduce table3", "abc")
    rows = list(csv.DictReader(io.StringIO(csv_text(report))))
    cell = next(r for r in rows if r["row"] == BASE.label and r["column"] == "test NDCG@10")
    assert float(cell["mean"]) == np.mean(BASE_NDCG)
    assert float(cell["sd"]) == np.std(BASE_NDCG, ddof=1)
    p = ttest_ind(OURS_NDCG, BASE_NDCG, equal_var=False).pvalue
    assert float(cell["p_welch"]) == p
    assert cell["significant"] == str(p < 0.05).lower()
    assert float(cell["improvement"]) == pytest.approx((np.mean(OURS_NDCG) - np.mean(BASE_NDCG)) / np.mean(BASE_NDCG))
    assert cell["paper"] == "0.7284"  # Table 3, Gowalla, SASRec (w LinRec), test NDCG@10, as printed
    assert cell["train_mode"] == "window" and cell["status"] == "complete"
    seconds = next(r for r in rows if r["row"] == BASE.label and r["column"] == "Infer. (s)")
    assert float(seconds["p_welch"]) == ttest_ind(OURS_S, BASE_S, equal_var=False).pvalue
    assert float(seconds["improvement"]) == pytest.approx((np.mean(BASE_S) - np.mean(OURS_S)) / np.mean(BASE_S))

    md = markdown(report)
    shown = f"{np.mean(BASE_NDCG):.4f} ± {np.std(BASE_NDCG, ddof=1):.4f}" + ("*" if p < 0.05 else "")
    assert f"| {BASE.label} | {shown} | 0.7284 |" in md.replace("| -", "| -")
    assert f"{p:.3g}" in md
    assert "dnsrec reproduce table3" in md and "abc" in md and "Seeds: 0, 1, 2" in md
    assert "`train.mode`" in md and "window" in md

    written = write(report, tmp_path)
    assert sorted(p.name for p in written) == ["gowalla-100-table3.csv", "gowalla-100-table3.md"]


def test_identical_values_print_a_zero_sd() -> None:
    """numpy leaves a float residue on identical values (about 1e-14 for 54.0672 x 3): printed "0", as an
    exact zero is, not "0.0000"; a real sd, however small beside the mean, keeps its digits."""
    from dnsrec.reproduce.report import sd_text

    same = [54.0672] * 3
    assert 0 < np.std(same, ddof=1) < 1e-12  # the residue this guards against is real
    assert sd_text(float(np.std(same, ddof=1)), float(np.mean(same))) == "0"
    assert sd_text(0.0, 0.0) == "0"
    assert sd_text(0.0039, 0.7046) == "0.0039"
    assert sd_text(0.02, 54.07) == "0.0200"
