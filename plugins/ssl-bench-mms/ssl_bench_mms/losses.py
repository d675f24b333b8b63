"""The MMS losses, generalised from one sigmoid channel to K softmax classes.

Sources (facts only; the code here is our own):

* Lou et al., "Min-Max Similarity", IEEE TMI 2023, arXiv 2203.15177.
* AngeLouCN/Min_Max_Similarity ``loss.py`` (``weighted_loss``: boundary weights
  ``1 + 5 |avgpool31(mask) - mask|``, weighted BCE + weighted IoU ``1 - (inter + 1) /
  (union - inter + 1)``; ``loss_sup`` sums it over the two networks; ``loss_diff`` is the same
  loss between the two networks' unlabelled predictions, each against the other's detached
  prediction, passed through ``.item()``), and ``contrastive_loss.py`` (``ConLoss``: PatchNCE
  from Park et al., ECCV 2020 — L1-normalised features per position, key network detached,
  positive = same position, negatives = the other positions of the same image, diagonal filled
  with -10, cross-entropy over ``[pos, negs] / 0.07``; ``contrastive_loss_sup``: the same with
  the positive logit fixed at 0, the "all-negative" term).

Departures / fixes:

* The code feeds *sigmoid probabilities* to ``binary_cross_entropy_with_logits`` (a second
  sigmoid) and passes ``reduce='none'``, which PyTorch reads as the legacy ``reduce=True`` (mean),
  so its BCE is neither on logits nor boundary-weighted. We compute the per-pixel BCE from the
  logits and weight it, as the weighted BCE + IoU "structure loss" it comes from intends.
* K = 2 (the paper's binary setting): the paper's binary loss on the foreground logit
  ``z = z1 - z0`` (``softmax(z)[1] = sigmoid(z)``): boundary-weighted BCE on ``z`` plus weighted
  IoU of ``sigmoid(z)``, against the foreground mask, mean over images. The background channel
  adds no term (it would be the same loss on the complement mask, which the paper does not have).
* K > 2 (our generalisation; the paper and code are binary): probabilities are the softmax over
  the K classes and the mask is one-hot; the binary loss is applied to every class channel (BCE
  of p_k against the one-hot channel, weighted IoU of channel k, boundary weights from channel
  k) and averaged over channels and images.
* Pixels equal to ``ignore_index`` get weight 0 in every term.
* The all-negative term computes the number of positions (the code hard-codes 2304 =
  64 x 36, the 1/8 grid of 512x288 inputs).
* Feature normalisation is L1 as the code (``norm="l2"`` gives the cosine form of PatchNCE).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

#: value the code writes on the diagonal of the negative logits (the positive's own position)
DIAGONAL_FILL = -10.0


def box_mean(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """``F.avg_pool2d(x, kernel, stride=1, padding=kernel // 2)`` (zero padding counted), as two
    1-D passes: a k x k box sum is the sum of its k row sums, so the result is the same up to
    float rounding, at 2k instead of k^2 reads per pixel (5x faster for k = 31 on CPU)."""
    pad = kernel // 2
    x = F.avg_pool2d(x, kernel_size=(kernel, 1), stride=1, padding=(pad, 0))
    return F.avg_pool2d(x, kernel_size=(1, kernel), stride=1, padding=(0, pad))


def boundary_weights(target: torch.Tensor, kernel: int = 31) -> torch.Tensor:
    """``1 + 5 |avgpool_k(target) - target|`` per channel (zero padding counted, as the code)."""
    return 1.0 + 5.0 * (box_mean(target, kernel) - target).abs()


def _structure_terms(p: torch.Tensor, bce: torch.Tensor, target: torch.Tensor,
                     weight: torch.Tensor) -> torch.Tensor:
    """Per image and channel ``wbce + wiou`` (B, C) from probabilities ``p``, per-pixel BCE,
    targets and pixel weights (all (B, C, H, W))."""
    wbce = (weight * bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp_min(1e-8)
    inter = (p * target * weight).sum(dim=(2, 3))
    union = ((p + target) * weight).sum(dim=(2, 3))
    wiou = 1.0 - (inter + 1.0) / (union - inter + 1.0)
    return wbce + wiou


def binary_bce_iou(fg_logit: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                   kernel: int = 31) -> torch.Tensor:
    """The paper's binary loss: weighted BCE on the foreground logit + weighted IoU of its
    sigmoid, against a (soft) foreground target; all (B, 1, H, W). Mean over images."""
    valid = valid.to(torch.float32)
    target = target.float()
    weight = boundary_weights(target, kernel) * valid
    z = fg_logit.float()
    bce = F.binary_cross_entropy_with_logits(z, target, reduction="none")
    return _structure_terms(torch.sigmoid(z), bce, target, weight).mean()


def softmax_ce_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                   kernel: int = 31) -> torch.Tensor:
    """K > 2 (the default): the structure loss with its two parts generalised as
    multi-class losses: boundary-weighted softmax cross-entropy (the pixel weight is the largest
    per-class boundary weight ``1 + 5 |avgpool(t_k) - t_k|``), plus the weighted IoU of every
    class *present* in an image's target (mass >= 1 pixel), averaged over those (image, class)
    pairs. Absent classes add no IoU term: with ``+1`` smoothing their ``1 - 1 / (sum p + 1)``
    sits at ~1 with a ~0 gradient (a constant that only dilutes the average), and false
    positives of an absent class are already paid by the cross-entropy and by the present
    classes' IoU. Scalar; the CE is the mean over images."""
    valid = valid.to(torch.float32)
    target = target.float()
    weight_k = boundary_weights(target, kernel) * valid  # (B, K, H, W)
    weight = weight_k.amax(dim=1, keepdim=True)  # (B, 1, H, W)
    log_p = F.log_softmax(logits.float(), dim=1)
    ce = -(target * log_p).sum(dim=1, keepdim=True)  # soft-target CE per pixel
    wce = (weight * ce).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1e-8)
    p = log_p.exp()
    inter = (p * target * weight_k).sum(dim=(2, 3))
    union = ((p + target) * weight_k).sum(dim=(2, 3))
    wiou = 1.0 - (inter + 1.0) / (union - inter + 1.0)  # (B, K)
    present = ((target * valid).sum(dim=(2, 3)) >= 1.0).float()
    iou = (wiou * present).sum() / present.sum().clamp_min(1.0)
    return wce.mean() + iou


