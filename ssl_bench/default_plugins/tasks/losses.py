"""Losses of the mask tasks: cross-entropy plus a soft Dice term over the foreground classes
(MONAI's ``DiceCELoss`` recipe for CT organ segmentation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _soft_dice_term(probs: torch.Tensor, target: torch.Tensor, ignore_index: int
                    ) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes present, from softmax ``probs``.

    Without a one-hot tensor: the intersection of class k is the sum of p_k over the pixels
    labelled k (a gather and an ``index_add``), the label mass a ``bincount``."""
    num_classes = probs.shape[1]
    valid = target != ignore_index
    ids = torch.where(valid, target, 0)
    probs = probs * valid.unsqueeze(1)
    p_sum = probs.sum((0, 2, 3))
    flat = ids.flatten()
    p_true = probs.gather(1, ids.unsqueeze(1)).flatten()  # 0 at ignored pixels
    inter = torch.zeros(num_classes, dtype=probs.dtype, device=probs.device).index_add(
        0, flat, p_true)
    g_sum = torch.bincount(flat[valid.flatten()], minlength=num_classes).to(probs.dtype)
    inter, denom, present = inter[1:], (p_sum + g_sum)[1:], g_sum[1:] > 0
    if not present.any():
        return probs.new_zeros(())
    dice = (2 * inter[present] + 1e-5) / (denom[present] + 1e-5)
    return 1 - dice.mean()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes (1..K-1) present in the batch, pixels of
    the whole batch pooled; ignored pixels excluded (cf. MONAI ``DiceLoss`` with softmax and
    one-hot targets, as in its BTCV DiceCE recipes)."""
    return _soft_dice_term(F.softmax(logits, dim=1), target, ignore_index)


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                 dice_weight: float) -> torch.Tensor:
    """Cross-entropy (ignored pixels skipped) + ``dice_weight`` x :func:`soft_dice_loss`,
    sharing one log-softmax (half the time of computing the two separately on CPU)."""
    log_p = F.log_softmax(logits, dim=1)
    loss = F.nll_loss(log_p, target, ignore_index=ignore_index)
    if dice_weight > 0:
        loss = loss + dice_weight * _soft_dice_term(log_p.exp(), target, ignore_index)
    return loss


__all__ = ["soft_dice_loss", "ce_dice_loss"]
