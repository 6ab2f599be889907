"""`retrain.gate_layers` (Table 6 "Retrain Only"): the retrained model's gate depth apart from the search's,
and the reproduce tables' DNS-Rec rows needing no other key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from tiny_runs import TINY_RUN

from dnsrec.compose import CONFIG_DIR, compose
from dnsrec.config.run import RunConfig
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.derive import build_compact, gate_parameter_names, retrained_architecture, transfer_weights
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet
from dnsrec.pipeline import dnsrec_run

SPACE = SearchSpace(
    n_items=30, max_len=10, d=16, inner=32, n_heads=4, n_layers=2, pruning=(0.0, 0.25, 0.5), gate_layers=2
)


def test_retrained_architecture_takes_the_gate_depth_only_when_set() -> None:
    arch = Architecture(16, 32, 4, (8, 8), (16, 16), gate_layers=2, candidates=(1, 1))
    assert retrained_architecture(arch, None) is arch
    assert retrained_architecture(arch, 0) == Architecture(16, 32, 4, (8, 8), (16, 16), 0, (1, 1))


def test_transfer_leaves_gates_of_another_depth_fresh() -> None:
    torch.manual_seed(0)
    supernet = Supernet(SPACE)
    arch = Architecture(16, 32, 4, (8,), (16,), gate_layers=1, candidates=(1,))
    compact = build_compact(arch, SPACE)
    gates = gate_parameter_names(compact)
    assert gates == {
        "blocks.0.ffn.gate1.layers.0.weight",
        "blocks.0.ffn.gate1.layers.0.bias",
        "blocks.0.ffn.gate2.layers.0.weight",
        "blocks.0.ffn.gate2.layers.0.bias",
    }
    before = {k: v.clone() for k, v in compact.state_dict().items()}
    transfer_weights(supernet, compact, fresh=gates)
    source = supernet.state_dict()
    for name, value in compact.state_dict().items():
        if name in gates:
            assert torch.equal(value, before[name])
        else:
            assert torch.equal(value, source[name][tuple(slice(0, n) for n in value.shape)])
    assert gate_parameter_names(build_compact(retrained_architecture(arch, 0), SPACE)) == set()


def test_retrain_only_gates_run(tmp_path: Path) -> None:
    """Searched with 2-layer gates, retrained (from the searched weights) with 1-layer gates."""
    cfg = RunConfig.from_mapping(
        compose("run", [*TINY_RUN, "retrain.gate_layers=1", "retrain.init=transfer", "retrain.max_epochs=1"])
    )
    r = dnsrec_run(cfg, tmp_path, log=lambda _: None)
    assert r.architecture is not None and r.search is not None
    assert r.architecture["gate_layers"] == 1 and r.search["searched_architecture"]["gate_layers"] == 2
    assert Architecture.read(tmp_path / "architecture.json").gate_layers == 2  # what the search derived
    assert {k: v for k, v in r.architecture.items() if k != "gate_layers"} == {
        k: v for k, v in r.search["searched_architecture"].items() if k != "gate_layers"
    }


@pytest.mark.parametrize("table", ["table3", "table4", "table5", "table6", "table7", "figure4", "lr"])
def test_reproduce_rows_need_no_other_key(table: str) -> None:
    """Every `dnsrec run` row of the reproduce tables composes into a valid run config (no row is unavailable
    for a missing key)."""
    spec = yaml.safe_load((CONFIG_DIR / "experiment" / "reproduce" / f"{table}.yaml").read_text())
    for row in spec["rows"]:
        if row["command"] == "run":
            RunConfig.from_mapping(compose("run", [*TINY_RUN, *row.get("overrides", [])]))
