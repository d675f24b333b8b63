"""Semantic segmentation of surgical scenes (CholecSeg8k, m2caiSeg, EndoVis, ...).

Protocol (as in EndoViT and MMS):

* ``linear``: a small FPN decoder (:mod:`ssl_bench.heads.fpn`) trained on the frozen encoder's
  multi-scale maps, cached as float16 per (checkpoint, unit); ``finetune``: encoder + decoder
  trained end to end (encoder at ``encoder_lr``). Semi-supervised methods train their own
  predictor through :meth:`ssl_bench.api.Method.fit_segmentation`.
* Training: cross-entropy on every frame of the labelled units, the dataset's ignore index
  ignored; no augmentation (cached maps cannot be augmented consistently).
* Selection: best epoch by val mIoU; test scored once.
* Metrics: **dataset-level** aggregation, i.e. one confusion matrix over every test pixel (as
  mmseg's ``IoUMetric`` and MMS do), mIoU, mDice, aAcc, mAcc in percent; per-class IoU and Dice
  in ``per_class``.

Budgets: ``paper`` uses AdamW 1e-4 on the decoder and encoder for 50 epochs, batch 16 -- the
order of EndoViT's CholecSeg8k fine-tuning (DPT head, AdamW ~1e-4); the exact schedule of
the anchors was not retrieved, so these values are this benchmark's choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ssl_bench.api import CellInputs, Task, TaskResult
from ssl_bench.default_plugins.tasks.mask_task import MaskTask, MaskTaskConfig, TestScores
from ssl_bench.default_plugins.tasks.metas import SEMANTIC_SEGMENTATION_META
from ssl_bench.unit_scores import per_unit_values, pooled_parts


def _confusion(preds: list[np.ndarray], gts: list[np.ndarray], num_classes: int,
               ignore_index: int) -> np.ndarray:
    from ssl_bench.metrics.segmentation import ConfusionMatrix

    cm = ConfusionMatrix(num_classes, ignore_index)
    for p, g in zip(preds, gts):
        cm.update(p, g)
    return cm.matrix


class SemanticSegmentationConfig(MaskTaskConfig):
    pass


class SemanticSegmentation(MaskTask, Task):
    meta = SEMANTIC_SEGMENTATION_META
    Config = SemanticSegmentationConfig
    val_metric = "miou"
    profiles = {
        "smoke": {"epochs": 2, "batch_size": 8, "lr": 1e-2, "decoder_width": 16,
                  "encoder_lr": 1e-3, "feature_batch_size": 32},
        "cpu": {"epochs": 6, "batch_size": 32, "lr": 3e-3, "decoder_width": 32,
                "encoder_lr": 3e-4, "eval_every": 2, "max_steps_per_epoch": 15},
        "paper": {"epochs": 50, "batch_size": 16, "lr": 1e-4, "weight_decay": 1e-4,
                  "decoder_width": 128, "encoder_lr": 1e-4, "eval_every": 5,
                  "cache_maps": False},
    }

    def __init__(self, config: SemanticSegmentationConfig) -> None:
        super().__init__(config)
        self.config: SemanticSegmentationConfig = config

    def val_score(self, preds: list[np.ndarray], gts: list[np.ndarray], cell: CellInputs) -> float:
        from ssl_bench.metrics.segmentation import segmentation_metrics

        meta = cell.dataset.meta
        matrix = _confusion(preds, gts, len(meta.classes), meta.ignore_index)
        metrics, _ = segmentation_metrics(matrix, meta.classes)
        return float(metrics["miou"])

    def test_scores(self, preds: list[np.ndarray], gts: list[np.ndarray],
                    data: list[dict[str, Any]], cell: CellInputs) -> TestScores:
        from ssl_bench.metrics.segmentation import segmentation_metrics

        meta = cell.dataset.meta
        matrices = [_confusion([p], [g], len(meta.classes), meta.ignore_index)
                    for p, g in zip(preds, gts)]
        matrix = np.sum(matrices, axis=0) if matrices else _confusion(
            [], [], len(meta.classes), meta.ignore_index)
        metrics, per_class = segmentation_metrics(matrix, meta.classes)
        units = [str(item["unit"]) for item in data]
        per_unit = per_unit_values(units, [segmentation_metrics(m, meta.classes)[0]
                                           for m in matrices])
        # dataset-level IoU per class: 100 TP / (TP + FP + FN) summed over the units
        tp = np.stack([np.diag(m) for m in matrices]).astype(np.float64)
        union = np.stack([m.sum(axis=0) + m.sum(axis=1) - np.diag(m) for m in matrices])
        parts = pooled_parts(units, 100.0 * tp, union.astype(np.float64))
        return TestScores({k: float(v) for k, v in metrics.items()}, per_class, per_unit, parts)

    def evaluate(self, cell: CellInputs) -> TaskResult:
        return self.run_mask_task(cell)
