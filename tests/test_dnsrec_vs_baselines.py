"""benchmarks/dnsrec_vs_baselines.py on gowalla-100 at a tiny scale: every printed number read back from the runs'
result.json and recomputed here (means and sample sds with numpy, the paired per-seed mean as the difference of
the two recorded test NDCG@10s, the acceptance checks by their definitions), and the overrides each model gets."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnsrec.run_result import RESULT_FILE, RunResult

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dnsrec_vs_baselines.py"
spec = importlib.util.spec_from_file_location("dnsrec_vs_baselines", SCRIPT)
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# A 2-layer supernet of d 16 (one gate layer, so the run-only key `gates.layers` is exercised), one search epoch;
# SASRec keeps the paper's baseline shape, trained 2 epochs.
TINY = [
    "search.epochs=1",
    "search.layers=2",
    "dataset.d=16",
    "dataset.inner=32",
    "search.batch=512",
    "retrain.max_epochs=2",
    "retrain.batch=1024",
    "gates.layers=1",
]


def test_sasrec_gets_the_shared_overrides_under_its_own_names() -> None:
    run_only = ["retrain.gate_layers=0", "retrain.shape=wide", "search.lam=0.01", "gates.layers=0"]
    shared = ["train.precision=fp32", "dataset.d=16", "data_dir=/d"]
    got = bench.sasrec_overrides(
        ["retrain.max_epochs=3", "retrain.patience=2", "retrain.batch=512", *run_only, *shared]
    )
    assert got == [
        "train.max_epochs=3",
        "train.patience=2",
        "batch=512",
        "train.precision=fp32",
        "dataset.d=16",
        "data_dir=/d",
    ]


def test_every_printed_number_is_the_runs_own(tmp_path: Path) -> None:
    seeds = [0, 1]
    cmd = [sys.executable, str(SCRIPT), "--dataset", "gowalla-100", "--seeds", *map(str, seeds), "--jobs", "1"]
    proc = subprocess.run([*cmd, "--out", str(tmp_path), "--", *TINY], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    runs = {m: [RunResult.read(tmp_path / f"{m}-seed{s}" / RESULT_FILE) for s in seeds] for m in bench.MODELS}

    def test_metric(m: str, key: str) -> np.ndarray:
        return np.array([r.metrics["test"][key] for r in runs[m]])

    for m in bench.MODELS:
        pop, full = test_metric(m, "pop100/ndcg@10"), test_metric(m, "full/ndcg@10")
        row = next(line for line in out.splitlines() if line.startswith(f"{m} | "))
        cells = row.split(" | ")
        assert cells[1] == f"{pop.mean():.4f} ± {pop.std(ddof=1):.4f}"
        assert cells[2] == f"{full.mean():.4f} ± {full.std(ddof=1):.4f}"
        assert cells[3] == f"{np.mean([r.flops['model'] for r in runs[m]]) / 1e6:.2f}"

    # The paired mean over one seed's test users is the difference of the two runs' recorded means.
    for seed, (dns, sas) in zip(seeds, zip(runs["dnsrec"], runs["sasrec"], strict=True), strict=True):
        line = re.search(rf"seed {seed}: pop100 ([-+]\d\.\d+) \[.*\], full ([-+]\d\.\d+) \[", out)
        assert line, out
        for value, key in zip(line.groups(), ("pop100/ndcg@10", "full/ndcg@10"), strict=True):
            assert float(value) == pytest.approx(dns.metrics["test"][key] - sas.metrics["test"][key], abs=6e-5)

    dns_pop, sas_pop = test_metric("dnsrec", "pop100/ndcg@10"), test_metric("sasrec", "pop100/ndcg@10")
    sas_full = test_metric("sasrec", "full/ndcg@10")
    flops = {m: np.mean([r.flops["model"] for r in runs[m]]) for m in bench.MODELS}
    want = {
        "pop100 NDCG@10 mean >= sasrec's": dns_pop.mean() >= sas_pop.mean(),
        "full NDCG@10 mean >= sasrec's - 1 sd": test_metric("dnsrec", "full/ndcg@10").mean()
        >= sas_full.mean() - sas_full.std(ddof=1),
        "FLOPs <= 0.6x sasrec's": flops["dnsrec"] <= 0.6 * flops["sasrec"],
        "FLOPs <= 0.25x the un-pruned supernet's": flops["dnsrec"]
        <= 0.25 * np.mean([r.flops["supernet"] for r in runs["dnsrec"]]),
    }
    for name, ok in want.items():
        assert f"{'PASS' if ok else 'FAIL'}: dnsrec {name}" in out
    # SASRec kept the paper's baseline shape whatever the supernet's overrides (d 128, 2 layers).
    assert all(r.config["model"]["d"] == 128 and r.config["model"]["layers"] == 2 for r in runs["sasrec"])
