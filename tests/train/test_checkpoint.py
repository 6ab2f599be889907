"""Checkpoints load with weights_only=True; a truncated, corrupt or mismatched file is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dnsrec.errors import CheckpointError
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.train.checkpoint import load_checkpoint, load_model_state, save_checkpoint


def small_model(d: int = 8) -> SASRec:
    return SASRec(SASRecConfig(n_items=20, max_len=6, d=d, inner=8, n_layers=1, n_heads=2))


def test_round_trip(tmp_path: Path) -> None:
    model = small_model()
    save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict(), "epoch": 3})
    state = load_checkpoint(tmp_path / "m.pt")
    other = small_model()
    load_model_state(other, state["model"], tmp_path / "m.pt")
    assert state["epoch"] == 3
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not (tmp_path / "m.pt.tmp").exists()


def test_truncated_and_garbage_files(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", {"model": small_model().state_dict()})
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    for name in ("cut.pt", "junk.pt", "absent.pt"):
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    torch.save({"model": small_model()}, tmp_path / "module.pt")  # a whole module, not a state dict
    with pytest.raises(CheckpointError, match=r"module\.pt"):
        load_checkpoint(tmp_path / "module.pt")


def test_shape_mismatch_names_the_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m.pt", {"model": small_model(d=8).state_dict()})
    with pytest.raises(CheckpointError, match=r"m\.pt does not fit"):
        load_model_state(small_model(d=4), load_checkpoint(tmp_path / "m.pt")["model"], tmp_path / "m.pt")
