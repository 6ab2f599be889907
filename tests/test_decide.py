"""`dnsrec decide`: a finished search's decision under another FLOPs bound, checked against a real run that had
the bound from the start (same seed: same search, then its own live decision and retraining)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from tiny_runs import TINY_RUN, TINY_TRAIN

from dnsrec.cli import main
from dnsrec.decide import DecideError, decide
from dnsrec.errors import ConfigError
from dnsrec.nas.architecture import Architecture
from dnsrec.run_result import RunResult

# lambda 0: the resource term does not press the tiny search toward the cheapest model, so a bound can bind
SEARCH = [*TINY_RUN, "search.lam=0", "search.epochs=2", "retrain.max_epochs=1"]


@pytest.fixture(scope="module")
def unbounded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("decide") / "unbounded"
    assert main(["run", "--no-db", *SEARCH, f"run_dir={run_dir}"]) == 0
    return run_dir


def test_a_decision_again_under_a_bound_is_what_the_bounded_run_chose_and_retrained(
    unbounded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    free = decide(unbounded, None)
    assert free.decided == free.recorded  # no bound: the run's own argmax, from its recorded logits
    fits = [o for o in free.options if o.flops < free.flops(free.recorded)]
    assert fits, "the tiny search chose its cheapest model; the test needs one a bound can exclude"
    fraction = (free.flops(free.recorded) - 1) / free.supernet_flops  # excludes the run's choice
    out = tmp_path / "arch.json"
    assert main(["decide", str(unbounded), "--max-flops", repr(fraction), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    decided = Architecture.read(out)
    assert free.flops(decided) <= fraction * free.supernet_flops < free.flops(free.recorded)
    # the most probable of those that fit, by the probabilities the table prints
    assert decided.candidates == max(fits, key=lambda o: o.probability).candidates

    bounded_dir = tmp_path / "bounded"
    assert main(["run", "--no-db", *SEARCH, f"search.max_flops={fraction!r}", f"run_dir={bounded_dir}"]) == 0
    bounded = RunResult.read(bounded_dir / "result.json")
    assert Architecture.from_dict(bounded.architecture) == decided
    # the premise: the bound changed the decision only, not the search
    again = RunResult.read(unbounded / "result.json")
    assert bounded.search is not None and again.search is not None
    epoch = again.search["best_epoch"]
    assert bounded.search["best_epoch"] == epoch
    for key in ("alpha", "beta"):
        assert bounded.search["trajectory"][epoch - 1][key] == again.search["trajectory"][epoch - 1][key]

    # the retrain command it prints retrains what the bounded run retrained: the same test metrics
    command = next(line for line in printed.splitlines() if line.strip().startswith("dnsrec retrain"))
    args = shlex.split(command)[1:]
    retrained_dir = tmp_path / "retrained"
    assert main([args[0], "--no-db", *args[1:], f"run_dir={retrained_dir}"]) == 0
    assert RunResult.read(retrained_dir / "result.json").metrics == bounded.metrics


def test_what_cannot_be_decided_again_is_refused_naming_the_file(unbounded: Path, tmp_path: Path) -> None:
    with pytest.raises(DecideError, match="does not exist: not a finished run directory"):
        decide(tmp_path, 0.5)
    forged = tmp_path / "forged"
    forged.mkdir()
    raw = json.loads((unbounded / "result.json").read_text())
    entry = raw["search"]["trajectory"][raw["search"]["best_epoch"] - 1]
    other = 1 if len(raw["architecture"]["hidden"]) == 2 else 2  # a depth the run did not choose
    entry["beta"] = [10.0 if depth == other else -10.0 for depth in range(1, len(entry["beta"]) + 1)]
    (forged / "result.json").write_text(json.dumps(raw))
    with pytest.raises(DecideError, match=re.escape(f"{forged / 'result.json'}: the recorded decision-epoch logits")):
        decide(forged, 0.5)
    raw["config"]["search"]["lam"] = "much"
    (forged / "result.json").write_text(json.dumps(raw))
    refused = f"{forged / 'result.json'}: key 'config' is not a run's recorded config"
    with pytest.raises(ConfigError, match=re.escape(refused)):
        decide(forged, 0.5)
    trained = tmp_path / "train"
    assert main(["train", "--no-db", *TINY_TRAIN, "train.max_epochs=1", f"run_dir={trained}"]) == 0
    with pytest.raises(DecideError, match="only a `dnsrec run`"):
        decide(trained, 0.5)


@pytest.mark.parametrize("bound", ["1.5", "0", "a quarter"])
def test_a_bad_max_flops_is_refused_under_the_flags_name(
    bound: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["decide", str(tmp_path), "--max-flops", bound])
    assert exited.value.code == 2
    expected = "expected a fraction in (0, 1] of the un-pruned supernet's FLOPs, as search.max_flops"
    assert f"argument --max-flops: {expected}; got {bound!r}" in capsys.readouterr().err
