"""Per-unit decompositions reproduce the aggregate metrics, by hand and through the metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_bench.metrics.segmentation import ConfusionMatrix, segmentation_metrics
from ssl_bench.metrics.volume import aggregate_organ_scores
from ssl_bench.unit_scores import (
    UnitParts,
    aggregate,
    check_parts,
    classwise_mean_parts,
    mean_parts,
    per_unit_values,
    pooled_parts,
)


def test_mean_parts_is_the_mean_and_drops_nan() -> None:
    parts = mean_parts({"a": 50.0, "b": 70.0, "c": math.nan})
    assert parts.value() == pytest.approx(60.0)
    # a resample that draws "a" twice and "b" once: (50 + 50 + 70) / 3
    assert parts.value(np.array([2, 1, 0])) == pytest.approx(170.0 / 3)
    # only the NaN unit drawn: undefined
    assert math.isnan(parts.value(np.array([0, 0, 3])))


def test_classwise_mean_parts_by_hand() -> None:
    # organ 1 in both volumes (80, 60), organ 2 only in v1 (40): (70 + 40) / 2 = 55
    parts = classwise_mean_parts({"v1": [80.0, 40.0], "v2": [60.0, math.nan]})
    assert parts.value() == pytest.approx(55.0)
    per_volume = [(np.array([80.0, 40.0]), np.array([1.0, 2.0])),
                  (np.array([60.0, np.nan]), np.array([3.0, np.nan]))]
    metrics, _ = aggregate_organ_scores(per_volume, ["bg", "o1", "o2"])
    assert metrics["mean_dice"] == pytest.approx(parts.value())
    # v2 alone: organ 2 absent -> the mean over organ 1 only
    assert parts.value(np.array([0, 1])) == pytest.approx(60.0)


def test_pooled_parts_equal_dataset_level_miou() -> None:
    rng = np.random.default_rng(0)
    units, matrices, total = [], [], ConfusionMatrix(4)
    for i in range(5):
        gt = rng.integers(0, 4, size=(6, 7))
        pred = np.where(rng.random((6, 7)) < 0.6, gt, rng.integers(0, 4, size=(6, 7)))
        cm = ConfusionMatrix(4)
        cm.update(pred, gt)
        total.update(pred, gt)
        units.append(f"u{i}")
        matrices.append(cm.matrix.astype(float))
    tp = np.stack([np.diag(m) for m in matrices])
    union = np.stack([m.sum(0) + m.sum(1) - np.diag(m) for m in matrices])
    parts = pooled_parts(units, 100 * tp, union)
    assert parts.value() == pytest.approx(segmentation_metrics(total.matrix, "abcd")[0]["miou"])
    # a resample with unit 0 twice equals the metric of the matrix with unit 0 added twice
    counts = np.array([2, 0, 1, 1, 0])
    resampled = 2 * matrices[0] + matrices[2] + matrices[3]
    assert parts.value(counts) == pytest.approx(segmentation_metrics(resampled, "abcd")[0]["miou"])


def test_aggregate_scores_many_resamples_at_once() -> None:
    parts = mean_parts({"a": 1.0, "b": 3.0})
    counts = np.array([[1, 1], [2, 0], [0, 2]])
    assert aggregate(parts.num, parts.den, counts) == pytest.approx([2.0, 1.0, 3.0])


def test_json_round_trip_and_checks() -> None:
    parts = classwise_mean_parts({"v1": [80.0, 40.0], "v2": [60.0, math.nan]})
    again = UnitParts.from_json(parts.to_json())
    assert again.units == parts.units and again.value() == pytest.approx(parts.value())
    check_parts(parts, 55.0, "mean_dice")
    with pytest.raises(ValueError, match="give 55"):
        check_parts(parts, 54.0, "mean_dice")
    with pytest.raises(ValueError, match="unique"):
        UnitParts(["a", "a"], np.zeros((2, 1)), np.ones((2, 1)))


def test_per_unit_values_transposes() -> None:
    out = per_unit_values(["a", "b"], [{"x": 1.0, "y": 2.0}, {"x": 3.0}])
    assert out["x"] == {"a": 1.0, "b": 3.0}
    assert out["y"]["a"] == 2.0 and math.isnan(out["y"]["b"])
