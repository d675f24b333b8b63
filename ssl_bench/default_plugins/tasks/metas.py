"""Metadata of the built-in downstream tasks, apart from their code.

This module imports no torch: the ``builtin-tasks`` plugin registers each task by import path
with its metadata from here (:class:`ssl_bench.lazy.LazyClass`), so ``ssl-bench list`` and
``--help`` never import the tasks. Each task class takes its ``meta`` from here (one source of
truth); a change that alters scores bumps ``version``.
"""

from __future__ import annotations

from ssl_bench.meta import TaskMeta

# ``verify_tolerance`` (how far ``ssl-bench verify`` lets a re-run in another environment lie
# from the record): the largest |Δ| of the main score between the same cells (equal identity
# and seeds) of two ``make run`` boards, one on a 2-core Intel Xeon and one on a 2-core AMD
# EPYC, ``cpu`` profile, synthetic suite, 75 cells per benchmark
# (``benchmarks/validity/replication_other_machine_same_seeds.json``, "same_cells"): accuracy
# 8.08 (cholec80-phase), mIoU 2.25 (cholecseg8k-seg), mean Dice 7.92 (btcv-organ), each rounded
# up to the next half point. Tool presence has no default benchmark, so no measurement: its
# re-runs in another environment need ``--tolerance``.

PHASE_RECOGNITION_META = TaskMeta(
    id="phase-recognition",
    version="3",
    name="Surgical phase recognition",
    description="per-frame features (1 fps by default) + causal MS-TCN (or DistillSelf's "
    "single-stage TCN); selection on val video accuracy; strict and relaxed (10 s) "
    "video-level metrics",
    label_kind="phase",
    modalities=("video",),
    requires=("frame-features",),
    main_score="accuracy",
    higher_is_better={
        "accuracy": True, "accuracy_std": False, "precision": True, "recall": True,
        "jaccard": True, "f1": True, "relaxed_accuracy": True, "relaxed_accuracy_std": False,
        "relaxed_precision": True, "relaxed_recall": True, "relaxed_jaccard": True,
        "relaxed_f1": True, "matlab_accuracy": True, "matlab_accuracy_std": False,
        "matlab_precision": True, "matlab_recall": True, "matlab_jaccard": True,
    },
    verify_tolerance=8.5,
)

SEMANTIC_SEGMENTATION_META = TaskMeta(
    id="semantic-segmentation",
    version="1",
    name="Semantic segmentation",
    description="FPN decoder on frozen (linear) or fine-tuned encoder maps; dataset-level "
    "mIoU / mDice over classes, ignore index honoured; selection on val mIoU",
    label_kind="mask",
    modalities=("image",),
    requires=("spatial-features", "segmentation-predictor"),
    main_score="miou",
    higher_is_better={"miou": True, "mdice": True, "aacc": True, "macc": True},
    verify_tolerance=2.5,
)

ORGAN_SEGMENTATION_META = TaskMeta(
    id="organ-segmentation",
    version="3",
    name="Multi-organ CT segmentation (2-D slices)",
    description="FPN decoder on slices of the labelled CT volumes; slices stacked back per "
    "volume; MONAI Dice and HD95 per organ and volume, mean over organs",
    label_kind="mask",
    modalities=("volume",),
    requires=("spatial-features", "segmentation-predictor"),
    main_score="mean_dice",
    higher_is_better={"mean_dice": True, "mean_hd95": False},
    verify_tolerance=8.0,
)

TOOL_PRESENCE_META = TaskMeta(
    id="tool-presence",
    version="2",
    name="Surgical tool presence detection",
    description="multi-label tool presence per frame at 1 fps: linear head (BCE) on frozen "
    "frame features or fine-tuned encoder; selection on val mAP; video-wise mAP (main) and "
    "frame-pooled mAP",
    label_kind="tools",
    modalities=("video",),
    requires=("frame-features",),
    main_score="mAP",
    higher_is_better={"mAP": True, "frame_mAP": True},
)
