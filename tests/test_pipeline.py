"""A whole training run on real data (gowalla-100), its result file, resume, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_runs import TINY_TRAIN

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config.run import TrainRunConfig
from dnsrec.pipeline import train_run
from dnsrec.run_result import RunResult


def tiny_config(*extra: str) -> TrainRunConfig:
    return TrainRunConfig.from_mapping(compose("train", [*TINY_TRAIN, *extra]))


def test_train_run_writes_a_complete_result(tmp_path: Path) -> None:
    result = train_run(tiny_config("train.max_epochs=2"), tmp_path, log=lambda _: None)
    again = RunResult.read(tmp_path / "result.json")
    assert again == result
    assert result.epochs == 2 and result.stopped == "max_epochs" and 1 <= result.best_epoch <= 2
    for split in ("valid", "test"):
        assert set(result.metrics[split]) == {
            f"{p}/{m}@10" for p in ("pop100", "full") for m in ("recall", "mrr", "ndcg")
        }
        assert all(0.0 <= v <= 1.0 for v in result.metrics[split].values())
        assert result.eval_seconds[split] > 0
    assert result.n_params > 0 and result.seconds_per_epoch > 0 and len(result.history) == 2
    # scoring needs the weights and more, and far less than the training process's peak
    assert result.inference_memory_mb is not None
    assert 4 * result.n_params < result.inference_memory_mb * 2**20 < result.peak_memory_mb * 2**20
    assert result.config["train"]["max_epochs"] == 2 and result.config["dataset"]["name"] == "gowalla-100"
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()


def test_resume_reaches_the_uninterrupted_result(tmp_path: Path) -> None:
    straight = train_run(tiny_config("train.max_epochs=3"), tmp_path / "a", log=lambda _: None)
    train_run(tiny_config("train.max_epochs=1"), tmp_path / "b", log=lambda _: None)  # "killed" after epoch 1
    logs: list[str] = []
    resumed = train_run(tiny_config("train.max_epochs=3"), tmp_path / "b", log=logs.append)
    assert any("resuming" in line for line in logs)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert resumed.metrics == straight.metrics


def test_cli_trains_and_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *TINY_TRAIN, "train.max_epochs=1", f"run_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "pop100/ndcg@10" in out and "full/recall@10" in out and "valid" in out and "test" in out
    assert json.loads((tmp_path / "result.json").read_text())["schema_version"] == 1


@pytest.mark.parametrize(
    ("override", "expected"),
    [("lr=-0.1", "train.lr"), ("dataset=nosuch", "nosuch"), ("+dataset.name=x", "dataset")],
)
def test_cli_bad_input_is_one_clear_line(
    override: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *TINY_TRAIN, override, f"run_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnsrec: error:") and expected in err and "Traceback" not in err
    assert not (tmp_path / "result.json").exists()


def test_cli_unknown_dataset_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A dataset group file with an unknown preset name reaches the loader, which lists the known names.
    assert main(["train", *TINY_TRAIN, "dataset.name=ml-10m", f"run_dir={tmp_path}"]) == 2
    assert "ml-10m" in capsys.readouterr().err
