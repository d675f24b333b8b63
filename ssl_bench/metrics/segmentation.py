"""Semantic segmentation metrics from a dataset-level confusion matrix (percent).

All pixels of a split are pooled into one confusion matrix before any ratio is taken, as
mmsegmentation's ``IoUMetric`` does (mmseg/evaluation/metrics/iou_metric.py: per-image
``intersect_and_union`` histograms are summed, then ``total_area_to_metrics``), and as the
MMS surgical benchmarks report mIoU. Per class c, with ``tp = M[c, c]``, ``gt = M[c, :].sum()``,
``pred = M[:, c].sum()`` (rows = ground truth, columns = prediction):

- IoU  = ``tp / (gt + pred - tp)``, Dice = ``2 tp / (gt + pred)``, Acc = ``tp / gt``;
- a class with no GT pixels and no predicted pixels has IoU = Dice = NaN and is excluded from the
  means (``nanmean``, as mmseg); a class predicted but absent from the GT scores IoU = Dice = 0;
  Acc is NaN whenever the class has no GT pixels (mmseg's ``Acc``);
- ``miou``, ``mdice``, ``macc`` are the nanmeans over classes; ``aacc`` = ``sum(tp) / sum(M)``
  (overall pixel accuracy, mmseg ``aAcc``).

Pixels whose GT equals ``ignore_index`` are skipped (mmseg: ``mask = label != ignore_index``).
Unlike mmseg (whose ``torch.histc`` silently drops out-of-range values), any other GT value
outside ``[0, K)`` and any prediction outside ``[0, K)`` raise ``ValueError``: they indicate a
label-mapping bug, not data to ignore.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch


def _as_numpy(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    return np.asarray(labels)


class ConfusionMatrix:
    """Accumulates a (K, K) int64 confusion matrix, rows = GT class, columns = predicted class."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """Add one batch: int label maps of equal shape (any leading dims)."""
        pred_np = _as_numpy(pred)
        gt_np = _as_numpy(gt)
        if pred_np.shape != gt_np.shape:
            raise ValueError(f"pred and gt shapes differ: {pred_np.shape} vs {gt_np.shape}")
        for name, arr in (("pred", pred_np), ("gt", gt_np)):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
                raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
        k = self.num_classes
        pred_flat = pred_np.reshape(-1).astype(np.int64)
        gt_flat = gt_np.reshape(-1).astype(np.int64)
        if pred_flat.size and (pred_flat.min() < 0 or pred_flat.max() >= k):
            raise ValueError(
                f"pred holds class ids outside [0, {k}): "
                f"min {pred_flat.min()}, max {pred_flat.max()}"
            )
        keep = gt_flat != self.ignore_index
        pred_flat, gt_flat = pred_flat[keep], gt_flat[keep]
        if gt_flat.size and (gt_flat.min() < 0 or gt_flat.max() >= k):
            raise ValueError(
                f"gt holds class ids outside [0, {k}) "
                f"that are not ignore_index={self.ignore_index}: "
                f"min {gt_flat.min()}, max {gt_flat.max()}"
            )
        counts = np.bincount(gt_flat * k + pred_flat, minlength=k * k)
        self.matrix += counts.reshape(k, k)

    def reset(self) -> None:
        self.matrix[:] = 0


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``iou``, ``dice``, ``acc`` as fractions (0-1, NaN where undefined)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    tp = np.diag(matrix)
    gt = matrix.sum(axis=1)
    pred = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (gt + pred - tp)
        dice = 2 * tp / (gt + pred)
        acc = tp / gt
    return {"iou": iou, "dice": dice, "acc": acc}


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values))


def segmentation_metrics(
    matrix: np.ndarray, class_names: Sequence[str]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Dataset-level ``miou``, ``mdice``, ``aacc``, ``macc`` (percent) and per-class
    ``{"iou": {name: v}, "dice": {name: v}}`` (percent, NaN for a class with no GT and no
    predicted pixels). See the module docstring for the definitions."""
    matrix = np.asarray(matrix)
    if len(class_names) != matrix.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {matrix.shape} confusion matrix")
    scores = per_class_scores(matrix)
    total = matrix.sum()
    metrics = {
        "miou": 100.0 * _nanmean(scores["iou"]),
        "mdice": 100.0 * _nanmean(scores["dice"]),
        "aacc": 100.0 * float(np.trace(matrix)) / float(total) if total else float("nan"),
        "macc": 100.0 * _nanmean(scores["acc"]),
    }
    per_class = {
        key: {name: float(100.0 * value) for name, value in zip(class_names, scores[key])}
        for key in ("iou", "dice")
    }
    return metrics, per_class
