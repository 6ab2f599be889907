"""`dnsrec run retrain.init=scratch` == `dnsrec retrain ARCH.json` of the architecture that run searched.

The search never reads retrain.init, and both paths seed torch with the run's seed right before building
the compact model, so retraining a searched architecture alone reproduces the whole run's numbers (the
benchmarks rely on this to compare transfer and scratch retraining of one search)."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_runs import TINY_RUN

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.nas.architecture import Architecture
from dnsrec.pipeline import dnsrec_run, retrain_run

QUIET = {"log": lambda _: None}


def test_scratch_run_equals_retraining_its_architecture_alone(tmp_path: Path) -> None:
    cfg = RunConfig.from_mapping(compose("run", [*TINY_RUN, "retrain.init=scratch"]))
    whole = dnsrec_run(cfg, tmp_path / "run", **QUIET)
    arch = Architecture.from_dict(json.loads((tmp_path / "run" / "architecture.json").read_text()))
    alone = retrain_run(arch, cfg, tmp_path / "retrain", **QUIET)
    assert alone.metrics == whole.metrics and alone.n_params == whole.n_params
    assert alone.flops["supernet"] == whole.flops["supernet"] and alone.supernet_params == whole.supernet_params
    # the un-pruned supernet recorded is the one the file was searched in (gates.layers=2 here), whatever the
    # retrain's own gates.layers says (a retrain builds no supernet and reads no gates.layers)
    gateless_cfg = RunConfig.from_mapping(compose("run", [*TINY_RUN, "retrain.init=scratch", "gates.layers=0"]))
    assert arch.gate_layers == cfg.gates.layers != gateless_cfg.gates.layers
    alone_gateless = retrain_run(arch, gateless_cfg, tmp_path / "retrain-gateless", **QUIET)
    assert alone_gateless.flops["supernet"] == whole.flops["supernet"]
    assert alone_gateless.supernet_params == whole.supernet_params
    # and transfer differs (else the check could not tell the two initialisations apart)
    transfer_cfg = RunConfig.from_mapping(compose("run", [*TINY_RUN, "retrain.init=transfer"]))
    transfer = dnsrec_run(transfer_cfg, tmp_path / "transfer", **QUIET)
    assert transfer.metrics != whole.metrics
