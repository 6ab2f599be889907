"""benchmarks/gpu_engine.py: its CPU smoke mode runs both engines; without CUDA it refuses clearly."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
import torch
from train_support import load_module

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_engine.py"


def benchmark() -> ModuleType:
    return load_module(SCRIPT)


def test_cpu_smoke_mode_compares_both_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ["--dataset", "gowalla-100", "--batch", "512", "--d", "16", "--inner", "32", "--heads", "2"]
    code = benchmark().main(["--device", "cpu", "--steps", "3", "--warmup", "1", *tiny, "--json", str(tmp_path / "o")])
    assert code == 0
    out = capsys.readouterr().out
    assert "targets/s" in out and "peak MiB" in out and "deepspeed / torch: throughput x" in out
    rows = json.loads((tmp_path / "o").read_text())["rows"]
    assert [r["engine"] for r in rows] == ["torch", "deepspeed ZeRO-2"]
    assert all(r["targets_per_s"] > 0 and r["peak_mib"] > 0 and r["steps"] == 3 for r in rows)
    assert rows[0]["final_loss"] == pytest.approx(rows[1]["final_loss"], abs=0.05)  # the same steps


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_refuses_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert benchmark().main([]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "--device cpu" in err
