"""Tool presence detection metrics: average precision (AP) per tool and its mean (mAP).

Values are in percent (0-100). A video is a pair of arrays ``(T, K)``: scores (any real
numbers, higher = more likely present; logits are fine, AP only uses their order) and 0/1
ground truth for the K tools.

Definitions (facts from the sources below; the code here is our own):

* **AP of one tool** over a set of frames: the frames are ranked by score; at each distinct
  score ``s`` (a threshold) precision ``P(s)`` and recall ``R(s)`` count the frames with score
  ``>= s``; ``AP = sum_s (R(s) - R(s_prev)) * P(s)`` over the thresholds in decreasing order
  (the non-interpolated AP of scikit-learn's ``average_precision_score`` and torchmetrics'
  ``BinaryAveragePrecision`` with ``thresholds=None``, which the tests compare against).
* **Ties:** frames with equal scores form one threshold: they are admitted together, so the
  order among tied frames never matters. A constant score gives AP = the tool's prevalence
  (the chance level of AP).
* **A tool absent from the ground truth** of the frames scored (no positive frame) has an
  undefined AP: NaN, left out of every mean (ivtmetrics: "any nan value in results is for
  classes with no occurrence in the data sample").
* ``mAP`` (**video-wise**, the main score): AP of each tool in each video alone; per tool the
  mean over the videos where it is present; then the mean over the tools with a value.
  This is ivtmetrics' ``compute_video_AP`` (CAMMA-public/ivtmetrics ``recognition.py``,
  "recommended", the CholecT50 benchmark protocol, also SelfSupSurg's tool mAP on CholecT45
  in ``downstream_triplet/lib/evaluator.py``). It is a class-wise mean of per-video values, so
  it decomposes exactly over test videos (:func:`ssl_bench.unit_scores.classwise_mean_parts`).
* ``frame_mAP`` (**pooled**): AP of each tool over all test frames of all videos at once, then
  the mean over the tools with a value. This is how SelfSupSurg scores Cholec80 tool presence
  (``utils/model_helpers.py`` ``mAP``: scikit-learn ``average_precision_score`` over the
  concatenated test frames, per tool, then averaged), the protocol of the published Cholec80
  tool-presence figures (SelfSupSurg; EndoNet, Twinanda et al., IEEE TMI 2017, reports AP per
  tool on the test set). Reported alongside for comparison with those figures; it does not
  decompose over videos (a frame's rank depends on the
  other videos' frames), so it cannot be the main score of a per-unit bootstrap. SelfSupSurg
  divides the sum of the defined APs by the number of tools (all 7 tools occur in the Cholec80
  test videos, so this equals the NaN-excluding mean used here).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP (percent) of one binary label over ``(N,)`` scores; NaN when no label is positive.

    Tied scores are one threshold (see the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1).astype(bool)
    if scores.shape != positive.shape:
        raise ValueError(f"{scores.shape[0]} scores for {positive.shape[0]} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    n_positive = int(positive.sum())
    if n_positive == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    true_pos = np.cumsum(hits)
    # the last frame of each run of equal scores closes one threshold
    closes = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1]
    tp = true_pos[closes].astype(np.float64)
    precision = tp / (closes + 1)
    recall_gain = np.diff(np.r_[0.0, tp]) / n_positive
    return float(100.0 * np.sum(recall_gain * precision))


def tool_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) AP (percent) of each tool over ``(N, K)`` scores and 0/1 labels; NaN where a tool
    has no positive frame."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be (N, K) arrays "
                         "of one shape")
    return np.array([average_precision(scores[:, k], labels[:, k])
                     for k in range(scores.shape[1])], dtype=np.float64)


def nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Mean over the defined (not NaN) values; NaN where none is defined, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        out = np.asarray(np.nanmean(np.asarray(values, dtype=np.float64), axis=axis))
    return float(out) if out.ndim == 0 else out


def tool_metrics(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], names: Sequence[str]
                 ) -> tuple[dict[str, float], dict[str, dict[str, float]], np.ndarray]:
    """Metrics of the test videos: ``preds`` and ``gts`` are one ``(T_v, K)`` array per video.

    Returns ``(metrics, per_class, video_ap)``: ``metrics`` = ``mAP`` (video-wise) and
    ``frame_mAP`` (pooled); ``per_class`` = ``{"AP": {tool: video-wise AP},
    "frame_AP": {tool: pooled AP}}``; ``video_ap`` = the ``(videos, K)`` per-video APs (NaN where
    a tool is absent from a video) that the video-wise values average."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predicted videos for {len(gts)} ground-truth videos")
    k = len(names)
    per_tool: np.ndarray
    pooled: np.ndarray
    if not preds:
        nan = np.full(k, math.nan)
        video_ap, per_tool, pooled = np.zeros((0, k)), nan, nan
    else:
        video_ap = np.stack([tool_ap(p, g) for p, g in zip(preds, gts)])
        if video_ap.shape[1] != k:
            raise ValueError(f"{video_ap.shape[1]} tool columns for {k} tool names")
        per_tool = np.asarray(nanmean(video_ap, axis=0))
        pooled = tool_ap(np.concatenate(preds), np.concatenate(gts))
    metrics = {"mAP": float(nanmean(per_tool)), "frame_mAP": float(nanmean(pooled))}
    per_class = {"AP": {n: float(v) for n, v in zip(names, per_tool)},
                 "frame_AP": {n: float(v) for n, v in zip(names, pooled)}}
    return metrics, per_class, video_ap


__all__ = ["average_precision", "tool_ap", "tool_metrics", "nanmean"]
