"""Organ metrics: Dice / HD95 on tiny hand-made volumes with anisotropic spacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ssl_bench.metrics.volume import (
    binary_dice_hd95,
    field_of_view_diagonal,
    organ_metrics,
    volume_organ_scores,
)

SPACING = (3.0, 1.0, 0.5)  # mm along axes 0, 1, 2
SHAPE = (8, 8, 8)
NAMES = ["background", "spleen", "kidney", "liver"]


def _box(lo: tuple[int, int, int], hi: tuple[int, int, int], shape=SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return mask


def test_cube_shifted_along_the_coarse_axis() -> None:
    # 2x2x2 cubes (every voxel is a surface voxel), shifted by 1 voxel = 3 mm along axis 0:
    # half of each cube's voxels are at distance 0, half at 3 mm -> HD95 = 3 mm; Dice = 2*4/16
    gt = _box((2, 2, 2), (4, 4, 4))
    pred = _box((3, 2, 2), (5, 4, 4))
    dice, hd95 = binary_dice_hd95(pred, gt, SPACING)
    assert dice == pytest.approx(50.0)
    assert hd95 == pytest.approx(3.0)


def test_cube_shifted_along_the_fine_axis() -> None:
    # shifted by 2 voxels = 1 mm along axis 2: no overlap; distances 0.5 mm (x4) and 1 mm (x4)
    gt = _box((2, 2, 2), (4, 4, 4))
    pred = _box((2, 2, 4), (4, 4, 6))
    dice, hd95 = binary_dice_hd95(pred, gt, SPACING)
    assert dice == 0.0
    assert hd95 == pytest.approx(1.0)


def test_hd95_interpolates_the_95th_percentile() -> None:
    # pred = the GT voxel plus one voxel 2 steps away along axis 2 (1 mm): directed distances
    # pred -> gt are [0, 1] mm, whose 95th percentile (linear) is 0.95 mm; gt -> pred is [0]
    gt = _box((4, 4, 4), (5, 5, 5))
    pred = gt | _box((4, 4, 6), (5, 5, 7))
    dice, hd95 = binary_dice_hd95(pred, gt, SPACING)
    assert dice == pytest.approx(100 * 2 / 3)
    assert hd95 == pytest.approx(0.95, abs=1e-5)


def test_missed_organ_gets_zero_dice_and_the_diagonal() -> None:
    gt = _box((2, 2, 2), (4, 4, 4))
    dice, hd95 = binary_dice_hd95(np.zeros(SHAPE, dtype=bool), gt, SPACING)
    assert dice == 0.0
    assert hd95 == pytest.approx(math.sqrt(24.0**2 + 8.0**2 + 4.0**2))
    assert field_of_view_diagonal(SHAPE, SPACING) == pytest.approx(math.sqrt(656.0))


def _brute_force_hd95(pred: np.ndarray, gt: np.ndarray, spacing) -> float:
    def surface(mask: np.ndarray) -> np.ndarray:
        return np.argwhere(mask & ~ndimage.binary_erosion(mask)) * np.asarray(spacing)

    sp, sg = surface(pred), surface(gt)
    pairwise = np.linalg.norm(sp[:, None, :] - sg[None, :, :], axis=-1)
    return max(np.percentile(pairwise.min(axis=1), 95), np.percentile(pairwise.min(axis=0), 95))


def test_hd95_matches_brute_force_on_random_blobs_touching_the_border() -> None:
    rng = np.random.default_rng(0)
    spacing = (2.5, 0.7, 1.3)
    for _ in range(3):
        gt = ndimage.binary_dilation(rng.random((9, 10, 11)) < 0.05, iterations=1)
        pred = ndimage.binary_dilation(rng.random((9, 10, 11)) < 0.05, iterations=1)
        _, hd95 = binary_dice_hd95(pred, gt, spacing)
        assert hd95 == pytest.approx(_brute_force_hd95(pred, gt, spacing), rel=1e-4)


def _two_volumes():
    # volume A (SHAPE, SPACING): spleen = shifted cube, kidney missed, liver absent from GT
    # (but falsely predicted: ignored)
    gt_a = np.zeros(SHAPE, dtype=np.int64)
    pred_a = np.zeros(SHAPE, dtype=np.int64)
    gt_a[_box((2, 2, 2), (4, 4, 4))] = 1
    pred_a[_box((3, 2, 2), (5, 4, 4))] = 1
    gt_a[_box((6, 6, 6), (8, 8, 8))] = 2
    pred_a[_box((0, 6, 0), (1, 8, 2))] = 3
    # volume B (other shape and spacing): spleen perfect, kidney absent, liver = voxel + outlier
    shape_b, spacing_b = (6, 7, 8), (1.0, 1.0, 0.5)
    gt_b = np.zeros(shape_b, dtype=np.int64)
    gt_b[_box((1, 1, 1), (3, 3, 3), shape_b)] = 1
    pred_b = gt_b.copy()
    gt_b[4, 4, 4] = 3
    pred_b[4, 4, 4] = 3
    pred_b[4, 4, 6] = 3
    return [pred_a, pred_b], [gt_a, gt_b], [SPACING, spacing_b]


def test_volume_organ_scores_nan_for_absent_organs() -> None:
    preds, gts, spacings = _two_volumes()
    dice, hd95 = volume_organ_scores(preds[0], gts[0], spacings[0], num_classes=4)
    assert dice[:2] == pytest.approx([50.0, 0.0])
    assert hd95[:2] == pytest.approx([3.0, math.sqrt(656.0)])
    assert math.isnan(dice[2]) and math.isnan(hd95[2])


def test_organ_metrics_two_volumes_by_hand() -> None:
    preds, gts, spacings = _two_volumes()
    metrics, per_class = organ_metrics(preds, gts, spacings, NAMES)
    assert set(per_class["dice"]) == {"spleen", "kidney", "liver"}
    assert per_class["dice"]["spleen"] == pytest.approx((50.0 + 100.0) / 2)
    assert per_class["hd95"]["spleen"] == pytest.approx((3.0 + 0.0) / 2)
    assert per_class["dice"]["kidney"] == 0.0
    assert per_class["hd95"]["kidney"] == pytest.approx(math.sqrt(656.0))
    assert per_class["dice"]["liver"] == pytest.approx(100 * 2 / 3)
    assert per_class["hd95"]["liver"] == pytest.approx(0.95, abs=1e-5)
    assert metrics["mean_dice"] == pytest.approx((75.0 + 0.0 + 200 / 3) / 3)
    assert metrics["mean_hd95"] == pytest.approx((1.5 + math.sqrt(656.0) + 0.95) / 3, abs=1e-5)


def test_ignore_index_voxels_are_not_scored() -> None:
    gt = np.zeros(SHAPE, dtype=np.int64)
    gt[_box((2, 2, 2), (4, 4, 4))] = 1
    pred = gt.copy()
    gt[0] = 255
    pred[0] = 1  # predictions under ignored voxels do not count
    dice, hd95 = volume_organ_scores(pred, gt, SPACING, num_classes=2)
    assert dice.tolist() == [100.0] and hd95.tolist() == [0.0]


def test_invalid_inputs_raise() -> None:
    gt = np.zeros(SHAPE, dtype=np.int64)
    with pytest.raises(ValueError, match="outside"):
        volume_organ_scores(gt + 4, gt, SPACING, num_classes=4)
    with pytest.raises(ValueError, match="equal shape"):
        volume_organ_scores(gt[:4], gt, SPACING, num_classes=4)
    with pytest.raises(ValueError, match="spacing"):
        volume_organ_scores(gt, gt, (1.0, 1.0), num_classes=4)
    with pytest.raises(ValueError, match="spacings"):
        organ_metrics([gt], [gt], [], NAMES)
