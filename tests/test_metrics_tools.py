"""Tool presence metrics: AP by hand (ties, absent tools, chance level), video-wise vs pooled
mAP by hand, their per-video parts, and a cross-check on random data against an exact rational
AP and torchmetrics' ``BinaryAveragePrecision`` (an independent implementation; torchmetrics
comes with lightly's pytorch-lightning)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from ssl_bench.metrics.tools import average_precision, tool_ap, tool_metrics
from ssl_bench.unit_scores import classwise_mean_parts


def test_ap_by_hand() -> None:
    # ranks 1..4: hit, miss, hit, miss -> P@1 = 1 at recall 1/2, P@3 = 2/3 at recall 1
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == \
        pytest.approx(100 * (0.5 * 1 + 0.5 * 2 / 3))
    assert average_precision(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0])) == 100.0
    assert average_precision(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0])) == \
        pytest.approx(100 / 3)
    assert average_precision(np.array([-1.0, 5.0]), np.array([1, 1])) == 100.0


def test_tied_scores_are_one_threshold() -> None:
    # the 0.5 block admits 3 frames at once (2 hits): P = 2/3 at recall 2/3; then P = 3/4 at 1
    scores, labels = np.array([0.5, 0.5, 0.5, 0.1]), np.array([1, 0, 1, 1])
    expected = 100 * (2 / 3 * 2 / 3 + 1 / 3 * 3 / 4)
    assert average_precision(scores, labels) == pytest.approx(expected)
    # the order of the tied frames does not matter
    assert average_precision(scores, np.array([0, 1, 1, 1])) == pytest.approx(expected)
    # a constant score gives the prevalence (the chance level)
    assert average_precision(np.zeros(5), np.array([1, 0, 0, 1, 0])) == pytest.approx(40.0)


def test_tool_absent_from_ground_truth_is_nan() -> None:
    assert math.isnan(average_precision(np.array([0.3, 0.2]), np.array([0, 0])))
    ap = tool_ap(np.array([[0.9, 0.1], [0.1, 0.9]]), np.array([[1, 0], [0, 0]]))
    assert ap[0] == 100.0 and math.isnan(ap[1])
    with pytest.raises(ValueError, match="finite"):
        average_precision(np.array([np.nan, 1.0]), np.array([1, 0]))


def test_video_wise_and_pooled_map_by_hand() -> None:
    # video A: tool 0 ranked first (AP 100), tool 1 absent (NaN)
    # video B: tool 0 ranked last of 3 (AP 100/3), tool 1 ranked first (AP 100)
    preds = [np.array([[3, 1], [2, 2], [1, 3]], float), np.array([[1, 0], [2, 0], [3, 5]], float)]
    gts = [np.array([[1, 0], [0, 0], [0, 0]]), np.array([[1, 0], [0, 0], [0, 1]])]
    names = ["grasper", "hook"]
    metrics, per_class, video_ap = tool_metrics(preds, gts, names)
    np.testing.assert_allclose(video_ap, [[100.0, np.nan], [100 / 3, 100.0]])
    assert per_class["AP"] == pytest.approx({"grasper": (100 + 100 / 3) / 2, "hook": 100.0})
    assert metrics["mAP"] == pytest.approx(((100 + 100 / 3) / 2 + 100) / 2)
    # pooled grasper: the score-3 block (1 hit of 2): P 1/2 at recall 1/2; the score-2 block
    # adds no hit; the score-1 block (1 hit): P 2/6 at recall 1
    pooled_grasper = 100 * (0.5 * 0.5 + 0.5 * 2 / 6)
    assert per_class["frame_AP"] == pytest.approx({"grasper": pooled_grasper, "hook": 100.0})
    assert metrics["frame_mAP"] == pytest.approx((pooled_grasper + 100) / 2)
    # the video-wise mAP is reproduced exactly by its per-video parts
    parts = classwise_mean_parts({"a": video_ap[0].tolist(), "b": video_ap[1].tolist()})
    assert parts.value() == pytest.approx(metrics["mAP"], rel=1e-12)
    # a bootstrap resample drawing video B twice: grasper (100 + 2 * 100/3) / 3, hook 100
    assert parts.value(np.array([1, 2])) == pytest.approx(((100 + 200 / 3) / 3 + 100) / 2)


def test_tool_absent_everywhere_is_left_out_of_the_mean() -> None:
    preds = [np.array([[0.9, 0.2], [0.1, 0.3]])]
    gts = [np.array([[1, 0], [0, 0]])]
    metrics, per_class, _ = tool_metrics(preds, gts, ["a", "b"])
    assert math.isnan(per_class["AP"]["b"]) and math.isnan(per_class["frame_AP"]["b"])
    assert metrics == {"mAP": 100.0, "frame_mAP": 100.0}
    empty, _, _ = tool_metrics([], [], ["a"])
    assert math.isnan(empty["mAP"]) and math.isnan(empty["frame_mAP"])


def _exact_ap(scores: list[int], labels: list[int]) -> Fraction:
    """AP (percent) as an exact fraction, straight from the definition: for each distinct score
    ``s``, highest first, the frames with score ``>= s`` are admitted together; the recall gained
    there times the precision of the admitted frames, summed. Integer scores keep ties exact."""
    positives = sum(labels)
    ap, hits_before = Fraction(0), 0
    for threshold in sorted(set(scores), reverse=True):
        admitted = [label for score, label in zip(scores, labels) if score >= threshold]
        hits = sum(admitted)
        ap += Fraction(hits - hits_before, positives) * Fraction(hits, len(admitted))
        hits_before = hits
    return 100 * ap


@pytest.mark.parametrize("seed", range(5))
def test_matches_torchmetrics(seed: int) -> None:
    from torchmetrics.classification import BinaryAveragePrecision

    rng = np.random.default_rng(seed)
    n, k = 200, 7
    labels = (rng.uniform(size=(n, k)) < rng.uniform(0.05, 0.7, size=k)).astype(np.int64)
    # scores correlated with the labels, rounded to one decimal: many ties
    scores = np.round(labels * rng.uniform(0, 1.5) + rng.normal(size=(n, k)), 1)
    # the same scores as integers (tenths): equal integers <=> equal scores, so ties are exact
    tenths = np.rint(10 * scores).astype(np.int64)
    np.testing.assert_array_equal(tenths / 10, scores)
    assert np.all(labels.sum(axis=0) > 0)
    ours = tool_ap(scores, labels)
    # torchmetrics gets the scores as exact dyadic fractions in [0, 1] (same order, same ties):
    # inside [0, 1] it applies no sigmoid, whose CPU kernels can round equal inputs differently
    # and so split a tie
    span = int(tenths.max() - tenths.min())
    assert span < 1024
    unit_scores = (tenths - tenths.min()) / 1024.0
    tie_sensitive = 0
    for t in range(k):
        column, truth = tenths[:, t].tolist(), labels[:, t].tolist()
        exact = _exact_ap(column, truth)
        # float64 there: a few roundings per threshold, at most n thresholds
        assert ours[t] == pytest.approx(float(exact), rel=1e-12, abs=0)
        binary = BinaryAveragePrecision(thresholds=None)(
            torch.from_numpy(unit_scores[:, t]), torch.from_numpy(labels[:, t]))
        # float32 there (counts, precision, recall and their sum): 2**-24 per rounding over at
        # most n thresholds; the differences that matter (a tie split) are ~1e-4 relative
        assert ours[t] == pytest.approx(100 * float(binary), rel=1e-5, abs=0)
        # ranking tied frames one by one (by index) gives another AP on these data: a metric
        # that ignored ties would fail the comparison above
        one_by_one = _exact_ap([n * score - i for i, score in enumerate(column)], truth)
        tie_sensitive += one_by_one != exact
    assert tie_sensitive > 0
    if seed == 1:
        # measured on AMD EPYC and Intel Xeon alike
        assert round(float(ours[5]), 4) == 53.1128