def weighted_bce_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                     kernel: int = 31,
                     multiclass: Literal["softmax", "per-channel"] = "softmax") -> torch.Tensor:
    """The MMS structure loss of (B, K, H, W) logits against a (soft) per-class target of the
    same shape; ``valid``: (B, 1, H, W) in {0, 1}. Returns a scalar.

    K = 2: :func:`binary_bce_iou` on the foreground logit ``z1 - z0`` and target channel 1.
    K > 2: the binary loss of every softmax channel against its target channel, averaged over
    images and channels."""
    if logits.shape[1] == 2:
        return binary_bce_iou(logits[:, 1:2] - logits[:, 0:1], target[:, 1:2], valid, kernel)
    if multiclass == "softmax":
        return softmax_ce_iou(logits, target, valid, kernel)
    valid = valid.to(logits.dtype)
    weight = boundary_weights(target, kernel) * valid
    log_p = F.log_softmax(logits.float(), dim=1)
    p = log_p.exp()
    # log(1 - p_k); the clamp keeps it finite where p_k rounds to 1 in float32
    log_not_p = torch.log1p(-p.clamp(max=1.0 - 1e-6))
    bce = -(target * log_p + (1.0 - target) * log_not_p)
    return _structure_terms(p, bce, target, weight).mean()


