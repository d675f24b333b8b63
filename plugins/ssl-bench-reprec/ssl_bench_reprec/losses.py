"""RepRec's representation-recovery loss and its target construction.

Yan et al. (WACV 2023, abstract): the transformer encoder "is pre-trained ... in a generative
way - by recovering masked representations from the convolutional encoder". The loss form is
not in the abstract; we use MAE's (He et al., CVPR 2022, arXiv 2111.06377): mean squared error
between prediction and (normalised) target, averaged over the masked patches only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cnn_level(cnn_strides: list[int], patch_size: int) -> int:
    """The CNN level whose features are recovered: the coarsest with stride <= ``patch_size``
    (the stride-``patch_size`` map when the CNN has one)."""
    return max((i for i, s in enumerate(cnn_strides) if s <= patch_size), default=0)


def normalised_tokens(fmap: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A (B, C, h, w) map -> (B, N, C) tokens on ``grid`` (average-pooled when the sizes
    differ), row-major like ViT patches, normalised per token over channels (LayerNorm without
    affine, like MAE's per-patch pixel normalisation)."""
    if tuple(fmap.shape[-2:]) != tuple(grid):
        fmap = F.adaptive_avg_pool2d(fmap, grid)
    tokens = fmap.flatten(2).transpose(1, 2)
    return F.layer_norm(tokens, tokens.shape[-1:])


def cnn_patch_targets(cnn_maps: list[torch.Tensor], cnn_strides: list[int], patch_size: int,
                      grid: tuple[int, int]) -> torch.Tensor:
    """Recovery targets (B, N, C): the CNN map of :func:`cnn_level`, detached (stop-gradient: no
    gradient reaches the CNN), as :func:`normalised_tokens` on the patch ``grid``."""
    fmap = cnn_maps[cnn_level(cnn_strides, patch_size)].detach()
    return normalised_tokens(fmap, grid)


def masked_recovery_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                         ) -> torch.Tensor:
    """Mean squared error over masked positions only.

    pred, target: (B, N, C); mask: (B, N) bool, True where the patch was masked."""
    per_token = ((pred - target) ** 2).mean(dim=-1)
    weights = mask.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum().clamp_min(1.0)
