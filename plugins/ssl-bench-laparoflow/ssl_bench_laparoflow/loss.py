"""Flow-weighted pixel InfoNCE of Laparoflow-SSL.

Paper (Moens et al., MIDL 2024, abstract): an InfoNCE loss contrasts the pixel representations
of two views; "the importance of each contrasted pixel pair is determined by computing the
difference between the optical flows of the respective pixels", so "pixels that move together"
get similar vectors. The paper's exact formula is not available to us; this is our
reconstruction (see the Choices list in ``ssl_bench_laparoflow.method``):

* pair weight ``w_ij = exp(-||f_i - f_j||^2 / sigma^2)``: 1 for equal flows, decreasing with
  the flow difference;
* for anchor pixel ``i`` of view 1 the InfoNCE target over the pixels ``j`` of view 2 is the
  identity (its own location, the usual positive) plus ``flow_mass`` spread over the other
  pixels in proportion to ``w_ij - min_k w_ik`` (how much more ``j`` moves with ``i`` than the
  least related pixel), renormalised to sum to 1;
* loss = cross-entropy of that target against ``softmax_j(z1_i . z2_j / tau)``, averaged over
  anchors and over both directions (view 1 -> 2 and 2 -> 1).

When every pair weighs the same (e.g. a static frame pair), ``w_ij - min_k w_ik = 0`` and the
target is the identity: the loss is exactly plain pixel InfoNCE (van den Oord et al. 2018,
arXiv 1807.03748; pixel-level form as in Wang et al., "Dense Contrastive Learning", CVPR 2021).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flow_pair_weights(flow: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, N, 2) flow per sampled pixel -> (B, N, N) weights ``exp(-||f_i - f_j||^2 / sigma^2)``."""
    diff = flow.unsqueeze(2) - flow.unsqueeze(1)
    return torch.exp(-(diff ** 2).sum(-1) / (sigma ** 2))


def flow_targets(weights: torch.Tensor, flow_mass: float, eps: float = 1e-8) -> torch.Tensor:
    """(B, N, N) pair weights -> (B, N, N) soft InfoNCE targets (rows sum to 1)."""
    n = weights.shape[-1]
    eye = torch.eye(n, dtype=weights.dtype, device=weights.device).expand_as(weights)
    excess = weights - weights.amin(dim=-1, keepdim=True)
    total = excess.sum(dim=-1, keepdim=True)
    spread = torch.where(total > eps, excess / total.clamp_min(eps), torch.zeros_like(excess))
    targets = eye + flow_mass * spread
    return targets / targets.sum(dim=-1, keepdim=True)


def flow_weighted_pixel_infonce(z1: torch.Tensor, z2: torch.Tensor, weights: torch.Tensor,
                                temperature: float, flow_mass: float) -> torch.Tensor:
    """Symmetric flow-weighted InfoNCE between L2-normalised pixel embeddings ``z1``, ``z2``
    ((B, N, D), row ``i`` of both at the same source location) with pair ``weights``
    ((B, N, N), symmetric). Negatives are the other sampled pixels of the same image."""
    logits = torch.einsum("bid,bjd->bij", z1, z2) / temperature
    targets = flow_targets(weights, flow_mass)
    loss_12 = -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    loss_21 = -(targets * F.log_softmax(logits.transpose(1, 2), dim=-1)).sum(-1).mean()
    return 0.5 * (loss_12 + loss_21)
