"""A run's retrained model as one standalone file: TorchScript or ONNX (`dnsrec export`, `dnsrec recommend`).

The exported file holds the model of the run directory's `best.pt` (the best epoch's weights, which
`result.json` reports) as a function `(seqs, lengths) -> scores`:
- seqs: int64 (B, N), right-padded item ids (1..n_items, 0 = padding), N <= max_len;
- lengths: int64 (B,), the number of real items of each row (>= 1);
- scores: float32 (B, n_items + 1), the score of every item id as the next item (column 0 is padding),
exactly what the run's own scorer (`SASRec.score`, in fp32) computes. Beside the model it carries, as JSON
(`META_KEY`: a TorchScript extra file, an ONNX metadata property), the run's description and its item map:
`item_ids[i - 1]` is the dataset's own id of item i. Loading it needs torch (TorchScript) or onnxruntime
(ONNX), never dnsrec's model or training code (`load_exported`).

TorchScript is a trace (the model has no data-dependent control flow: every shape it branches on is a width
fixed by the architecture); ONNX comes from `torch.export` (`pip install 'dnsrec[export]'`). Both take any
batch size; each file is loaded back and checked against the eager model before it is kept.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from dnsrec.errors import CheckpointError, ConfigError, DataError, DNSRecError

if TYPE_CHECKING:  # at run time imported where used: loading an exported file needs no model code
    from dnsrec.models import SASRec
    from dnsrec.run_result import RunResult

FORMATS = ("torchscript", "onnx")
META_KEY = "dnsrec.json"
RTOL, ATOL = 1e-4, 1e-5  # exported vs eager scores (fp32; only the order of the float operations differs)


class ExportError(DNSRecError):
    """A run cannot be exported, or an exported file cannot be read; the message names the file or key."""


@dataclass
class RunModel:
    """A finished run's retrained model (best epoch's weights, eval mode, CPU) and what describes it."""

    model: SASRec
    result: RunResult
    run_dir: Path


def config_key(config: dict[str, Any], source: Path, *keys: str) -> Any:
    """`config[keys[0]][keys[1]]...` of the result file `source`, or an error naming the missing key."""
    node: Any = config
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise ExportError(f"{source}: key 'config.{'.'.join(keys)}' is missing; cannot rebuild the model")
        node = node[k]
    return node


def run_model(run_dir: Path) -> RunModel:
    """The retrained model of a finished run directory: its config from result.json, weights from best.pt."""
    from dnsrec.models import SASRec, SASRecConfig
    from dnsrec.nas.architecture import Architecture
    from dnsrec.nas.derive import compact_config
    from dnsrec.run_result import RESULT_FILE, RunResult
    from dnsrec.train.checkpoint import load_checkpoint, load_model_state

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir} is not a run directory (it does not exist or is not a folder)")
    result_path = run_dir / RESULT_FILE
    if not result_path.is_file():
        raise ExportError(f"{result_path} does not exist: the run has not finished (no result to export)")
    result = RunResult.read(result_path)
    best = run_dir / "best.pt"
    state = load_checkpoint(best)
    for name in ("item_emb.weight", "pos_emb.weight"):
        if not isinstance(state.get(name), Tensor) or state[name].dim() != 2:
            raise CheckpointError(f"checkpoint {best} holds no '{name}' matrix: not a SASRec model's weights")
    n_items, max_len = state["item_emb.weight"].shape[0] - 1, state["pos_emb.weight"].shape[0]
    cfg = result.config
    if result.stage in ("run", "retrain"):
        if result.architecture is None:
            raise ExportError(f"{result_path}: key 'architecture' is missing (a {result.stage} stage records one)")
        arch = Architecture.from_dict(result.architecture, f"{result_path}: key 'architecture'")
        model_cfg = compact_config(
            arch,
            n_items,
            max_len,
            config_key(cfg, result_path, "retrain", "shape"),
            config_key(cfg, result_path, "attention"),
            config_key(cfg, result_path, "dropout"),
        )
    elif result.stage == "train":
        family = config_key(cfg, result_path, "model", "family")
        if family != "sasrec":
            raise ExportError(
                f"{result_path}: key 'config.model.family' is {family!r}; only 'sasrec' models (and DNS-Rec runs) "
                "are exported (the feature-aware baselines carry an item feature table)"
            )
        m = config_key(cfg, result_path, "model")
        try:
            model_cfg = SASRecConfig(
                n_items=n_items,
                max_len=max_len,
                d=m["d"],
                inner=m["inner"],
                n_layers=m["layers"],
                n_heads=m["heads"],
                dropout=m["dropout"],
                attention=m["attention"],
            )
        except (KeyError, ValueError) as e:
            raise ExportError(f"{result_path}: key 'config.model' does not describe a SASRec ({e})") from e
    else:
        raise ExportError(f"{result_path}: key 'stage' is {result.stage!r}; expected 'train', 'run' or 'retrain'")
    model = SASRec(model_cfg)
    load_model_state(model, state, best)
    model.eval()
    return RunModel(model, result, run_dir)


class Scorer(nn.Module):
    """`(seqs, lengths) -> scores`: the module that is exported (the model's `score`, nothing else)."""

    def __init__(self, model: SASRec) -> None:
        super().__init__()
        self.model = model

    def forward(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        return self.model.score(seqs, lengths)


def example_inputs(n_items: int, max_len: int, lengths: Sequence[int], seed: int = 0) -> tuple[Tensor, Tensor]:
    """Right-padded random histories of the given lengths, (B, max_len) and (B,), int64."""
    g = torch.Generator().manual_seed(seed)
    seqs = torch.zeros(len(lengths), max_len, dtype=torch.int64)
    lengths = [min(max(1, n), max_len) for n in lengths]
    for i, n in enumerate(lengths):
        seqs[i, :n] = torch.randint(1, n_items + 1, (n,), generator=g)
    return seqs, torch.tensor(list(lengths), dtype=torch.int64)


def _item_ids(result: RunResult, n_items: int, data_dir: str | None) -> list[str]:
    from dnsrec.data import load_dataset

    name = result.config.get("dataset", {}).get("name") or result.dataset
    data = load_dataset(name, data_dir=data_dir or result.config.get("data_dir"))
    if len(data.item_ids) != n_items:
        raise DataError(
            f"dataset {name!r} now has {len(data.item_ids) or 'no'} item ids, the run's model {n_items} items: "
            "its item map cannot be written (the data changed since the run?)"
        )
    return list(data.item_ids)


def export_run(run_dir: Path, fmt: str, out: Path, data_dir: str | None = None) -> dict[str, Any]:
    """Write the run's retrained model to `out` in format `fmt`; returns the description it carries."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx("dnsrec export --format onnx")
    run = run_model(Path(run_dir))
    cfg = run.model.cfg
    meta = {
        "format": fmt,
        "dataset": run.result.dataset,
        "stage": run.result.stage,
        "run_dir": str(Path(run_dir).resolve()),
        "best_epoch": run.result.best_epoch,
        "n_items": cfg.n_items,
        "max_len": cfg.max_len,
        "architecture": run.result.architecture,
        "signature": "(seqs int64 (B, N) right-padded, N <= max_len; lengths int64 (B,)) -> "
        "scores float32 (B, n_items + 1)",
        "item_ids": _item_ids(run.result, cfg.n_items, data_dir),
    }
    write_model(run.model, fmt, Path(out), meta)
    return meta


def write_model(model: SASRec, fmt: str, out: Path, meta: dict[str, Any]) -> None:
    """Export a SASRec (eval mode, CPU) to `out`, checked against the eager model on held-back inputs."""
    n_items, max_len = model.cfg.n_items, model.cfg.max_len
    scorer = Scorer(model).eval()
    example = example_inputs(n_items, max_len, [max_len, max_len // 2, 1])
    check = example_inputs(n_items, max_len, [1, 2, max_len, max_len - 3, max_len // 3], seed=1)
    trimmed = example_inputs(n_items, max_len, [1, 2, 3], seed=2)
    trimmed = (trimmed[0][:, :3], trimmed[1])  # padding trimmed, as the evaluator passes short histories
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes fixed by the architecture
            if fmt == "torchscript":
                traced = torch.jit.trace(scorer, example, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files={META_KEY: json.dumps(meta)})
            else:
                _write_onnx(scorer, example, tmp, meta)
        exported = load_exported(tmp, fmt)
        for inputs in (check, trimmed):
            with torch.no_grad():
                want = scorer(*inputs).numpy()
            got = exported(*(t.numpy() for t in inputs))
            if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
                diff = float(np.abs(got - want).max()) if got.shape == want.shape else f"shape {got.shape}"
                raise ExportError(
                    f"the {fmt} export of the model differs from the eager model (max |diff| {diff}); not written"
                )
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp's file is private; the model is an ordinary output file
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def _write_onnx(scorer: nn.Module, example: tuple[Tensor, Tensor], path: Path, meta: dict[str, Any]) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=int(example[0].shape[1]))
    quiet, logger = io.StringIO(), logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its notes on torchvision's operators, absent here and unused
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            program = torch.onnx.export(
                scorer,
                example,
                input_names=["seqs", "lengths"],
                output_names=["scores"],
                dynamic_shapes={"seqs": {0: batch, 1: length}, "lengths": {0: batch}},
                dynamo=True,
                verbose=False,
            )
    except Exception as e:  # torch.export's and the translator's errors have no common base class
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ExportError(f"torch.onnx.export failed ({type(e).__name__}: {first})") from e
    finally:
        logger.setLevel(level)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    proto.metadata_props.add(key=META_KEY, value=json.dumps(meta))
    onnx.save(proto, str(path))


def _require_onnx(what: str, packages: Sequence[str] = ("onnx", "onnxruntime", "onnxscript")) -> None:
    import importlib

    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ExportError(f"{what} needs the package {name!r}: pip install 'dnsrec[export]'") from e


class Exported:
    """An exported model loaded without dnsrec's model code: `exported(seqs, lengths) -> scores` (numpy)."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], meta: dict[str, Any], fmt: str) -> None:
        self.fn, self.meta, self.format = fn, meta, fmt

    def __call__(self, seqs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self.fn(np.ascontiguousarray(seqs, dtype=np.int64), np.ascontiguousarray(lengths, dtype=np.int64))


def detect_format(path: Path) -> str:
    """TorchScript files are zip archives; anything else is taken for ONNX (a protobuf)."""
    return "torchscript" if zipfile.is_zipfile(path) else "onnx"


def load_exported(path: Path, fmt: str | None = None, threads: int | None = None) -> Exported:
    """Load a file written by `export_run` (format from its content unless given)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such exported model file")
    fmt = fmt or detect_format(path)
    try:
        if fmt == "torchscript":
            extra = {META_KEY: ""}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's notice that torch.export exists
                module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            meta = json.loads(extra[META_KEY] or "{}")

            def run_ts(seqs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return module(torch.from_numpy(seqs), torch.from_numpy(lengths)).numpy()

            return Exported(run_ts, meta, fmt)
        _require_onnx(f"loading {path}", ("onnxruntime",))
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads or torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = json.loads(session.get_modelmeta().custom_metadata_map.get(META_KEY, "{}"))

        def run_onnx(seqs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            return session.run(None, {"seqs": seqs, "lengths": lengths})[0]

        return Exported(run_onnx, meta, fmt)
    except (RuntimeError, ValueError, OSError) as e:
        if isinstance(e, DNSRecError):
            raise
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ExportError(f"{path}: not a readable {fmt} model written by dnsrec export ({first})") from e


def recommend(path: Path, history: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
    """Top-k items (dataset ids, scores) after `history` (dataset ids, oldest first); items in the history
    are left out, as in the full-ranking evaluation protocol."""
    if k < 1:
        raise ConfigError(f"-k: expected a positive integer, got {k}")
    exported = load_exported(Path(path))
    item_ids = exported.meta.get("item_ids")
    max_len = exported.meta.get("max_len")
    if not item_ids or not isinstance(max_len, int):
        raise ExportError(f"{path}: carries no item map ('{META_KEY}' without item_ids/max_len)")
    index = {item: i + 1 for i, item in enumerate(item_ids)}
    unknown = [item for item in history if item not in index]
    if unknown:
        raise ExportError(f"--history: item {unknown[0]!r} is not in the model's item map ({len(item_ids):,} items)")
    if not history:
        raise ConfigError("--history: give at least one item")
    ids = [index[item] for item in history][-max_len:]
    seqs = np.zeros((1, max_len), dtype=np.int64)
    seqs[0, : len(ids)] = ids
    scores = exported(seqs, np.array([len(ids)], dtype=np.int64))[0].astype(np.float64)
    scores[0] = -np.inf
    scores[[index[item] for item in history]] = -np.inf
    k = min(k, len(item_ids) - len(set(history)))
    top = np.argsort(-scores, kind="stable")[:k]
    return [(item_ids[i - 1], float(scores[i])) for i in top]
