"""Laparoflow-SSL loss: the pair weight and the reduction to plain pixel InfoNCE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_bench_laparoflow.loss import flow_pair_weights, flow_targets, flow_weighted_pixel_infonce

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_weight_is_one_for_equal_flows_and_decreases_with_difference() -> None:
    flow = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.01, 0.0], [0.02, 0.0], [0.0, 0.05]]])
    w = flow_pair_weights(flow, sigma=0.02)
    assert w.shape == (1, 5, 5)
    assert torch.allclose(torch.diagonal(w[0]), torch.ones(5))
    assert w[0, 0, 1] == 1.0  # equal flows: maximal weight
    # hand-computed exp(-d^2 / sigma^2)
    assert math.isclose(float(w[0, 0, 2]), math.exp(-0.25), rel_tol=1e-5)
    assert math.isclose(float(w[0, 0, 3]), math.exp(-1.0), rel_tol=1e-5)
    assert 1.0 > w[0, 0, 2] > w[0, 0, 3] > w[0, 0, 4] > 0.0
    assert torch.allclose(w, w.transpose(1, 2))


def _plain_pixel_infonce(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """Independent plain InfoNCE: positives are the same index, cross_entropy on a hand-built
    logit matrix per image, both directions."""
    losses = []
    for b in range(z1.shape[0]):
        logits = (z1[b] @ z2[b].T) / tau
        labels = torch.arange(z1.shape[1])
        losses.append(0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)))
    return torch.stack(losses).mean()


def test_equal_weights_give_plain_pixel_infonce() -> None:
    torch.manual_seed(0)
    z1 = F.normalize(torch.randn(3, 7, 5), dim=-1)
    z2 = F.normalize(torch.randn(3, 7, 5), dim=-1)
    expected = _plain_pixel_infonce(z1, z2, tau=0.2)
    for constant in (1.0, 0.3):
        weights = torch.full((3, 7, 7), constant)
        got = flow_weighted_pixel_infonce(z1, z2, weights, temperature=0.2, flow_mass=0.5)
        assert torch.allclose(got, expected, atol=1e-6)
    # a uniform flow field (everything moves together) gives equal weights too
    flow = torch.full((3, 7, 2), 0.1)
    got = flow_weighted_pixel_infonce(z1, z2, flow_pair_weights(flow, 0.02), 0.2, 0.5)
    assert torch.allclose(got, expected, atol=1e-6)


def test_pixels_that_move_together_are_targets_of_each_other() -> None:
    # pixels 0, 1 move together; 2 moves differently
    flow = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.1, 0.0]]])
    q = flow_targets(flow_pair_weights(flow, 0.02), flow_mass=0.5)
    assert torch.allclose(q.sum(-1), torch.ones(1, 3))
    # hand-computed: excess over the row minimum = (1, 1, 0) -> spread (1/2, 1/2, 0);
    # targets (1 + 0.25, 0.25, 0) / 1.5
    assert torch.allclose(q[0, 0], torch.tensor([1.25 / 1.5, 0.25 / 1.5, 0.0]), atol=1e-6)
    assert torch.allclose(q[0, 2], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    # a loss where 0 and 1 share an embedding is lower than one where they do not
    base = F.normalize(torch.eye(3), dim=-1).unsqueeze(0)
    together = F.normalize(torch.tensor([[[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]]]), dim=-1)
    w = flow_pair_weights(flow, 0.02)
    assert (flow_weighted_pixel_infonce(together, together, w, 0.2, 0.5)
            < flow_weighted_pixel_infonce(base, base, w, 0.2, 0.5))
