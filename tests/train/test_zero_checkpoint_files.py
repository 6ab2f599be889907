"""Issue 10, weak item: DeepSpeed resumes with torch.load(weights_only=False), which runs any code a
pickle carries. It is now given only the run's own ZeRO files: the resume file (read with weights_only=True,
config-stamped) records their SHA-256, and a file changed or planted since is refused before DeepSpeed
opens it."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_runs import TINY_TRAIN

from dnsrec.compose import compose
from dnsrec.config.run import TrainRunConfig
from dnsrec.errors import CheckpointError
from dnsrec.pipeline import train_run

TINY = [*TINY_TRAIN, "train.engine=deepspeed", "train.zero_stage=2"]


def tiny(*extra: str) -> TrainRunConfig:
    return TrainRunConfig.from_mapping(compose("train", [*TINY, *extra]))


@pytest.mark.parametrize("tamper", ["changed", "planted"])
def test_a_zero_checkpoint_changed_since_it_was_written_is_not_loaded(tmp_path: Path, tamper: str) -> None:
    train_run(tiny("train.max_epochs=1"), tmp_path, log=lambda _: None)
    (tag,) = [p for p in (tmp_path / "zero" / "fit").iterdir() if p.is_dir()]
    if tamper == "changed":
        shard = max((p for p in tag.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        shard.write_bytes(shard.read_bytes() + b"\0")
    else:
        (tag / "planted.pt").write_bytes(b"anything")
    with pytest.raises(CheckpointError, match=r"is not the one .* recorded .* refusing to load it"):
        train_run(tiny("train.max_epochs=2"), tmp_path, log=lambda _: None)
