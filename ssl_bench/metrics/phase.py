"""Surgical phase recognition metrics: strict, relaxed-boundary (corrected) and MATLAB-compatible.

All values are in percent (0-100). Phase ids are 0-based. Every function takes one video as a
pair of int arrays ``(T,)`` (prediction, ground truth) sampled at ``fps`` frames per second.

Sources (facts only; the code here is our own):

- Official Cholec80 / M2CAI16 evaluation, stored in YuemingJin/TMRNet
  ``code/eval/result/matlab-eval/Evaluate.m`` and ``code/eval/matlab-phase/code/Main.m``
  (``Evaluate_m2cai.m`` / ``Main_m2cai.m`` for M2CAI16: groups shifted by one phase).
- SelfSupSurg's Python port ``compute_phase_relaxed_scores`` (boundary_size = 10 frames at
  1 fps, aggregation ``video_relaxed``) in its ``utils/generate_test_results.py``.
- Funke et al., "Metrics Matter in Surgical Phase Recognition", arXiv 2305.13961, which surveys
  these inconsistencies.

The relaxed boundary (both relaxed modes)
-----------------------------------------
``diff = pred - gt`` and ``T = round(boundary_s * fps)`` frames (round half up, at least 1).
For each phase p and each connected run ``[s, e)`` of ``gt == p`` (each run separately, as
MATLAB ``bwconncomp`` does on a 1-D signal) let ``cur = diff[s:e]`` and ``t = min(T, e - s)``:

- p in group A (``relaxed_groups[0]``, Cholec80 (3, 4) = GallbladderDissection and
  GallbladderPackaging): -1 in the first t frames -> 0 (late transition);
  +1 or +2 in the last t frames -> 0 (early transition);
- p in group B (``relaxed_groups[1]``, Cholec80 (5, 6) = CleaningCoagulation and
  GallbladderRetraction): -1 or -2 in the first t frames -> 0; +1 or +2 in the last t -> 0;
- any other phase: -1 in the first t frames -> 0; +1 in the last t frames -> 0.

The late-transition step runs first, the early-transition step reads ``cur`` after it (as in
Evaluate.m). The relaxed diff is ``updated[s:e] = cur``; a frame is "correct" iff
``updated == 0``. Relaxed accuracy = ``100 * #(updated == 0) / N``.

Mode ``matlab_compat=False`` ("corrected", the SelfSupSurg port)
----------------------------------------------------------------
- the early-transition relaxation applies to the TRUE last t frames of the run;
- ``tp = #{i : pred[i] == p and updated[i] == 0}`` (counted over predicted-p frames only),
  ``P = 100 tp / #(pred == p)``, ``R = 100 tp / #(gt == p)``,
  ``J = 100 tp / #(pred == p or gt == p)``,
  ``F1 = 2 P R / (P + R)``;
- phases absent from the video's GT are NaN. A phase present in GT but never predicted has
  P = 0 (the port divides 0/0 -> NaN, which nanmean would silently drop; we score it 0, as
  sklearn's ``zero_division=0`` does); F1 = 0 when P + R = 0;
- R can exceed 100 (relaxed frames of a neighbouring phase predicted as p count in tp), so R is
  clipped at 100 as Main.m does; P <= 100 and J <= 100 by construction. F1 uses the clipped R.
  (The port does not clip; this only matters in degenerate videos.)
- aggregation: per video nanmean over phases, then mean over videos; ``*_std`` keys are the
  std over videos of the per-video value (``np.std``, ddof = 0, as the port).

Mode ``matlab_compat=True`` (Evaluate.m + Main.m, quirks reproduced)
--------------------------------------------------------------------
- quirk (a): MATLAB ``cur(cur(end-t+1:end)==1)=0`` indexes ``cur`` with a length-t logical mask,
  so it zeroes position ``j`` of the FIRST t frames wherever ``cur[len-t+j]`` (after the
  late-transition step) holds an early-transition value. This is reproduced exactly; it is the
  true early-transition rule only when ``len == t``;
- quirk (b): ``tp = #{i in U : updated[i] == 0}`` with ``U = {pred == p} or {gt == p}``;
  ``J = 100 tp / |U|``, ``P = 100 tp / #(pred == p)``, ``R = 100 tp / #(gt == p)``. P and R can
  exceed 100 and P is ``inf`` (tp > 0) or NaN (tp = 0) when p is never predicted, exactly as
  Evaluate.m's division; :func:`relaxed_video_scores` returns these raw values;
- aggregation (Main.m): J, P, R values > 100 (and inf) are clipped to 100; per phase nanmean over
  videos; the reported J/P/R is the mean over phases of those per-phase means (we use nanmean over
  phases; Main.m uses ``mean`` for J and R, which differs only when a phase is absent from every
  video, where Main.m reports NaN). Accuracy is the mean over videos and its std is MATLAB's
  ``std`` (ddof = 1; 0 for a single video). Main.m also reports the std of J/P/R ACROSS PHASES;
  :func:`matlab_aggregate` returns it. No F1.

Strict (non-relaxed) metrics
----------------------------
Per video: accuracy = ``100 * #(pred == gt) / N``; per phase p present in the video's GT:
``P = 100 tp / #(pred == p)`` (0 when never predicted), ``R = 100 tp / #(gt == p)``,
``J = 100 tp / #(pred == p or gt == p)``, ``F1 = 2PR/(P+R)`` (0 when P + R = 0) with
``tp = #(pred == p and gt == p)``; phases absent from the video's GT are NaN and excluded
(predicting such a phase is still penalised through the recall and Jaccard of the true phase of
those frames). The per-video value of each metric is the
nanmean over phases; the reported value is the mean over videos (``*_std``: std over videos,
ddof = 0). This differs from SelfSupSurg's ``video`` aggregation (sklearn macro over the phases
present in GT *or* prediction) only in which phases are averaged.

Per-class output
----------------
``per_class["f1"|"jaccard"|"relaxed_jaccard"][str(p)]`` is the nanmean over videos of the
per-video value of phase p (strict F1, strict Jaccard, corrected relaxed Jaccard); NaN when p is
absent from every video's GT.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PhaseGroups = tuple[tuple[int, ...], tuple[int, ...]]

CHOLEC80_RELAXED_GROUPS: PhaseGroups = ((3, 4), (5, 6))
M2CAI16_RELAXED_GROUPS: PhaseGroups = ((4, 5), (6, 7))


@dataclass(frozen=True)
class VideoScores:
    """Scores of one video. Per-phase arrays have shape ``(num_phases,)``; NaN marks a phase
    absent from the video's ground truth. ``f1`` is all-NaN for the MATLAB mode (Evaluate.m has
    no F1)."""

    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    jaccard: np.ndarray
    f1: np.ndarray


@dataclass(frozen=True)
class MatlabSummary:
    """Main.m's summary: means over phases (of per-phase nanmeans over videos) with their std
    across phases, and accuracy mean/std over videos. ``per_phase_*`` have shape (num_phases,)."""

    accuracy: float
    accuracy_std: float
    jaccard: float
    jaccard_std: float
    precision: float
    precision_std: float
    recall: float
    recall_std: float
    per_phase_jaccard: np.ndarray
    per_phase_precision: np.ndarray
    per_phase_recall: np.ndarray


def boundary_frames(boundary_s: float, fps: float) -> int:
    """The relaxed window in frames: ``boundary_s * fps`` rounded half up, at least 1."""
    if boundary_s <= 0 or fps <= 0:
        raise ValueError(f"boundary_s and fps must be > 0, got boundary_s={boundary_s}, fps={fps}")
    return max(1, int(math.floor(boundary_s * fps + 0.5)))


def _check_video(
    pred: np.ndarray, gt: np.ndarray, num_phases: int
) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim != 1 or gt.ndim != 1 or pred.shape != gt.shape or pred.size == 0:
        raise ValueError(
            "pred and gt must be non-empty 1-D arrays of equal length, "
            f"got {pred.shape} and {gt.shape}"
        )
    if not (np.issubdtype(pred.dtype, np.integer) and np.issubdtype(gt.dtype, np.integer)):
        raise ValueError(
            f"pred and gt must hold integer phase ids, got {pred.dtype} and {gt.dtype}"
        )
    for name, arr in (("pred", pred), ("gt", gt)):
        if arr.min() < 0 or arr.max() >= num_phases:
            raise ValueError(
                f"{name} holds phase ids outside [0, {num_phases}): "
                f"min {arr.min()}, max {arr.max()}"
            )
    return pred.astype(np.int64), gt.astype(np.int64)


def gt_runs(gt: np.ndarray, phase: int) -> list[tuple[int, int]]:
    """Connected runs ``[start, end)`` of ``gt == phase`` (1-D ``bwconncomp``)."""
    mask = np.concatenate(([False], np.asarray(gt) == phase, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(mask))
    return [(int(s), int(e)) for s, e in zip(edges[0::2], edges[1::2])]


def _transition_values(
    phase: int, relaxed_groups: PhaseGroups
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(late values relaxed in the first t frames, early values relaxed in the last t frames)."""
    group_a, group_b = relaxed_groups
    if phase in group_a:
        return (-1,), (1, 2)
    if phase in group_b:
        return (-1, -2), (1, 2)
    return (-1,), (1,)


