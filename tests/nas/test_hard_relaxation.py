"""`search.relax=hard`: one sampled path per step (Gumbel-max at temperature tau, straight-through gradient),
checked against independent computations: the sampling frequencies against softmax(alpha / tau), the gradient
against the Gumbel-softmax's from the same noise, and a tiny search's records against what it evaluated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TINY_RUN

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.errors import ConfigError
from dnsrec.nas.controllers import Controllers, TemperatureSchedule
from dnsrec.pipeline import dnsrec_run

PROBE_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "subnet_probe.py"
TAU = 0.5


def hard_controllers() -> Controllers:
    c = Controllers(3, 3, relaxation="hard", schedule=TemperatureSchedule(start=TAU, decay=0.0, floor=TAU))
    with torch.no_grad():
        c.alpha.copy_(torch.tensor([[0.3, -0.2, 0.1]]))
        c.beta.copy_(torch.tensor([-0.4, 0.2, 0.0]))
    return c


def test_each_draw_is_one_path_with_the_frequencies_of_softmax_over_tau() -> None:
    c, g = hard_controllers(), torch.Generator().manual_seed(0)
    draws = 4000
    counts_p, counts_q = torch.zeros(3), torch.zeros(3)
    for _ in range(draws):
        p, q = c(0, generator=g)
        assert set(p.detach().flatten().tolist()) == {0.0, 1.0} and torch.equal(p[0], p[1])  # shared alpha
        assert p.detach().sum(dim=-1).tolist() == [1.0] * 3 and q.detach().sum().item() == 1.0
        counts_p += p.detach()[0]
        counts_q += q.detach()
    for counts, logits in ((counts_p, c.alpha.detach()[0]), (counts_q, c.beta.detach())):
        want = torch.softmax(logits / TAU, dim=-1)
        sd = (want * (1 - want) / draws).sqrt()
        assert ((counts / draws - want).abs() < 4 * sd).all(), (counts / draws, want)


def test_gradient_is_the_gumbel_softmax_gradient_of_the_same_noise() -> None:
    c = hard_controllers()
    w = torch.tensor([1.0, -2.0, 0.5])
    p, q = c(0, generator=torch.Generator().manual_seed(3))
    (p[0] @ w + q @ w).backward()
    # independently: the same uniforms (alpha's draw first, then beta's), softmax(logits / tau + Gumbel)
    g = torch.Generator().manual_seed(3)
    grads = []
    for logits, shape in ((c.alpha.detach()[0], (1, 3)), (c.beta.detach(), (3,))):
        u = torch.rand(shape, generator=g).clamp(1e-10, 1 - 1e-10).reshape(3)
        x = logits.clone().requires_grad_(True)
        (F.softmax(x / TAU - torch.log(-torch.log(u)), dim=-1) @ w).backward()
        grads.append(x.grad)
    assert c.alpha.grad is not None and c.beta.grad is not None
    torch.testing.assert_close(c.alpha.grad[0], grads[0])
    torch.testing.assert_close(c.beta.grad, grads[1])


def test_evaluation_scores_the_argmax_path_and_records_the_distribution() -> None:
    c = hard_controllers()
    p, q = c(0, noise=False)
    assert p[0].tolist() == [1.0, 0.0, 0.0] and q.tolist() == [0.0, 1.0, 0.0]
    rp, rq = c.probabilities(0)
    torch.testing.assert_close(rp[0], torch.softmax(c.alpha.detach()[0] / TAU, dim=-1))
    torch.testing.assert_close(rq, torch.softmax(c.beta.detach() / TAU, dim=-1))


def test_hard_relaxation_is_dnsrec_only() -> None:
    for method in ("recnas", "proxyless"):
        with pytest.raises(ConfigError, match=r"search\.relax"):
            RunConfig.from_mapping(compose("run", [*TINY_RUN, f"search.method={method}", "search.relax=hard"]))


def test_tiny_hard_search_records_what_it_evaluated(tmp_path: Path) -> None:
    """The trajectory records softmax(logits / tau) (not one-hot), and the decision epoch's validation score is
    the argmax subnet's: benchmarks/subnet_probe.py, scoring that subnet with the kept weights, gets it again."""
    overrides = [*TINY_RUN, "search.epochs=2", "search.relax=hard"]
    dnsrec_run(RunConfig.from_mapping(compose("run", overrides)), tmp_path, log=lambda _: None)
    search = json.loads((tmp_path / "result.json").read_text())["search"]
    at = search["trajectory"][search["best_epoch"] - 1]
    assert min(at["p"][0]) > 0 and max(at["p"][0]) < 1 and sum(at["p"][0]) == pytest.approx(1)
    out = subprocess.run(
        [sys.executable, str(PROBE_SCRIPT), str(tmp_path), "--", *overrides],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    chosen = next(line.split(" | ") for line in out.splitlines() if line.endswith("| <-"))
    assert float(chosen[4]) == pytest.approx(at["valid"]["pop100/ndcg@10"], abs=1e-4)
