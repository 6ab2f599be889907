"""benchmarks/gpu_suite.py runs the same code on the CPU with --smoke (tiny sizes), so it cannot break unseen
before a GPU lease: one JSON on stdout and in --out, every section present, every number finite, each
measurement beside its STACK.md reference with the ratio computed from them."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"
SECTIONS = (
    "ml1m_train",
    "ml1m_eval",
    "ml1m_search_epoch",
    "synth_gowalla_data",
    "gowalla_train",
    "gowalla_eval",
    "comparison",
)


def numbers(x: Any, where: str = "") -> list[tuple[str, Any]]:
    if isinstance(x, dict):
        return [n for k, v in x.items() for n in numbers(v, f"{where}.{k}")]
    if isinstance(x, list):
        return [n for i, v in enumerate(x) for n in numbers(v, f"{where}[{i}]")]
    return [(where, x)] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


def measurements(x: Any) -> list[dict[str, Any]]:
    """Every {value, unit, reference, ratio} entry."""
    if isinstance(x, dict):
        here = [x] if {"value", "reference", "ratio"} <= set(x) else []
        return here + [m for v in x.values() for m in measurements(v)]
    return [m for v in x for m in measurements(v)] if isinstance(x, list) else []


def test_smoke_run_prints_one_json_with_every_section_finite(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--smoke", "--out", str(out), "--work", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)  # stdout holds the JSON alone (progress goes to stderr)
    assert printed == json.loads(out.read_text())
    assert printed["smoke"] is True and printed["errors"] == {}
    for section in SECTIONS:
        assert printed[section], section
    train = printed["ml1m_train"]
    assert {"batch2048_bf16", "batch2048_fp32", "batch256windows_bf16", "batch256windows_fp32"} <= set(train)
    for split in ("valid", "test"):
        assert set(printed["ml1m_eval"]["fp32"][split]) == {"pop100", "full", "both"}
    assert printed["synth_gowalla_data"]["interactions"] == 2_500
    bad = [(path, v) for path, v in numbers(printed) if not math.isfinite(v)]
    assert not bad
    found = measurements(printed)
    # ml1m_train: 4 rows x (s/epoch, memory); ml1m_eval: 2 precisions x 2 splits x 3; search: 2;
    # gowalla_train: 2 rows x 2; gowalla_eval: 2 splits x 3
    assert len(found) == 4 * 2 + 2 * 2 * 3 + 2 + 2 * 2 + 2 * 3
    for m in found:
        low, high = m["reference"]
        assert m["ratio"] == pytest.approx([m["value"] / low, m["value"] / high])
        assert m["value"] > 0
    comparison = printed["comparison"]
    assert "skipped" not in comparison
    for model in ("dnsrec", "sasrec"):
        assert 0 <= comparison[model]["test_pop100_ndcg@10"] <= 1
    low, high = comparison["paired_full_ndcg@10_dnsrec_minus_sasrec"]["ci95"]
    assert low <= comparison["paired_full_ndcg@10_dnsrec_minus_sasrec"]["mean"] <= high
    print(f"gpu_suite --smoke: {seconds:.1f} s (suite's own count {printed['seconds_total']:.1f} s)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_and_without_smoke_it_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", "never.json"]) == 2
    assert "--smoke" in capsys.readouterr().err
    assert not Path("never.json").exists()
