"""L_RC (paper Eq. 12-13) against numbers worked out by hand, in the published code's normalisation:
f_i = F_i / (F_max - F_min) over ONE layer's candidates, L_RC = (L_t / L) sum_j q_j sum_{l<=j} sum_i p_i f_i.
"""

from __future__ import annotations

import pytest
import torch

from dnsrec.nas.controllers import resource_loss

# Two layers, two candidates costing 10 and 30 FLOPs: F_max - F_min = 20, so f = (0.5, 1.5).
P = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
Q = torch.tensor([0.4, 0.6], dtype=torch.float64)
FLOPS = torch.tensor([10.0, 30.0], dtype=torch.float64)
# Layer 1: 0.5*0.5 + 0.5*1.5 = 1.0; layer 2: 0.25*0.5 + 0.75*1.5 = 1.25.
# Exit after layer 1 costs 1.0, after layer 2 costs 2.25: E = 0.4*1.0 + 0.6*2.25 = 1.75.


@pytest.mark.parametrize(("l_t", "want"), [(2, 1.75), (1, 0.875)])
def test_resource_loss_matches_the_hand_computation(l_t: int, want: float) -> None:
    got = resource_loss(P, Q, FLOPS, l_t=l_t, n_layers=2)
    # The whole-network normaliser (2 * 30 - 10 = 50) would give 0.7 and 0.35 here.
    assert float(got) == pytest.approx(want, rel=1e-12)


def test_resource_loss_gradients_match_the_hand_computation() -> None:
    p, q = P.clone().requires_grad_(), Q.clone().requires_grad_()
    resource_loss(p, q, FLOPS, l_t=2, n_layers=2).backward()
    # dL/dp[l, i] = f_i * sum_{j>=l} q_j; dL/dq_j = cost of exiting after layer j.
    assert p.grad is not None and q.grad is not None
    torch.testing.assert_close(
        p.grad, torch.tensor([[0.5 * 1.0, 1.5 * 1.0], [0.5 * 0.6, 1.5 * 0.6]], dtype=torch.float64)
    )
    torch.testing.assert_close(q.grad, torch.tensor([1.0, 2.25], dtype=torch.float64))


def test_per_layer_costs_use_one_layers_candidate_range() -> None:
    flops = FLOPS.expand(2, 2)  # the same costs given per layer
    assert float(resource_loss(P, Q, flops, l_t=2, n_layers=2)) == pytest.approx(1.75, rel=1e-12)
