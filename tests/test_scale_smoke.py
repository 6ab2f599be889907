"""benchmarks/scale.py --smoke: the Gowalla-scale benchmark's code (synth-gowalla written and loaded, training
through the engine with the chunked CE, a search epoch's weight and architecture steps, both evaluation
protocols) runs on tiny sizes in seconds, so it cannot break unseen; one JSON with every phase finite. The
tiny data goes to a temporary directory, never the repository. benchmarks/throughput.py runs one step of its
two variants on ML-100K."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def numbers(x: Any, where: str = "") -> list[tuple[str, Any]]:
    if isinstance(x, dict):
        return [n for k, v in x.items() for n in numbers(v, f"{where}.{k}")]
    return [(where, x)] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


def test_scale_smoke_prints_every_phase_finite(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result
    assert result["data"]["items"] == 150 and result["smoke"]
    for phase in ("train", "search", "eval"):
        assert "error" not in result[phase], result[phase]
    assert result["train"]["s_per_epoch_extrapolated"] > 0 and result["train"]["peak_rss_gib"] > 0
    assert result["search"]["s_per_epoch_extrapolated"] > result["search"]["valid_eval_s_extrapolated"] > 0
    assert result["eval"]["full"]["s_per_split_extrapolated"] > 0
    bad = [where for where, v in numbers(result) if not math.isfinite(v)]
    assert not bad, bad


def test_throughput_benchmark_runs_both_variants_to_the_same_losses(tmp_path: Path) -> None:
    """benchmarks/throughput.py on ML-100K, one timed step: the pre-change code (swapped in by the benchmark)
    and the current code give the same losses, and every printed fraction of the matmul rate is in (0, 1.5)."""
    from data_support import require_data

    data_dir = require_data("ml-100k/ml-100k.inter")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "DNSREC_DATA_DIR": str(data_dir)}
    env["DNSREC_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--datasets", "ml-100k", "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    agree = re.search(r"losses agree to (\S+) \(relative\)", proc.stdout)
    assert agree is not None, proc.stdout
    assert float(agree.group(1)) < 1e-5
    fractions = [float(f) for f in re.findall(r"= (\S+) of the matmul rate", proc.stdout)]
    assert len(fractions) == 2 and all(0 < f < 1.5 for f in fractions), proc.stdout
