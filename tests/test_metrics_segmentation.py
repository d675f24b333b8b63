"""Segmentation metrics: a hand-computed confusion matrix; a cross-check against mmseg IoUMetric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssl_bench.metrics.segmentation import ConfusionMatrix, segmentation_metrics

NAMES = ["bg", "tool", "absent", "false_positive"]


def _hand_example() -> ConfusionMatrix:
    gt = np.array([[0, 0, 1, 255], [0, 1, 1, 255]])
    pred = np.array([[0, 1, 1, 0], [3, 1, 0, 1]])  # predictions under 255 are ignored
    cm = ConfusionMatrix(num_classes=4, ignore_index=255)
    cm.update(torch.from_numpy(pred), torch.from_numpy(gt))  # tensors are accepted
    return cm


def test_confusion_matrix_by_hand() -> None:
    cm = _hand_example()
    assert cm.matrix.dtype == np.int64
    assert cm.matrix.tolist() == [[1, 1, 0, 1], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_segmentation_metrics_by_hand() -> None:
    metrics, per_class = segmentation_metrics(_hand_example().matrix, NAMES)
    # bg: tp 1, gt 3, pred 2; tool: tp 2, gt 3, pred 3; absent: nothing; false_positive: pred 1
    assert per_class["iou"]["bg"] == pytest.approx(25.0)
    assert per_class["iou"]["tool"] == pytest.approx(50.0)
    assert math.isnan(per_class["iou"]["absent"]) and math.isnan(per_class["dice"]["absent"])
    assert per_class["iou"]["false_positive"] == 0.0
    assert per_class["dice"]["bg"] == pytest.approx(40.0)
    assert per_class["dice"]["tool"] == pytest.approx(200 / 3)
    assert metrics["miou"] == pytest.approx((25.0 + 50.0 + 0.0) / 3)
    assert metrics["mdice"] == pytest.approx((40.0 + 200 / 3 + 0.0) / 3)
    assert metrics["aacc"] == pytest.approx(50.0)  # 3 of 6 kept pixels
    assert metrics["macc"] == pytest.approx((100 / 3 + 200 / 3) / 2)  # only classes with GT


def test_update_accumulates_and_accepts_leading_dims() -> None:
    cm = ConfusionMatrix(3)
    batch = np.zeros((2, 1, 4, 4), dtype=np.int64)
    cm.update(batch, batch)
    cm.update(batch[0], batch[0] + 1)
    assert cm.matrix[0, 0] == 32 and cm.matrix[1, 0] == 16 and cm.matrix.sum() == 48


def test_out_of_range_labels_raise() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="pred holds class ids"):
        cm.update(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="gt holds class ids"):
        cm.update(np.array([0, 1]), np.array([0, 7]))
    with pytest.raises(ValueError, match="shapes differ"):
        cm.update(np.array([0, 1]), np.array([0]))


def test_matches_mmseg_iou_metric_on_random_images() -> None:
    from mmseg.evaluation import IoUMetric

    rng = np.random.default_rng(0)
    num_classes = 6  # class 5 never appears in GT or predictions
    names = tuple(f"c{i}" for i in range(num_classes))
    ours = ConfusionMatrix(num_classes, ignore_index=255)
    reference = IoUMetric(ignore_index=255, iou_metrics=["mIoU", "mDice"])
    reference.dataset_meta = {"classes": names}
    for _ in range(5):
        gt = rng.integers(0, 5, size=(17, 23))
        gt[rng.random(gt.shape) < 0.1] = 255
        # a prediction that agrees with the GT often, otherwise random in 0..4
        noise = rng.integers(0, 5, size=gt.shape)
        pred = np.where((rng.random(gt.shape) < 0.6) & (gt != 255), gt, noise)
        ours.update(pred, gt)
        sample = {
            "pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
            "gt_sem_seg": {"data": torch.from_numpy(gt)[None]},
        }
        reference.process({}, [sample])
    expected = reference.compute_metrics(reference.results)
    metrics, per_class = segmentation_metrics(ours.matrix, names)
    assert metrics["miou"] == pytest.approx(float(expected["mIoU"]), abs=0.01)
    assert metrics["mdice"] == pytest.approx(float(expected["mDice"]), abs=0.01)
    assert metrics["aacc"] == pytest.approx(float(expected["aAcc"]), abs=0.01)
    assert metrics["macc"] == pytest.approx(float(expected["mAcc"]), abs=0.01)
    assert math.isnan(per_class["iou"]["c5"])
    assert 20.0 < metrics["miou"] < 90.0  # the example is neither trivial nor degenerate