def one_hot_target(mask: torch.Tensor, num_classes: int, ignore_index: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) class ids -> one-hot (B, K, H, W) float and valid (B, 1, H, W) float."""
    valid = mask != ignore_index
    ids = torch.where(valid, mask, torch.zeros_like(mask)).long()
    if ids.numel() and int(ids.max()) >= num_classes:
        raise ValueError(f"mask has class id {int(ids.max())} >= num_classes {num_classes}")
    onehot = F.one_hot(ids, num_classes).permute(0, 3, 1, 2).float()
    valid_f = valid.unsqueeze(1).float()
    return onehot * valid_f, valid_f


def supervised_loss(logits: torch.Tensor, mask: torch.Tensor, ignore_index: int,
                    kernel: int = 31,
                    multiclass: Literal["softmax", "per-channel"] = "softmax") -> torch.Tensor:
    """The MMS supervised loss of one network on labelled images (``weighted_loss``)."""
    target, valid = one_hot_target(mask, logits.shape[1], ignore_index)
    return weighted_bce_iou(logits, target, valid, kernel, multiclass)


def difference_loss(logits1: torch.Tensor, logits2: torch.Tensor, kernel: int = 31,
                    multiclass: Literal["softmax", "per-channel"] = "softmax") -> torch.Tensor:
    """``L_diff``: each network's unlabelled prediction against the other's (detached) softmax."""
    valid = torch.ones_like(logits1[:, :1])
    p1 = F.softmax(logits1.detach().float(), dim=1)
    p2 = F.softmax(logits2.detach().float(), dim=1)
    return (weighted_bce_iou(logits1, p2, valid, kernel, multiclass)
            + weighted_bce_iou(logits2, p1, valid, kernel, multiclass))


def _normalise(x: torch.Tensor, norm: Literal["l1", "l2"]) -> torch.Tensor:
    return F.normalize(x, dim=-1, p=1 if norm == "l1" else 2)


def patch_contrastive_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07,
                           positive: bool = True, norm: Literal["l1", "l2"] = "l1"
                           ) -> torch.Tensor:
    """PatchNCE between two feature maps (B, C, h, w); ``key`` is detached.

    For every position p of every image: logits ``[s(q_p, k_p), s(q_p, k_q) for q != p]`` over
    the temperature, with the diagonal of the negative block at -10 (as the code), and
    cross-entropy towards index 0; mean over all B*h*w positions. ``positive=False`` fixes the
    positive logit at 0 (the all-negative term)."""
    if query.shape != key.shape:
        raise ValueError(f"feature maps differ in shape: {tuple(query.shape)} vs "
                         f"{tuple(key.shape)}")
    b, c = query.shape[:2]
    q = _normalise(query.float().reshape(b, c, -1).transpose(1, 2), norm)  # (B, N, C)
    k = _normalise(key.detach().float().reshape(b, c, -1).transpose(1, 2), norm)
    n = q.shape[1]
    if positive:
        pos = (q * k).sum(dim=-1, keepdim=True)  # (B, N, 1)
    else:
        pos = q.new_zeros(b, n, 1)  # the code's zeros((batch * 2304, 1)), count computed here
    neg = torch.bmm(q, k.transpose(1, 2))  # (B, N, N)
    eye = torch.eye(n, dtype=torch.bool, device=q.device).unsqueeze(0)
    neg = neg.masked_fill(eye, DIAGONAL_FILL)
    logits = torch.cat([pos, neg], dim=2).reshape(b * n, n + 1) / temperature
    return F.cross_entropy(logits, logits.new_zeros(b * n, dtype=torch.long))


def all_negative_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07,
                      norm: Literal["l1", "l2"] = "l1") -> torch.Tensor:
    """The "all-negative" term (``contrastive_loss_sup``): positive logit fixed at 0."""
    return patch_contrastive_loss(query, key, temperature, positive=False, norm=norm)


__all__ = ["DIAGONAL_FILL", "boundary_weights", "binary_bce_iou", "softmax_ce_iou",
           "weighted_bce_iou",
           "one_hot_target", "supervised_loss", "difference_loss", "patch_contrastive_loss",
           "all_negative_loss"]
