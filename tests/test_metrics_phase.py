"""Phase metrics: hand-computed videos for the strict, corrected-relaxed and MATLAB modes, plus a
frame-by-frame re-implementation of the boundary rules checked on random videos."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_bench.metrics.phase import (
    CHOLEC80_RELAXED_GROUPS,
    M2CAI16_RELAXED_GROUPS,
    boundary_frames,
    gt_runs,
    matlab_aggregate,
    phase_metrics,
    relaxed_diff,
    relaxed_video_scores,
    strict_video_scores,
)

A = np.array


def test_boundary_frames_rounds_half_up_and_is_at_least_one() -> None:
    assert boundary_frames(10.0, 1.0) == 10
    assert boundary_frames(10.0, 25.0) == 250
    assert boundary_frames(1.5, 1.0) == 2  # half up, not banker's rounding
    assert boundary_frames(0.01, 1.0) == 1


def test_gt_runs_are_connected_components() -> None:
    gt = A([2, 2, 0, 2, 1, 1, 2])
    assert gt_runs(gt, 2) == [(0, 2), (3, 4), (6, 7)]
    assert gt_runs(gt, 1) == [(4, 6)]
    assert gt_runs(gt, 5) == []


# One video with three runs, window t = 3 (boundary_s = 3 at 1 fps):
#   phase 1 (general), len 6: diff [1, -1, 0, 0, 1, 1]
#   phase 3 (group A), len 5: diff [-1, 2, 1, -2, 2]   (len < 2t: the windows overlap)
#   phase 5 (group B), len 4: diff [-2, -1, -3, 1]
QUIRK_GT = A([1] * 6 + [3] * 5 + [5] * 4)
QUIRK_PRED = A([2, 0, 1, 1, 2, 2] + [2, 5, 4, 1, 5] + [3, 4, 2, 6])


def test_relaxed_diff_corrected_relaxes_true_last_frames() -> None:
    got = relaxed_diff(QUIRK_PRED, QUIRK_GT, 7, fps=1.0, boundary_s=3.0, matlab_compat=False)
    expected = [1, 0, 0, 0, 0, 0] + [0, 2, 0, -2, 0] + [0, 0, -3, 0]
    assert got.tolist() == expected


def test_relaxed_diff_matlab_misapplies_last_window_to_first_frames() -> None:
    got = relaxed_diff(QUIRK_PRED, QUIRK_GT, 7, fps=1.0, boundary_s=3.0, matlab_compat=True)
    # general: last-3 [0, 1, 1] -> mask [F, T, T] zeroes positions 1, 2; the real tail stays
    # group A: after late step [0, 2, 1, -2, 2]; last-3 [1, -2, 2] -> mask [T, F, T] -> pos 0, 2
    # group B: after late step [0, 0, -3, 1]; last-3 [0, -3, 1] -> mask [F, F, T] -> pos 2
    expected = [1, 0, 0, 0, 1, 1] + [0, 2, 0, -2, 2] + [0, 0, 0, 1]
    assert got.tolist() == expected


def test_groups_follow_the_given_ids() -> None:
    # phase 3 is group A for Cholec80 (+2 relaxed at the end) but general for M2CAI16.
    gt = A([3, 3, 3, 3])
    pred = A([3, 3, 3, 5])
    chole = relaxed_diff(pred, gt, 8, 1.0, CHOLEC80_RELAXED_GROUPS, boundary_s=2.0)
    m2cai = relaxed_diff(pred, gt, 8, 1.0, M2CAI16_RELAXED_GROUPS, boundary_s=2.0)
    assert chole.tolist() == [0, 0, 0, 0]
    assert m2cai.tolist() == [0, 0, 0, 2]


def _naive_relaxed_diff(pred, gt, groups, t_max, matlab):  # frame-by-frame restatement
    diff = (pred - gt).tolist()
    out = list(diff)
    n = len(gt)
    i = 0
    while i < n:
        j = i
        while j < n and gt[j] == gt[i]:
            j += 1
        phase, length = int(gt[i]), j - i
        t = min(t_max, length)
        late = {-1, -2} if phase in groups[1] else {-1}
        early = {1, 2} if phase in groups[0] + groups[1] else {1}
        for k in range(length):
            value = diff[i + k]
            if k < t and value in late:
                out[i + k] = 0
            if not matlab and k >= length - t and value in early:
                out[i + k] = 0
            if matlab and k < t and diff[i + length - t + k] in early:
                out[i + k] = 0
        i = j
    return out


@pytest.mark.parametrize("matlab", [False, True])
def test_relaxed_diff_matches_frame_by_frame_rules_on_random_videos(matlab: bool) -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        lengths = rng.integers(1, 9, size=rng.integers(1, 8))
        gt = np.concatenate([np.full(n, rng.integers(0, 7)) for n in lengths])
        pred = np.where(rng.random(gt.size) < 0.5, gt, rng.integers(0, 7, size=gt.size))
        got = relaxed_diff(pred, gt, 7, fps=1.0, boundary_s=3.0, matlab_compat=matlab)
        assert got.tolist() == _naive_relaxed_diff(pred, gt, CHOLEC80_RELAXED_GROUPS, 3, matlab)


# Video 1: gt = six frames of phase 0 then six of phase 1; window 3.
V1_GT = A([0] * 6 + [1] * 6)
V1_PRED = A([0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1])
# Video 2: perfect, phases 0 and 2.
V2_GT = A([0, 0, 2, 2])
V2_PRED = V2_GT.copy()


def test_strict_video_scores_by_hand() -> None:
    s = strict_video_scores(V1_PRED, V1_GT, 7)
    assert s.accuracy == pytest.approx(100 * 9 / 12)
    # phase 0: tp 4, pred 5, gt 6, union 7; phase 1: tp 5, pred 7, gt 6, union 8
    assert s.precision[:2] == pytest.approx([80.0, 100 * 5 / 7])
    assert s.recall[:2] == pytest.approx([100 * 4 / 6, 100 * 5 / 6])
    assert s.jaccard[:2] == pytest.approx([100 * 4 / 7, 100 * 5 / 8])
    p, r = 4 / 5, 4 / 6
    assert s.f1[0] == pytest.approx(100 * 2 * p * r / (p + r))
    assert np.isnan(s.jaccard[2:]).all()


def test_relaxed_video_scores_corrected_by_hand() -> None:
    s = relaxed_video_scores(V1_PRED, V1_GT, 7, fps=1.0, boundary_s=3.0)
    # updated diff is all 0: accuracy 100; tp counted over predicted frames
    assert s.accuracy == pytest.approx(100.0)
    assert s.precision[:2] == pytest.approx([100.0, 100.0])
    # phase 1: tp 7 > 6 GT frames -> recall 116.7, clipped to 100
    assert s.recall[:2] == pytest.approx([100 * 5 / 6, 100.0])
    assert s.jaccard[:2] == pytest.approx([100 * 5 / 7, 100 * 7 / 8])
    assert s.f1[:2] == pytest.approx([100 * 2 * (5 / 6) / (1 + 5 / 6), 100.0])


def test_relaxed_video_scores_matlab_by_hand() -> None:
    s = relaxed_video_scores(V1_PRED, V1_GT, 7, fps=1.0, boundary_s=3.0, matlab_compat=True)
    # quirk (a): frames 4, 5 (early transition 0 -> 1) stay wrong; frame 6 is relaxed
    assert s.accuracy == pytest.approx(100 * 10 / 12)
    # phase 0: U = 0..6, tp 5; phase 1: U = 4..11, tp 6 (quirk (b): counted over U)
    assert s.jaccard[:2] == pytest.approx([100 * 5 / 7, 100 * 6 / 8])
    assert s.precision[:2] == pytest.approx([100.0, 100 * 6 / 7])
    assert s.recall[:2] == pytest.approx([100 * 5 / 6, 100.0])
    assert np.isnan(s.f1).all()


def test_never_predicted_phase_matlab_inf_clipped_and_corrected_zero() -> None:
    gt = A([0, 0, 0, 1, 1, 1])
    pred = A([0, 0, 0, 0, 0, 0])  # phase 1 is fully relaxed (late transition, t = 3)
    raw = relaxed_video_scores(pred, gt, 2, fps=1.0, boundary_s=3.0, matlab_compat=True)
    assert math.isinf(raw.precision[1]) and raw.recall[1] == pytest.approx(100.0)
    assert raw.recall[0] == pytest.approx(200.0)  # 6 relaxed-correct frames over 3 GT frames
    summary = matlab_aggregate([raw])
    assert summary.per_phase_precision.tolist() == [100.0, 100.0]
    assert summary.per_phase_recall.tolist() == [100.0, 100.0]
    corrected = relaxed_video_scores(pred, gt, 2, fps=1.0, boundary_s=3.0)
    assert corrected.precision.tolist() == [100.0, 0.0]
    assert corrected.recall.tolist() == [100.0, 0.0]
    assert corrected.jaccard.tolist() == [100.0, 0.0]
    assert corrected.f1.tolist() == [100.0, 0.0]


def test_phase_metrics_two_videos_by_hand() -> None:
    metrics, per_class = phase_metrics(
        [V1_PRED, V2_PRED], [V1_GT, V2_GT], num_phases=7, fps=1.0, boundary_s=3.0
    )

    def mean2(a: float, b: float) -> float:
        return (a + b) / 2

    # strict: per video nanmean over GT phases, then mean over videos
    assert metrics["accuracy"] == pytest.approx(mean2(75.0, 100.0))
    assert metrics["accuracy_std"] == pytest.approx(12.5)
    assert metrics["precision"] == pytest.approx(mean2(mean2(80.0, 500 / 7), 100.0))
    assert metrics["recall"] == pytest.approx(mean2(mean2(400 / 6, 500 / 6), 100.0))
    assert metrics["jaccard"] == pytest.approx(mean2(mean2(400 / 7, 62.5), 100.0))
    f1_0 = 100 * 2 * 0.8 * (4 / 6) / (0.8 + 4 / 6)
    f1_1 = 100 * 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)
    assert metrics["f1"] == pytest.approx(mean2(mean2(f1_0, f1_1), 100.0))
    # corrected relaxed
    assert metrics["relaxed_accuracy"] == pytest.approx(100.0)
    assert metrics["relaxed_accuracy_std"] == pytest.approx(0.0)
    assert metrics["relaxed_precision"] == pytest.approx(100.0)
    assert metrics["relaxed_recall"] == pytest.approx(mean2(mean2(500 / 6, 100.0), 100.0))
    assert metrics["relaxed_jaccard"] == pytest.approx(mean2(mean2(500 / 7, 87.5), 100.0))
    relaxed_f1_0 = 100 * 2 * (5 / 6) / (1 + 5 / 6)
    assert metrics["relaxed_f1"] == pytest.approx(mean2(mean2(relaxed_f1_0, 100.0), 100.0))
    # matlab: per phase nanmean over videos, then mean over phases 0, 1, 2
    assert metrics["matlab_accuracy"] == pytest.approx(mean2(1000 / 12, 100.0))
    assert metrics["matlab_accuracy_std"] == pytest.approx((100 - 1000 / 12) / math.sqrt(2))
    assert metrics["matlab_jaccard"] == pytest.approx((mean2(500 / 7, 100.0) + 75.0 + 100.0) / 3)
    assert metrics["matlab_precision"] == pytest.approx((100.0 + 600 / 7 + 100.0) / 3)
    assert metrics["matlab_recall"] == pytest.approx((mean2(500 / 6, 100.0) + 100.0 + 100.0) / 3)
    # per class: nanmean over videos, NaN for phases never in GT
    assert per_class["f1"]["0"] == pytest.approx(mean2(f1_0, 100.0))
    assert per_class["f1"]["1"] == pytest.approx(f1_1)
    assert per_class["jaccard"]["2"] == pytest.approx(100.0)
    assert per_class["relaxed_jaccard"]["1"] == pytest.approx(87.5)
    assert math.isnan(per_class["f1"]["6"])
    assert set(per_class["f1"]) == {str(p) for p in range(7)}


def test_phase_metrics_without_groups_omits_relaxed_keys() -> None:
    metrics, per_class = phase_metrics([V1_PRED], [V1_GT], 7, fps=1.0, relaxed_groups=None)
    assert set(metrics) == {"accuracy", "accuracy_std", "precision", "recall", "jaccard", "f1"}
    assert set(per_class) == {"f1", "jaccard"}


def test_perfect_prediction_scores_100_everywhere() -> None:
    rng = np.random.default_rng(1)
    gts = [np.repeat(rng.permutation(7), rng.integers(1, 30, size=7)) for _ in range(3)]
    metrics, _ = phase_metrics(gts, [g.copy() for g in gts], 7, fps=1.0)
    for key, value in metrics.items():
        expected = 0.0 if key.endswith("_std") else 100.0
        assert value == pytest.approx(expected), key


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="equal length"):
        strict_video_scores(A([0, 1]), A([0]), 2)
    with pytest.raises(ValueError, match="outside"):
        strict_video_scores(A([0, 7]), A([0, 1]), 7)
    with pytest.raises(ValueError, match="integer"):
        strict_video_scores(A([0.0, 1.0]), A([0, 1]), 2)
    with pytest.raises(ValueError, match="predictions"):
        phase_metrics([V1_PRED], [V1_GT, V2_GT], 7, fps=1.0)
