"""RepRec's representation-recovery loss and its target construction.

Yan et al. (WACV 2023, abstract): the transformer encoder "is pre-trained ... in a generative
way - by recovering masked representations from the convolutional encoder". The loss form is
not in the abstract; we use MAE's (He et al., CVPR 2022, arXiv 2111.06377): mean squared error
between prediction and (normalised) target, averaged over the masked patches only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cnn_patch_targets(cnn_maps: list[torch.Tensor], cnn_strides: list[int], patch_size: int,
                      grid: tuple[int, int]) -> torch.Tensor:
    """Recovery targets (B, N, C): the coarsest CNN map whose stride is <= ``patch_size`` (the
    stride-``patch_size`` map when the CNN has one), average-pooled to the patch ``grid``,
    detached (stop-gradient: no gradient reaches the CNN) and normalised per token over
    channels (like MAE's per-patch pixel normalisation)."""
    level = max((i for i, s in enumerate(cnn_strides) if s <= patch_size), default=0)
    fmap = cnn_maps[level].detach()
    if tuple(fmap.shape[-2:]) != tuple(grid):
        fmap = F.adaptive_avg_pool2d(fmap, grid)
    tokens = fmap.flatten(2).transpose(1, 2)  # (B, N, C), row-major like ViT patches
    return F.layer_norm(tokens, tokens.shape[-1:])


def masked_recovery_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                         ) -> torch.Tensor:
    """Mean squared error over masked positions only.

    pred, target: (B, N, C); mask: (B, N) bool, True where the patch was masked."""
    per_token = ((pred - target) ** 2).mean(dim=-1)
    weights = mask.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum().clamp_min(1.0)
