"""Measure what a finished run did not: the inference memory (`inference_memory_mb`, the paper's Table 4
memory) of runs recorded before every run measured it. The run's own retrained model (its `best.pt`, the
weights its test metrics came from) scores its own test users through the same `dnsrec.measure` function a
run calls, on the device and precision the run had (another device is refused: the figure depends on it).
result.json gains the figure and a note that says when, where and by which code it was measured, so a reader
can tell it from a figure the run took itself. Nothing else in the result changes, and a result that already
has the figure is left alone.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dnsrec.config import ModelConfig
from dnsrec.data import load_dataset
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import DNSRecError
from dnsrec.evaluate import Evaluator
from dnsrec.export import config_key, run_model
from dnsrec.measure import environment, inference_memory_mb
from dnsrec.models import SASRec
from dnsrec.pipeline import build_model
from dnsrec.run_result import RESULT_FILE, RunResult
from dnsrec.train.checkpoint import load_checkpoint, load_model_state
from dnsrec.train.device import Placement

MEASURED_LATER = "inference_memory_mb measured after the run by `dnsrec measure-memory`"


class RemeasureError(DNSRecError):
    """A run's model or data cannot be rebuilt as the run had them; the message names the file or key."""


def measure_inference_memory(run_dir: Path, data_dir: str | None = None) -> tuple[RunResult, bool]:
    """Add `inference_memory_mb` to the finished run in `run_dir` (rewriting its result.json); its result, and
    whether it was measured now (False: it had the figure). `data_dir`: where its dataset is (default: as the run)."""
    run_dir = Path(run_dir)
    path = run_dir / RESULT_FILE
    if not path.is_file():
        raise RemeasureError(f"{path} does not exist: not a finished run directory")
    result = RunResult.read(path)
    if result.inference_memory_mb is not None:
        return result, False
    cfg = result.config
    name, max_len = config_key(cfg, path, "dataset", "name"), config_key(cfg, path, "dataset", "max_len")
    eval_batch = config_key(cfg, path, "train", "eval_batch")
    # memory depends on the device and precision: never mix two machines' figures (checked before any loading)
    placement = Placement.resolve(config_key(cfg, path, "train", "device"), config_key(cfg, path, "train", "precision"))
    ran_on, here = result.environment.get("device", ""), placement.describe()
    if ran_on and ran_on != here:
        raise RemeasureError(f"{path}: the run scored on {ran_on!r}, this machine on {here!r}; measure it where it ran")
    data = load_dataset(name, data_dir=data_dir or cfg.get("data_dir"), max_len=max_len)
    model = _recorded_model(run_dir, result, data)
    if (model.cfg.n_items, model.cfg.max_len) != (data.n_items, data.max_len):
        raise RemeasureError(
            f"{run_dir / 'best.pt'}: a model of {model.cfg.n_items:,} items and N={model.cfg.max_len}, but dataset "
            f"{name!r} here has {data.n_items:,} items and N={data.max_len}: not the data the run scored"
        )
    evaluator = Evaluator(data, batch_size=eval_batch, device=placement.device)
    model.to(placement.device)
    result.inference_memory_mb = inference_memory_mb(model, evaluator, placement, eval_batch)
    env = environment(placement)
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result.notes = [
        *result.notes,
        f"{MEASURED_LATER} at {when} on {env['device']} (host {env['host']}, commit {env['git_commit'][:12] or '?'})",
    ]
    result.write(run_dir)
    return result, True


def _recorded_model(run_dir: Path, result: RunResult, data: SequenceData) -> SASRec:
    """The run's retrained model at its best epoch: `dnsrec.export.run_model` for SASRec and searched models;
    the feature-aware baselines (FDSA, SASRecF) are built over the data's item features, as the run built them."""
    family = (result.config.get("model") or {}).get("family", "sasrec") if result.stage == "train" else "sasrec"
    if family == "sasrec":
        return run_model(run_dir).model
    best = run_dir / "best.pt"
    try:
        model = build_model(ModelConfig(**config_key(result.config, run_dir / RESULT_FILE, "model")), data)
    except TypeError as e:
        raise RemeasureError(f"{run_dir / RESULT_FILE}: key 'config.model' does not describe a model ({e})") from e
    load_model_state(model, load_checkpoint(best), best)
    model.eval()
    return model
