"""The search space: specs parsed and refused with the key's name, points applied to the run config."""

from __future__ import annotations

import re

import optuna
import pytest

from dnsrec.config.sweep import sweep_config
from dnsrec.config.sweep_space import apply, parse_space
from dnsrec.errors import ConfigError

PAPER = {
    "search": {"lam": {"low": 1e-3, "high": 1.0, "log": True}},
    "gates": {"layers": {"low": 0, "high": 4, "type": "int"}},
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
}


def test_paper_space_parses_to_dotted_keys_and_samples_inside_its_ranges() -> None:
    params = parse_space(PAPER)
    assert [p.key for p in params] == ["search.lam", "gates.layers", "lr"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(50):
        trial = study.ask()
        lam, layers, lr = (p.suggest(trial) for p in params)
        assert 1e-3 <= lam <= 1.0 and 1e-4 <= lr <= 1e-2
        assert isinstance(layers, int) and 0 <= layers <= 4
        study.tell(trial, 0.0)
    lams = [t.params["search.lam"] for t in study.trials]
    # log-uniform: about as many points below 0.0316 (the log-midpoint) as above
    assert 15 <= sum(v < 10**-1.5 for v in lams) <= 35


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lr": {"low": 0.01, "high": 0.01}}, "'sweep.space.lr': empty range"),
        ({"search": {"lam": {"low": 1.0, "high": 0.1}}}, "'sweep.space.search.lam': inverted range"),
        ({"lr": {"low": 0.0, "high": 0.1, "log": True}}, "'sweep.space.lr.low': a log range needs low > 0"),
        ({"gates": {"layers": {"low": 0, "high": 4.5, "type": "int"}}}, "'sweep.space.gates.layers.high'"),
        ({"lr": {"low": "a", "high": 1}}, "'sweep.space.lr.low': expected a finite number"),
        ({"lr": {"low": 0.1, "high": 1, "scale": "log"}}, "'sweep.space.lr.scale': unknown"),
        ({"lr": {"choices": []}}, "'sweep.space.lr.choices': expected a non-empty list"),
        ({}, "'sweep.space': expected a non-empty mapping"),
        ({"lr": 0.1}, "'sweep.space.lr': expected a parameter spec"),
    ],
)
def test_bad_specs_are_refused_naming_the_key(space: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_space(space)


def test_apply_sets_dotted_keys_on_a_copy_and_refuses_unknown_ones() -> None:
    base = {"lr": 0.001, "search": {"lam": 0.1, "epochs": 10}}
    out = apply(base, {"search.lam": 0.5, "lr": 0.01})
    assert out == {"lr": 0.01, "search": {"lam": 0.5, "epochs": 10}}
    assert base["search"]["lam"] == 0.1  # the base is untouched
    with pytest.raises(ConfigError, match=re.escape("'sweep.space.search.lamda': no key 'lamda' in search")):
        apply(base, {"search.lamda": 0.5})


def test_sweep_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=re.escape("'sweep.objectives'")):
        sweep_config({"name": "x", "space": PAPER, "objectives": ["flops"]})
    with pytest.raises(ConfigError, match=re.escape("'sweep.flops_budget'")):
        sweep_config({"name": "x", "space": PAPER, "flops_budget": 1e6})
    with pytest.raises(ConfigError, match=re.escape("'sweep.name'")):
        sweep_config({"name": "a b;drop", "space": PAPER})
    with pytest.raises(ConfigError, match=re.escape("'sweep.space'")):
        sweep_config({"name": "x", "space": PAPER, "sampler": "grid"})
    cfg = sweep_config({"name": "x", "space": PAPER, "objectives": ["ndcg"], "flops_budget": 1e6})
    assert cfg.directions == ["maximize"]
