"""Multi-organ CT segmentation (BTCV, MSD, AMOS), 2-D slice protocol.

Protocol (the BTCV one: per-volume Dice and HD95 over the organs, averaged over the organs):

* Every 2-D method applies: a volume is its stack of axial slices (``UnitData.frames``, HU
  windowed and replicated to 3 channels by the reader). The FPN decoder
  (:mod:`ssl_bench.heads.fpn`) is trained on slices of the labelled volumes with cross-entropy
  plus a soft Dice loss over the organs (MONAI's BTCV recipes train with ``DiceCELoss``; ignore
  index honoured), on frozen cached maps (``linear``) or end to end (``finetune``).
* Background-only slices (no organ pixel) of the training volumes are subsampled: a seeded
  random ``background_slice_fraction`` of them is kept (1.0 keeps all), because most slices of
  an abdominal CT hold no organ and would dominate the loss.
* Selection on val by the mean over volumes of the mean Dice over organs present (a cheap
  Dice-only pass, no HD95); test: every slice of each test volume is predicted, the slices are
  stacked back into the volume and scored per volume with MONAI's Dice and HD95
  (:func:`ssl_bench.metrics.volume.organ_metrics`), then averaged over the organs.
* ``UnitData.spacing`` is mm per (row, col, slice); the metric takes the arrays' axis order
  (slice, row, col), so it is passed as ``(spacing[2], spacing[0], spacing[1])``.

Budgets are fixed numbers of optimiser steps (``steps_per_epoch`` x ``epochs``), whatever the
label fraction: MONAI's BTCV recipes are iteration-based (``max_iterations`` with a validation
every ``eval_num`` steps), and a pass-based epoch over one labelled volume (~100 slices, the
10 % cell of the 14 training volumes) gave the cpu profile 24 steps in all and near-zero Dice.
``paper`` follows the order of MONAI's BTCV recipes (AdamW 1e-4, weight decay 1e-5, 25,000
iterations, validation every 500; UNETR / Swin UNETR BTCV tutorials); the 3-D sliding-window
protocol is not implemented here. ``cpu`` (64 x 64 slices): 200 steps of 32 slices, validation
every 50 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ssl_bench.api import CellInputs, Task, TaskResult
from ssl_bench.default_plugins.tasks.mask_task import MaskTask, MaskTaskConfig, TestScores
from ssl_bench.default_plugins.tasks.metas import ORGAN_SEGMENTATION_META
from ssl_bench.errors import SSLBenchError
from ssl_bench.unit_scores import classwise_mean_parts, per_unit_values


def mean_dice_present(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int
                      ) -> float:
    """Mean Dice (percent) over the organs (classes 1..K-1) present in ``gt``; NaN if none."""
    valid = gt != ignore_index
    scores = []
    for c in range(1, num_classes):
        g = (gt == c) & valid
        n_gt = int(g.sum())
        if n_gt == 0:
            continue
        p = (pred == c) & valid
        scores.append(200.0 * float((p & g).sum()) / (n_gt + int(p.sum())))
    return float(np.mean(scores)) if scores else float("nan")


class OrganSegmentationConfig(MaskTaskConfig):
    #: share of background-only training slices kept (seeded); 1.0 keeps every slice
    background_slice_fraction: float = 1.0


class OrganSegmentation(MaskTask, Task):
    meta = ORGAN_SEGMENTATION_META
    Config = OrganSegmentationConfig
    #: val: per volume the mean Dice over the organs it holds, averaged over the volumes
    val_metric = "mean_dice_present"
    profiles = {
        "smoke": {"epochs": 2, "batch_size": 8, "lr": 1e-2, "decoder_width": 16,
                  "encoder_lr": 1e-3, "feature_batch_size": 32, "dice_loss_weight": 1.0},
        # 8 x 25 steps: 27 of the 36 cells of a 12-epoch make run peaked on val by epoch 8.
        # Fine-tuning (the supervised row) gets the same 8 x 25 steps with the encoder's BN
        # layers in eval mode (``finetune_norm_eval``): with train-mode BN its val Dice
        # stalled at ~14 by epoch 4 even with encoder_lr 0 (batch statistics of CT slices
        # instead of the frozen row's; cf. bn-adapt-random, lower on CT), 6-9 points below
        # random-init's frozen decoder; with them frozen it starts from random-init's
        # features and passes it (docs/methods.md, supervised)
        "cpu": {"epochs": 8, "steps_per_epoch": 25, "batch_size": 32, "lr": 3e-3,
                "decoder_width": 32, "encoder_lr": 1e-3, "eval_every": 2,
                "finetune_norm_eval": True, "background_slice_fraction": 0.25,
                "dice_loss_weight": 1.0},
        "paper": {"epochs": 50, "steps_per_epoch": 500, "batch_size": 16, "lr": 1e-4,
                  "weight_decay": 1e-5, "decoder_width": 128, "encoder_lr": 1e-4,
                  "eval_every": 1, "cache_maps": False, "background_slice_fraction": 0.5,
                  "dice_loss_weight": 1.0},
    }

    def __init__(self, config: OrganSegmentationConfig) -> None:
        super().__init__(config)
        self.config: OrganSegmentationConfig = config

    def train_keep(self, masks: np.ndarray, ignore_index: int, rng: np.random.Generator
                   ) -> np.ndarray:
        fraction = self.config.background_slice_fraction
        organ = ((masks != 0) & (masks != ignore_index)).reshape(len(masks), -1).any(axis=1)
        # one draw per slice, so the random stream does not depend on the masks
        draw = rng.random(len(masks))
        keep = organ | (draw < fraction)
        if not keep.any() and len(keep):
            keep[0] = True
        return keep

    def val_score(self, preds: list[np.ndarray], gts: list[np.ndarray], cell: CellInputs) -> float:
        meta = cell.dataset.meta
        scores = [mean_dice_present(p, g, len(meta.classes), meta.ignore_index)
                  for p, g in zip(preds, gts)]
        scores = [s for s in scores if not np.isnan(s)]
        return float(np.mean(scores)) if scores else 0.0

    def test_scores(self, preds: list[np.ndarray], gts: list[np.ndarray],
                    data: list[dict[str, Any]], cell: CellInputs) -> TestScores:
        from ssl_bench.metrics.volume import aggregate_organ_scores, volume_organ_scores

        spacings = []
        for item in data:
            if item.get("spacing") is None:
                raise SSLBenchError(
                    f"dataset {cell.dataset.meta.id!r}: volume {item['unit']!r} has no voxel "
                    "spacing; its reader must set UnitData.spacing (mm per row, col, slice)")
            row, col, slice_mm = item["spacing"]
            spacings.append((slice_mm, row, col))
        meta = cell.dataset.meta
        per_volume = [volume_organ_scores(p, g, s, len(meta.classes), meta.ignore_index)
                      for p, g, s in zip(preds, gts, spacings)]
        metrics, per_class = aggregate_organ_scores(per_volume, meta.classes)
        units = [str(item["unit"]) for item in data]
        per_unit = per_unit_values(units, [aggregate_organ_scores([v], meta.classes)[0]
                                           for v in per_volume])
        # mean_dice: per organ a mean over the volumes that contain it, then over organs
        parts = classwise_mean_parts({u: dice for u, (dice, _) in zip(units, per_volume)})
        return TestScores({k: float(v) for k, v in metrics.items()}, per_class, per_unit, parts)

    def evaluate(self, cell: CellInputs) -> TaskResult:
        return self.run_mask_task(cell)
