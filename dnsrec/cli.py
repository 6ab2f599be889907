"""The `dnsrec` command: parse, call a pipeline function, print. Nothing else lives here.

    dnsrec train dataset=ml-100k model=sasrec attention=linear [key=value ...]

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
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(raw.get("run_dir") or f"runs/train/{stamp}-{cfg.dataset.name}-{cfg.model.attention}")
    print(f"run directory: {run_dir}")
    result = train_run(cfg, run_dir)
    print(metrics_table(result.metrics))
    print(
        f"best epoch {result.best_epoch} of {result.epochs} ({result.stopped}); "
        f"{result.seconds_per_epoch:.2f} s/epoch; {result.n_params:,} parameters; "
        f"evaluation {result.eval_seconds['valid']:.2f} s valid, {result.eval_seconds['test']:.2f} s test"
    )
    print(f"wrote {run_dir / 'result.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dnsrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one fixed model (SASRec, softmax or linear attention) and evaluate it")
    train.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=ml-1m attention=softmax")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args.overrides)
    except DNSRecError as e:
        print(f"dnsrec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dnsrec: interrupted; finished epochs are kept in the run directory (rerun to resume)", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
