"""CT multi-organ metrics: per-organ Dice (percent) and HD95 (mm) over labelled volumes.

Sources (facts only): MONAI ``monai.metrics.compute_dice`` (one-hot Dice, ``ignore_empty=True``
gives NaN when the GT of a class is empty) and ``monai.metrics.compute_hausdorff_distance``
(``percentile=95``, ``spacing=`` in the array's axis order; surfaces are the mask minus its
binary erosion; symmetric: the max of the two directed 95th percentiles), as used by the MONAI
BTCV/UNETR evaluation (Project-MONAI/research-contributions UNETR/BTCV) and the TransUNet
Synapse protocol (DSC and HD95 per organ).

Per volume and organ c (labels 1..K-1; label 0 is the background and is not scored):

- c absent from the volume's GT: Dice = HD95 = NaN, excluded from every mean (a false-positive
  prediction of an absent organ is therefore not penalised, as with MONAI's ``ignore_empty``);
- c present in the GT and predicted: MONAI Dice (x 100) and MONAI HD95 in mm;
- c present in the GT but not predicted: Dice = 0 and HD95 = the diagonal of the volume's field
  of view, ``sqrt(sum((n_i * spacing_i)^2))`` mm (MONAI itself would return inf/NaN here; a
  finite worst case keeps the means finite and still ranks a miss below any real prediction).

Aggregation: per organ, nanmean over volumes; ``mean_dice`` (percent) and ``mean_hd95`` (mm)
are the nanmeans over organs of those per-organ means.

Voxels whose GT equals ``ignore_index`` are set to background in both prediction and GT before
scoring. Masks are cropped to the bounding box of (pred or gt) plus one voxel before calling
MONAI; Dice and surface distances do not change (MONAI crops the same way internally) and
memory stays small on full-size CT.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance


def field_of_view_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Diagonal of the volume's extent in mm: ``sqrt(sum((n_i * s_i)^2))``."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))


def _crop_to_union(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both binary masks to the bounding box of their union, plus one voxel when room."""
    coords = np.argwhere(pred | gt)
    low = np.maximum(coords.min(axis=0) - 1, 0)
    high = np.minimum(coords.max(axis=0) + 2, pred.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    return pred[box], gt[box]


def binary_dice_hd95(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]
) -> tuple[float, float]:
    """(Dice in percent, HD95 in mm) of two binary masks; ``gt`` must be non-empty.

    An empty ``pred`` gives (0, field-of-view diagonal)."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if not gt.any():
        raise ValueError("binary_dice_hd95 needs a non-empty ground-truth mask")
    if not pred.any():
        return 0.0, field_of_view_diagonal(gt.shape, spacing)
    pred_c, gt_c = _crop_to_union(pred, gt)
    y_pred = torch.from_numpy(pred_c)[None, None].float()
    y = torch.from_numpy(gt_c)[None, None].float()
    with warnings.catch_warnings():
        # MONAI 1.5+ passes its own deprecated ``always_return_as_numpy`` argument internally
        warnings.simplefilter("ignore", category=FutureWarning)
        dice = compute_dice(y_pred, y, include_background=True)
        hd95 = compute_hausdorff_distance(
            y_pred, y, include_background=True, percentile=95, spacing=[float(s) for s in spacing]
        )
    return 100.0 * float(dice[0, 0]), float(hd95[0, 0])


def volume_organ_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    num_classes: int,
    ignore_index: int | None = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-organ (Dice %, HD95 mm) arrays of shape ``(num_classes - 1,)`` for one volume."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(
            f"pred and gt must be 3-D volumes of equal shape, got {pred.shape} and {gt.shape}"
        )
    if len(spacing) != 3 or any(s <= 0 for s in spacing):
        raise ValueError(f"spacing must be three positive mm values, got {tuple(spacing)}")
    for name, arr in (("pred", pred), ("gt", gt)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if ignore_index is not None:
        ignored = gt == ignore_index
        if ignored.any():
            gt = np.where(ignored, 0, gt)
            pred = np.where(ignored, 0, pred)
    for name, arr in (("pred", pred), ("gt", gt)):
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(
                f"{name} holds labels outside [0, {num_classes}): min {arr.min()}, max {arr.max()}"
            )
    dice = np.full(num_classes - 1, np.nan)
    hd95 = np.full(num_classes - 1, np.nan)
    for organ in range(1, num_classes):
        gt_mask = gt == organ
        if not gt_mask.any():
            continue
        dice[organ - 1], hd95[organ - 1] = binary_dice_hd95(pred == organ, gt_mask, spacing)
    return dice, hd95


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(values, axis=axis)


def organ_metrics(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    spacings: Sequence[tuple[float, float, float]],
    class_names: Sequence[str],
    ignore_index: int | None = 255,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Dice and HD95 over CT volumes (see the module docstring for the exact rules).

    ``class_names[i]`` names label ``i``; ``class_names[0]`` is the background (not scored).
    One (pred, gt) int label volume ``(D, H, W)`` per CT volume with its voxel spacing in mm in
    the same axis order. Returns ``({"mean_dice": %, "mean_hd95": mm},
    {"dice": {organ: %}, "hd95": {organ: mm}})``; per-organ values are nanmeans over volumes
    (NaN for an organ absent from every GT), the means are nanmeans over organs.
    """
    if not (len(preds) == len(gts) == len(spacings)):
        raise ValueError(
            f"got {len(preds)} predictions, {len(gts)} labels and {len(spacings)} spacings"
        )
    if not preds:
        raise ValueError("organ_metrics needs at least one volume")
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError(
            f"class_names must list the background and at least one organ, got {class_names}"
        )
    per_volume = [
        volume_organ_scores(p, g, s, num_classes, ignore_index)
        for p, g, s in zip(preds, gts, spacings)
    ]
    return aggregate_organ_scores(per_volume, class_names)


def aggregate_organ_scores(
    per_volume: Sequence[tuple[np.ndarray, np.ndarray]], class_names: Sequence[str]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """:func:`organ_metrics` from per-volume :func:`volume_organ_scores` outputs (so a caller
    that also needs each volume's own scores computes HD95 once)."""
    dice = np.asarray(_nanmean(np.stack([d for d, _ in per_volume]), axis=0), dtype=np.float64)
    hd95 = np.asarray(_nanmean(np.stack([h for _, h in per_volume]), axis=0), dtype=np.float64)
    organs = list(class_names[1:])
    metrics = {"mean_dice": float(_nanmean(dice)), "mean_hd95": float(_nanmean(hd95))}
    per_class = {
        "dice": {name: float(v) for name, v in zip(organs, dice)},
        "hd95": {name: float(v) for name, v in zip(organs, hd95)},
    }
    return metrics, per_class