def relaxed_diff(
    pred: np.ndarray,
    gt: np.ndarray,
    num_phases: int,
    fps: float,
    relaxed_groups: PhaseGroups = CHOLEC80_RELAXED_GROUPS,
    boundary_s: float = 10.0,
    matlab_compat: bool = False,
) -> np.ndarray:
    """``pred - gt`` with boundary errors set to 0 (see the module docstring for both modes)."""
    pred, gt = _check_video(pred, gt, num_phases)
    window = boundary_frames(boundary_s, fps)
    diff = pred - gt
    updated = diff.copy()
    for phase in range(num_phases):
        late, early = _transition_values(phase, relaxed_groups)
        for start, end in gt_runs(gt, phase):
            cur = diff[start:end].copy()
            t = min(window, end - start)
            head = cur[:t]  # a view: writes go to cur
            head[np.isin(head, late)] = 0
            tail_mask = np.isin(cur[len(cur) - t:], early)
            if matlab_compat:
                head[tail_mask] = 0  # quirk (a): the last-t mask indexes the first t positions
            else:
                cur[len(cur) - t:][tail_mask] = 0
            updated[start:end] = cur
    return updated


def relaxed_video_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    num_phases: int,
    fps: float,
    relaxed_groups: PhaseGroups = CHOLEC80_RELAXED_GROUPS,
    boundary_s: float = 10.0,
    matlab_compat: bool = False,
) -> VideoScores:
    """Relaxed-boundary scores of one video (percent).

    ``matlab_compat=False``: the corrected SelfSupSurg rules (tp over predicted-p frames, R clipped
    at 100, F1 added). ``matlab_compat=True``: Evaluate.m's raw per-video output (tp over the
    union, no clipping here: values > 100, inf and NaN as MATLAB's division gives them; the
    clipping happens in :func:`matlab_aggregate`, as in Main.m)."""
    pred, gt = _check_video(pred, gt, num_phases)
    updated = relaxed_diff(pred, gt, num_phases, fps, relaxed_groups, boundary_s, matlab_compat)
    correct = updated == 0
    nan = np.full(num_phases, np.nan)
    prec, rec, jacc, f1 = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    for phase in range(num_phases):
        in_gt = gt == phase
        n_gt = int(in_gt.sum())
        if n_gt == 0:
            continue
        in_pred = pred == phase
        n_pred = int(in_pred.sum())
        union = in_gt | in_pred
        if matlab_compat:
            tp = int((correct & union).sum())
            with np.errstate(divide="ignore", invalid="ignore"):
                prec[phase] = np.float64(100.0 * tp) / np.float64(n_pred)
        else:
            tp = int((correct & in_pred).sum())
            prec[phase] = 100.0 * tp / n_pred if n_pred else 0.0
        rec[phase] = 100.0 * tp / n_gt
        jacc[phase] = 100.0 * tp / int(union.sum())
        if not matlab_compat:
            rec[phase] = min(rec[phase], 100.0)
            f1[phase] = _f1(prec[phase], rec[phase])
    accuracy = 100.0 * int(correct.sum()) / len(gt)
    return VideoScores(accuracy=accuracy, precision=prec, recall=rec, jaccard=jacc, f1=f1)


