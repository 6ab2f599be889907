"""The `dnsrec` command: parse, call a pipeline function, print. Nothing else lives here.

    dnsrec train dataset=ml-100k model=sasrec attention=linear [key=value ...]
    dnsrec run dataset=ml-100k search.lam=0.1 gates.layers=2 lr=0.001 [key=value ...]
    dnsrec retrain ARCH.json dataset=ml-100k [key=value ...]

Overrides are Hydra's (https://hydra.cc/docs/advanced/override_grammar/basic/); the config tree is
`sweeps/` at the project root (or $DNSREC_CONFIG_DIR).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from dnsrec.errors import DNSRecError
from dnsrec.result import RunResult

CONFIG_DIR = Path(os.environ.get("DNSREC_CONFIG_DIR", Path(__file__).resolve().parent.parent / "sweeps"))


def compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not CONFIG_DIR.is_dir():
        raise DNSRecError(f"config directory {CONFIG_DIR} not found (set DNSREC_CONFIG_DIR)")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise DNSRecError(f"bad override in {' '.join(overrides) or '(none)'}: {e}") from e
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items()}


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    names = sorted({k for split in metrics.values() for k in split})
    splits = list(metrics)
    lines = [f"{'metric':<20}" + "".join(f"{s:>10}" for s in splits)]
    for name in names:
        lines.append(f"{name:<20}" + "".join(f"{metrics[s].get(name, float('nan')):>10.4f}" for s in splits))
    return "\n".join(lines)


def cmd_train(overrides: list[str]) -> int:
    from dnsrec.pipeline import TrainRunConfig, train_run

    raw = compose("train", overrides)
    cfg = TrainRunConfig.from_mapping(raw)
    run_dir = Path(raw.get("run_dir") or f"runs/train/{_stamp()}-{cfg.dataset.name}-{cfg.model.attention}")
    print(f"run directory: {run_dir}")
    result = train_run(cfg, run_dir)
    _report(result, run_dir)
    print(
        f"{result.seconds_per_epoch:.2f} s/epoch; evaluation {result.eval_seconds['valid']:.2f} s valid, "
        f"{result.eval_seconds['test']:.2f} s test"
    )
    return 0


def _report(result: RunResult, run_dir: Path) -> None:
    print(metrics_table(result.metrics))
    if result.architecture:
        a = result.architecture
        print(
            f"architecture: depth {len(a['hidden'])}, widths {a['hidden']}, "
            f"inner {a['inner_widths']}, L_d {a['gate_layers']}"
        )
    flops = result.flops
    line = (
        f"FLOPs {flops['model'] / 1e6:.2f}M (+{flops['model_scoring'] / 1e6:.2f}M scoring), "
        f"{result.n_params:,} parameters"
    )
    if "supernet" in flops:
        line += f"; un-pruned supernet shape {flops['supernet'] / 1e6:.2f}M ({flops['model'] / flops['supernet']:.1%})"
    print(line)
    print(
        "seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
        + f"; best epoch {result.best_epoch} of {result.epochs} ({result.stopped}); "
        + f"peak memory {result.peak_memory_mb:.0f} MB"
    )
    print(f"wrote {run_dir / 'result.json'}")


def cmd_run(overrides: list[str]) -> int:
    from dnsrec.pipeline import RunConfig, dnsrec_run

    raw = compose("run", overrides)
    cfg = RunConfig.from_mapping(raw)
    run_dir = Path(raw.get("run_dir") or f"runs/run/{_stamp()}-{cfg.dataset.name}")
    print(f"run directory: {run_dir}")
    _report(dnsrec_run(cfg, run_dir), run_dir)
    return 0


def cmd_retrain(arch_path: str, overrides: list[str]) -> int:
    from dnsrec.nas.architecture import Architecture
    from dnsrec.pipeline import RunConfig, retrain_run

    arch = Architecture.read(Path(arch_path))
    raw = compose("run", overrides)
    cfg = RunConfig.from_mapping(raw)
    run_dir = Path(raw.get("run_dir") or f"runs/retrain/{_stamp()}-{cfg.dataset.name}")
    print(f"run directory: {run_dir}")
    _report(retrain_run(arch, cfg, run_dir), run_dir)
    return 0


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dnsrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one fixed model (SASRec, softmax or linear attention) and evaluate it")
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=ml-1m attention=softmax")
    run = sub.add_parser("run", help="a whole DNS-Rec run: search, derive, retrain, evaluate")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search.lam=0.01 gates.layers=3")
    retrain = sub.add_parser("retrain", help="retrain a given architecture (architecture.json or result.json)")
    retrain.add_argument("architecture", help="path of an architecture.json (or a run's result.json)")
    retrain.add_argument("overrides", nargs="*", help="Hydra overrides of sweeps/run.yaml")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args.overrides)
        if args.command == "run":
            return cmd_run(args.overrides)
        if args.command == "retrain":
            return cmd_retrain(args.architecture, args.overrides)
    except DNSRecError as e:
        print(f"dnsrec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dnsrec: interrupted; finished epochs are kept in the run directory (rerun to resume)", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
