"""The toolkit for task authors: the pieces every built-in task is made of, public API.

A task (:class:`ssl_bench.api.Task`) receives one cell (:class:`ssl_bench.api.CellInputs`)
and must train on the labelled units, select on val and score test once. These helpers do the
parts that are the same in every task, so that a new task gets the harness's protocol (and its
reproducibility) by using them:

* seeding: :func:`seed_everything` (python, numpy, torch, plus a local generator for
  shuffling);
* the protocol a cell runs: :func:`resolve_protocol` (the supervised row always fine-tunes);
* data: :func:`load_unit`, :func:`to_float_images`, :class:`FrameIndex` (frames and labels
  of loaded units by index), :func:`shuffled_batches` and :func:`endless_batches`;
* features: :func:`feature_key` and :func:`frame_feature_entry` (frozen-encoder outputs in
  the run's feature cache), :class:`Standardization` (the one per-channel standardisation of
  features before a head);
* training and selection: :func:`make_optimizer`, :func:`optimise_epoch` (one epoch of
  steps under the run's precision, non-finite losses failing the cell),
  :func:`train_and_select` (the train / select-on-val loop) and its :class:`Selection`, whose
  :meth:`Selection.details` are the record keys of the selection (``best_epoch``,
  ``best_val_score``, ``val_metric``, ``selection``, ``val_history``);
* progress and timings: :class:`UnitProgress`, :class:`EpochLoss`, :class:`Timer`;
* semi-supervised methods: :func:`predictor_details` and :func:`predictor_extras` read what
  a predictor from :meth:`ssl_bench.api.Method.fit_segmentation` carries.

Each submodule holds one concept (:mod:`.data`, :mod:`.features`, :mod:`.training`,
:mod:`.progress`, :mod:`.semi_supervised`); import from this package.
"""

from __future__ import annotations

from ssl_bench.seeding import seed_everything
from ssl_bench.task_toolkit.data import (
    FrameIndex,
    endless_batches,
    load_unit,
    shuffled_batches,
    to_float_images,
)
from ssl_bench.task_toolkit.features import (
    STD_FLOOR,
    Standardization,
    feature_key,
    frame_feature_entry,
)
from ssl_bench.task_toolkit.progress import EpochLoss, Timer, UnitProgress
from ssl_bench.task_toolkit.semi_supervised import predictor_details, predictor_extras
from ssl_bench.task_toolkit.training import (
    Selection,
    check_finite,
    make_optimizer,
    optimise_epoch,
    resolve_protocol,
    snapshot,
    train_and_select,
)

__all__ = [
    "seed_everything", "resolve_protocol",
    "load_unit", "to_float_images", "FrameIndex", "shuffled_batches", "endless_batches",
    "feature_key", "frame_feature_entry", "Standardization", "STD_FLOOR",
    "make_optimizer", "snapshot", "check_finite", "optimise_epoch", "train_and_select",
    "Selection",
    "EpochLoss", "UnitProgress", "Timer",
    "predictor_details", "predictor_extras",
]