def strict_video_scores(pred: np.ndarray, gt: np.ndarray, num_phases: int) -> VideoScores:
    """Frame-wise (non-relaxed) scores of one video (percent); NaN for phases absent from GT."""
    pred, gt = _check_video(pred, gt, num_phases)
    nan = np.full(num_phases, np.nan)
    prec, rec, jacc, f1 = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    for phase in range(num_phases):
        in_gt = gt == phase
        n_gt = int(in_gt.sum())
        if n_gt == 0:
            continue
        in_pred = pred == phase
        n_pred = int(in_pred.sum())
        tp = int((in_gt & in_pred).sum())
        prec[phase] = 100.0 * tp / n_pred if n_pred else 0.0
        rec[phase] = 100.0 * tp / n_gt
        jacc[phase] = 100.0 * tp / int((in_gt | in_pred).sum())
        f1[phase] = _f1(prec[phase], rec[phase])
    accuracy = 100.0 * int((pred == gt).sum()) / len(gt)
    return VideoScores(accuracy=accuracy, precision=prec, recall=rec, jaccard=jacc, f1=f1)


def _f1(precision: float, recall: float) -> float:
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """nanmean without the all-NaN RuntimeWarning (an all-NaN slice gives NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _nanstd(values: np.ndarray, ddof: int) -> float:
    kept = values[~np.isnan(values)]
    if kept.size <= ddof:
        return 0.0 if kept.size else float("nan")
    return float(np.std(kept, ddof=ddof))


def video_aggregate(videos: Sequence[VideoScores]) -> dict[str, float]:
    """SelfSupSurg-style aggregation: per video nanmean over phases, then mean over videos.

    Returns accuracy, accuracy_std (np.std over videos, ddof = 0), precision, recall, jaccard, f1.
    A video whose GT contains no phase cannot occur (a video has at least one frame)."""
    if not videos:
        raise ValueError("no videos to aggregate")
    acc = np.array([v.accuracy for v in videos])
    out = {"accuracy": float(acc.mean()), "accuracy_std": float(acc.std())}
    for key in ("precision", "recall", "jaccard", "f1"):
        per_video = np.array([_nanmean(getattr(v, key)) for v in videos], dtype=np.float64)
        out[key] = float(_nanmean(per_video))
    return out


def matlab_aggregate(videos: Sequence[VideoScores]) -> MatlabSummary:
    """Main.m's aggregation of Evaluate.m outputs (see the module docstring)."""
    if not videos:
        raise ValueError("no videos to aggregate")
    acc = np.array([v.accuracy for v in videos])
    summary: dict[str, object] = {
        "accuracy": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
    }
    for key in ("jaccard", "precision", "recall"):
        table = np.stack([getattr(v, key) for v in videos], axis=1)  # (phases, videos)
        table = np.where(table > 100.0, 100.0, table)  # Main.m: find(x > 100) = 100 (inf too)
        per_phase = np.asarray(_nanmean(table, axis=1), dtype=np.float64)
        summary[key] = float(_nanmean(per_phase))
        summary[f"{key}_std"] = _nanstd(per_phase, ddof=1)
        summary[f"per_phase_{key}"] = per_phase
    return MatlabSummary(**summary)  # type: ignore[arg-type]


