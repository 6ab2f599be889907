"""`dnsrec export` / `dnsrec recommend`: a tiny real run's retrained model as TorchScript and ONNX, loaded back
without dnsrec's model code, scores the run's test inputs as the run's own scorer does and ranks every test
user where the run's evaluation did (ranks.npz)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TINY_RUN

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.evaluate import RANKS_FILE, Evaluator, read_ranks
from dnsrec.export import FORMATS, load_exported, run_model
from dnsrec.pipeline import dnsrec_run
from dnsrec.train.device import Placement
from dnsrec.train.loop import scorer_of


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("export") / "run"
    with pytest.MonkeyPatch.context() as mp:
        from data_support import DATA_DIR

        mp.setenv("DNSREC_DATA_DIR", str(DATA_DIR))
        mp.setenv("DNSREC_OFFLINE", "1")
        mp.setenv("DNSREC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dnsrec-cache"))
        dnsrec_run(RunConfig.from_mapping(compose("run", TINY_RUN)), run_dir, log=lambda _: None)
    return run_dir


def test_exported_models_score_as_the_run(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = json.loads((tiny_run / "result.json").read_text())
    data = load_dataset("gowalla-100")
    evaluator = Evaluator(data, batch_size=64)
    test = evaluator.inputs("test")
    seqs, lengths = torch.from_numpy(test.seqs), torch.from_numpy(test.lengths)
    # The run's own scorer: its compact model with the best epoch's weights, as the pipeline scores it.
    run = run_model(tiny_run)
    assert run.result.best_epoch == result["best_epoch"]
    assert sum(p.numel() for p in run.model.parameters()) == result["n_params"]
    with torch.no_grad():
        want = scorer_of(run.model, Placement.resolve("cpu", "fp32"))(seqs, lengths).numpy()
    recorded = read_ranks(tiny_run / RANKS_FILE)
    for fmt in FORMATS:
        out = tmp_path / f"model.{fmt}"
        assert main(["export", str(tiny_run), str(out), "--format", fmt]) == 0
        assert f"wrote {out}" in capsys.readouterr().out
        exported = load_exported(out)
        assert exported.format == fmt
        assert exported.meta["n_items"] == data.n_items and exported.meta["item_ids"] == list(data.item_ids)
        got = exported(test.seqs, test.lengths)
        assert got.shape == (data.n_users, data.n_items + 1) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        # Through the evaluator (batches of users, padding trimmed): the ranks the run itself recorded.
        ranks = evaluator.ranks(lambda s, n, e=exported: torch.from_numpy(e(s.numpy(), n.numpy())), "test")  # type: ignore[misc]
        for protocol, r in ranks.items():
            np.testing.assert_array_equal(r, recorded[f"test/{protocol}"], err_msg=f"{fmt} {protocol}")

    # `recommend` reads the item map: top items by the exported scores, the history left out.
    history = [data.item_ids[i - 1] for i in data.items[data.offsets[0] : data.offsets[1]][-5:]]
    assert main(["recommend", str(tmp_path / "model.onnx"), "--history", " ".join(history), "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and not {line.split()[1] for line in lines} & set(history)


def test_export_refuses_an_unfinished_run_or_an_unknown_format(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "best.pt").write_bytes((tiny_run / "best.pt").read_bytes())
    cases = [
        (
            [str(unfinished), str(tmp_path / "a.onnx"), "--format", "onnx"],
            f"{unfinished / 'result.json'} does not exist",
        ),
        ([str(tiny_run), str(tmp_path / "a.tfl"), "--format", "tflite"], "unknown export format 'tflite'"),
        ([str(tmp_path / "absent"), str(tmp_path / "a.pt"), "--format", "torchscript"], "is not a run directory"),
    ]
    no_best = tmp_path / "no_best"
    no_best.mkdir()
    (no_best / "result.json").write_text((tiny_run / "result.json").read_text())
    cases.append(
        ([str(no_best), str(tmp_path / "a.pt"), "--format", "torchscript"], f"{no_best / 'best.pt'} does not exist")
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "best.pt").write_bytes((tiny_run / "best.pt").read_bytes())
    broken = json.loads((tiny_run / "result.json").read_text())
    del broken["config"]["retrain"]["shape"]
    (bad / "result.json").write_text(json.dumps(broken))
    cases.append(
        ([str(bad), str(tmp_path / "a.pt"), "--format", "torchscript"], "key 'config.retrain.shape' is missing")
    )
    for argv, message in cases:
        assert main(["export", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dnsrec: error: ") and message in err[0], (argv, err)
    assert not list(tmp_path.glob("a.*")) and not list(tmp_path.glob(".a.*"))