def phase_metrics(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    num_phases: int,
    fps: float,
    relaxed_groups: PhaseGroups | None = CHOLEC80_RELAXED_GROUPS,
    boundary_s: float = 10.0,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Phase metrics over a set of videos, all in percent.

    One (pred, gt) pair of int arrays ``(T,)`` per video (0-based phase ids, frames at ``fps``).

    Returns ``(metrics, per_class)``:

    - strict ``accuracy``, ``accuracy_std``, ``precision``, ``recall``, ``jaccard``, ``f1``:
      per video accuracy and per-phase P/R/J/F1 (NaN for phases absent from that video's GT),
      per-video nanmean over phases, then mean over videos (std over videos, ddof = 0);
    - corrected relaxed ``relaxed_accuracy``, ``relaxed_accuracy_std``, ``relaxed_precision``,
      ``relaxed_recall``, ``relaxed_jaccard``, ``relaxed_f1``: same aggregation over
      :func:`relaxed_video_scores` with ``matlab_compat=False``;
    - ``matlab_accuracy``, ``matlab_accuracy_std``, ``matlab_precision``, ``matlab_recall``,
      ``matlab_jaccard``: Evaluate.m + Main.m (``matlab_compat=True``; per phase nanmean over
      videos after clipping at 100, then mean over phases; accuracy mean/std over videos, ddof 1).

    ``per_class = {"f1": {...}, "jaccard": {...}, "relaxed_jaccard": {...}}`` keyed by
    ``str(phase_id)``: nanmean over videos (NaN for a phase absent from every video).
    When ``relaxed_groups`` is None the relaxed and matlab keys (and ``relaxed_jaccard``) are
    omitted. See the module docstring for the exact rules.
    """
    if len(preds) != len(gts):
        raise ValueError(f"got {len(preds)} predictions for {len(gts)} ground-truth videos")
    if not preds:
        raise ValueError("phase_metrics needs at least one video")
    strict = [strict_video_scores(p, g, num_phases) for p, g in zip(preds, gts)]
    metrics = video_aggregate(strict)
    per_class = {
        "f1": _per_phase_mean(strict, "f1"),
        "jaccard": _per_phase_mean(strict, "jaccard"),
    }
    if relaxed_groups is None:
        return metrics, per_class

    relaxed = [
        relaxed_video_scores(p, g, num_phases, fps, relaxed_groups, boundary_s, matlab_compat=False)
        for p, g in zip(preds, gts)
    ]
    metrics.update({f"relaxed_{k}": v for k, v in video_aggregate(relaxed).items()})
    per_class["relaxed_jaccard"] = _per_phase_mean(relaxed, "jaccard")

    matlab = matlab_aggregate([
        relaxed_video_scores(p, g, num_phases, fps, relaxed_groups, boundary_s, matlab_compat=True)
        for p, g in zip(preds, gts)
    ])
    metrics.update({
        "matlab_accuracy": matlab.accuracy,
        "matlab_accuracy_std": matlab.accuracy_std,
        "matlab_precision": matlab.precision,
        "matlab_recall": matlab.recall,
        "matlab_jaccard": matlab.jaccard,
    })
    return metrics, per_class


def _per_phase_mean(videos: Sequence[VideoScores], key: str) -> dict[str, float]:
    table = np.stack([getattr(v, key) for v in videos], axis=0)  # (videos, phases)
    means = np.asarray(_nanmean(table, axis=0), dtype=np.float64)
    return {str(phase): float(value) for phase, value in enumerate(means)}
