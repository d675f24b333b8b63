"""The base of the two mask tasks (semantic segmentation, organ segmentation): an FPN decoder
on an encoder's multi-scale maps, trained and selected on val, test scored once.

Protocols (see docs/index.md, "Concepts", and the task modules):

* ``linear``: the encoder is frozen (``eval()``, no gradients). Its multi-scale maps are
  computed once per (checkpoint, dataset fingerprint, split, unit, image size) and kept in the
  run's :class:`~ssl_bench.cache.ArrayCache` as float16, so every label fraction and seed of
  one checkpoint reuses them (``cache_maps``; without it the frozen encoder runs on every
  batch).
* ``finetune``: encoder and decoder are trained end to end on the labelled units; nothing is
  cached across cells because the weights differ per cell.
* Model selection uses the val split only (:func:`ssl_bench.task_toolkit.train_and_select`);
  the test split is loaded (or read from the cache) once, after training, for the final
  scoring pass.
* ``semi-supervised``: the method trains its own predictor (``Method.fit_segmentation``). Its
  ``predictor.details`` go into the record details, and each of its
  ``predictor.extra_predictors`` is scored on val and on the same test units through the same
  metric as the row, into ``details["extra_predictors"][name]`` (``val_score``, ``test``).
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ssl_bench.api import (
    CellInputs,
    Encoder,
    SemiSupervisedData,
    TaskConfig,
    TaskResult,
    Unit,
    UnitData,
)
from ssl_bench.default_plugins.tasks.losses import ce_dice_loss
from ssl_bench.errors import SSLBenchError
from ssl_bench.heads.fpn import EncoderDecoder, FPNDecoder
from ssl_bench.precision import TrainingPrecision, autocast
from ssl_bench.task_toolkit import (
    EpochLoss,
    FrameIndex,
    Standardization,
    Timer,
    UnitProgress,
    endless_batches,
    feature_key,
    load_unit,
    make_optimizer,
    optimise_epoch,
    predictor_details,
    predictor_extras,
    resolve_protocol,
    seed_everything,
    shuffled_batches,
    to_float_images,
    train_and_select,
)
from ssl_bench.unit_scores import UnitParts


def class_map(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel class ids of (N, K, H, W) logits: ``argmax(1)`` (first maximum on ties),
    computed as ``max(1).indices``, which is about 5x faster than ``argmax`` over the channel
    dimension of an NCHW tensor on CPU (torch 2.x)."""
    return logits.max(dim=1).indices


@dataclass
class TestScores:
    """A mask task's test metrics, per-class values, each test unit's own metrics and the
    per-unit parts of the main score (:mod:`ssl_bench.unit_scores`)."""

    __test__ = False  # not a pytest test class

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    per_unit: dict[str, dict[str, float]]
    main_parts: UnitParts


class MaskTaskConfig(TaskConfig):
    """Settings of the FPN decoder tasks (``epochs``, ``batch_size``, ``lr``, ``weight_decay``
    from :class:`TaskConfig` apply to the decoder)."""

    optimizer: str = "adamw"
    decoder_width: int = 64
    #: learning rate of the encoder under the finetune protocol
    encoder_lr: float = 1e-4
    #: epochs under the finetune protocol (None: ``epochs``); a fine-tuning step runs the
    #: encoder forward and backward, several times the cost of a step on cached maps
    finetune_epochs: int | None = None
    #: score val every this many epochs (and after the last one)
    eval_every: int = 1
    #: cap on optimiser steps per epoch (None: the whole labelled set)
    max_steps_per_epoch: int | None = None
    #: a fixed number of optimiser steps per epoch, reshuffling the labelled frames whenever
    #: they run out (None: one pass over them, capped by ``max_steps_per_epoch``). A fixed
    #: budget keeps small label fractions from getting a handful of steps in all.
    steps_per_epoch: int | None = None
    #: linear protocol: cache the frozen multi-scale maps (float16); False runs the frozen
    #: encoder on every batch instead (for large images where the maps do not fit in memory)
    cache_maps: bool = True
    feature_batch_size: int = 64
    #: weight of a soft Dice term added to the cross-entropy (MONAI's DiceCE recipe for CT)
    dice_loss_weight: float = 0.0
    #: finetune protocol: keep the encoder's batch-norm layers in eval mode (their running
    #: statistics frozen, their affine weights trained; mmdet/mmseg ``norm_eval``)
    finetune_norm_eval: bool = False
    #: linear protocol: standardise each frozen map per channel with the labelled training
    #: frames' statistics before the decoder (:class:`ssl_bench.task_toolkit.Standardization`,
    #: applied by :meth:`FPNDecoder.standardize_inputs`)
    standardize_features: bool = False


#: record details the mask tasks write themselves (a method's ``predictor.details`` may not)
TASK_DETAIL_KEYS = frozenset({
    "label_units", "protocol", "n_train_frames", "n_unlabelled_frames", "best_epoch",
    "best_val_score", "val_metric", "selection", "val_history", "extra_predictors",
    "n_test_units", "feature_cache"})


def standardize_decoder_inputs(decoder: FPNDecoder, maps: list[np.ndarray]) -> None:
    """Fix the decoder's input standardisation to the statistics of the training maps, one
    :class:`~ssl_bench.task_toolkit.Standardization` per level of ``(N, C, H, W)`` maps."""
    levels = [Standardization.fit(m, channel_axis=1).tensors() for m in maps]
    decoder.standardize_inputs([mean for mean, _ in levels], [scale for _, scale in levels])


def predict_masks(model: Callable[[torch.Tensor], torch.Tensor], frames: np.ndarray,
                  device: torch.device, batch_size: int) -> np.ndarray:
    """uint8 ``(N, H, W)`` class maps of ``model`` (images -> logits) on ``frames``, in batches."""
    outs = []
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            x = to_float_images(frames[i:i + batch_size], device)
            outs.append(class_map(model(x)).to(torch.uint8).cpu().numpy())
    if not outs:
        return np.zeros((0,) + tuple(np.asarray(frames).shape[1:3]), np.uint8)
    return np.concatenate(outs)


def unit_item(data: UnitData) -> dict[str, Any]:
    """A loaded unit as the mask tasks pass it around: ``unit``, ``frames``, ``masks`` and,
    for volumes, ``spacing``."""
    if data.masks is None:
        raise SSLBenchError(f"unit {data.unit.id!r} has no masks; a segmentation benchmark needs "
                            "a dataset with label_kind 'mask'")
    item: dict[str, Any] = {"unit": data.unit.id, "frames": data.frames, "masks": data.masks}
    if data.spacing is not None:
        item["spacing"] = tuple(float(s) for s in data.spacing)
    return item


class MaskTask(ABC):
    """The shared train / select-on-val / score-test-once logic of the two mask tasks.

    Subclasses (the Task plugins) implement :meth:`train_keep` (which labelled frames train),
    :meth:`val_score` (selection score on val, higher is better, named :attr:`val_metric` in
    the record) and :meth:`test_scores`.
    """

    config: MaskTaskConfig
    #: the name of :meth:`val_score` in the record (``details["val_metric"]``)
    val_metric: str = "score"

    # -- hooks ------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
        """Cross-entropy (ignore index skipped) + ``dice_loss_weight`` x soft Dice loss."""
        return ce_dice_loss(logits, target, ignore_index, self.config.dice_loss_weight)

    def train_keep(self, masks: np.ndarray, ignore_index: int, rng: np.random.Generator
                   ) -> np.ndarray:
        return np.ones(len(masks), dtype=bool)

    @abstractmethod
    def val_score(self, preds: list[np.ndarray], gts: list[np.ndarray], cell: CellInputs) -> float:
        """Selection score on the val units (higher is better)."""

    @abstractmethod
    def test_scores(self, preds: list[np.ndarray], gts: list[np.ndarray],
                    data: list[dict[str, Any]], cell: CellInputs) -> TestScores:
        """The task's metrics on the test units (``data``: their items, e.g. spacing), with
        each unit's own values and the per-unit parts of the main score."""

    # -- the cell ---------------------------------------------------------------------
    def run_mask_task(self, cell: CellInputs) -> TaskResult:
        cfg = self.config
        generator = seed_everything(cell.seed)
        rng = np.random.default_rng(cell.seed)
        timer = Timer()
        meta = cell.dataset.meta
        num_classes = len(meta.classes)
        details: dict[str, Any] = {"label_units": [u.id for u in cell.label_units]}

        if cell.method.meta.kind == "semi-supervised":
            protocol = "semi-supervised"
        else:
            protocol = resolve_protocol(cell)
        details["protocol"] = protocol
        hits0, misses0 = cell.cache.hits, cell.cache.misses

        if protocol == "linear" and cfg.cache_maps:
            result_pred, train_info = self._linear_cached(cell, num_classes, generator, rng, timer)
        elif protocol == "semi-supervised":
            result_pred, train_info = self._semi_supervised(cell, num_classes, rng, timer)
        else:
            result_pred, train_info = self._end_to_end(cell, num_classes, generator, rng, timer,
                                                      freeze=(protocol == "linear"))
        details.update(train_info)

        # ---- the one test pass (the row's predictor, then any extra predictor of a
        # semi-supervised method on the same test units, through the same metric)
        test_items = result_pred["load_test"]()
        t0 = time.perf_counter()
        preds = [result_pred["predict"](item) for item in test_items]
        gts = [np.asarray(item["masks"]) for item in test_items]
        scores = self.test_scores(preds, gts, test_items, cell)
        for name, predict_extra in result_pred.get("extra_predict", {}).items():
            extra = self.test_scores([predict_extra(item) for item in test_items], gts,
                                     test_items, cell)
            details["extra_predictors"][name]["test"] = extra.metrics
        timer.downstream += time.perf_counter() - t0
        details["n_test_units"] = len(test_items)
        details["feature_cache"] = {"hits": cell.cache.hits - hits0,
                                    "misses": cell.cache.misses - misses0}
        return TaskResult(metrics=scores.metrics, per_class=scores.per_class, details=details,
                          timings=timer.as_dict(), per_unit=scores.per_unit,
                          main_parts=scores.main_parts)

    # -- linear protocol on cached multi-scale maps --------------------------------------
    def _cached_unit(self, cell: CellInputs, encoder: Encoder, unit: Unit, timer: Timer,
                     fingerprint: str) -> dict[str, Any]:
        cfg = self.config

        def compute() -> dict[str, np.ndarray]:
            data = load_unit(cell, unit)
            levels: list[list[np.ndarray]] = [[] for _ in encoder.channels]
            with torch.no_grad(), autocast(cell.precision, cell.device):
                for i in range(0, len(data.frames), cfg.feature_batch_size):
                    maps = encoder(to_float_images(data.frames[i:i + cfg.feature_batch_size],
                                                   cell.device))
                    for level, m in zip(levels, maps):
                        level.append(m.to(torch.float16).cpu().numpy())
            arrays = {f"map{k}": np.concatenate(v) for k, v in enumerate(levels)}
            arrays["masks"] = np.asarray(data.masks, dtype=np.uint8)
            if data.spacing is not None:
                arrays["spacing"] = np.asarray(data.spacing, dtype=np.float64)
            return arrays

        t0 = time.perf_counter()
        key = feature_key(cell, "fpn-maps", unit, fingerprint)
        arrays = cell.cache.get_or_compute(key, compute)
        timer.features += time.perf_counter() - t0
        item: dict[str, Any] = {"unit": unit.id, "masks": arrays["masks"],
                                "maps": [arrays[f"map{k}"] for k in range(len(encoder.channels))]}
        if "spacing" in arrays:
            item["spacing"] = tuple(float(s) for s in arrays["spacing"])
        return item

    def _linear_cached(self, cell: CellInputs, num_classes: int, generator: torch.Generator,
                       rng: np.random.Generator, timer: Timer
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
        cfg = self.config
        ignore = cell.dataset.meta.ignore_index
        encoder = cell.make_encoder().to(cell.device).eval()
        for p in encoder.parameters():
            p.requires_grad_(False)
        fingerprint = cell.dataset.fingerprint()
        counter = UnitProgress(cell, "features", [cell.label_units, cell.units["val"],
                                                cell.units["test"]])

        def cached(units: list[Unit]) -> list[dict[str, Any]]:
            return [counter.done(self._cached_unit(cell, encoder, u, timer, fingerprint))
                    for u in units]

        train_items = cached(cell.label_units)
        val_items = cached(cell.units["val"])
        t0 = time.perf_counter()
        keep = [self.train_keep(it["masks"], ignore, rng) for it in train_items]
        n_levels = len(encoder.channels)
        maps = [np.concatenate([it["maps"][k][kp] for it, kp in zip(train_items, keep)])
                for k in range(n_levels)]
        masks = np.concatenate([it["masks"][kp] for it, kp in zip(train_items, keep)])
        size = (masks.shape[1], masks.shape[2])
        decoder = FPNDecoder(encoder.channels, num_classes, cfg.decoder_width).to(cell.device)
        if cfg.standardize_features:
            standardize_decoder_inputs(decoder, maps)
        optimizer = make_optimizer(decoder.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)

        def predict(item: dict[str, Any]) -> np.ndarray:
            decoder.eval()
            outs = []
            with torch.no_grad():
                n = len(item["masks"])
                for i in range(0, n, cfg.feature_batch_size):
                    feats = [torch.from_numpy(m[i:i + cfg.feature_batch_size]).to(cell.device)
                             for m in item["maps"]]
                    outs.append(class_map(decoder(feats, size)).to(torch.uint8).cpu().numpy())
            return np.concatenate(outs) if outs else np.zeros((0,) + size, np.uint8)

        def step(idx: torch.Tensor) -> torch.Tensor:
            feats = [torch.from_numpy(m[idx.numpy()]).to(cell.device) for m in maps]
            target = torch.from_numpy(masks[idx.numpy()]).to(cell.device).long()
            return self.loss(decoder(feats, size), target, ignore)

        info = self._fit(cell, decoder, optimizer, step, len(masks), predict, val_items,
                         generator)
        timer.downstream += time.perf_counter() - t0
        info["n_train_frames"] = int(len(masks))

        def load_test() -> list[dict[str, Any]]:
            return cached(cell.units["test"])

        return {"predict": predict, "load_test": load_test}, info

    # -- finetune (or linear without cache): images through encoder + decoder ------------------
    def _end_to_end(self, cell: CellInputs, num_classes: int, generator: torch.Generator,
                    rng: np.random.Generator, timer: Timer, freeze: bool
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
        cfg = self.config
        ignore = cell.dataset.meta.ignore_index
        t0 = time.perf_counter()
        train_data = [load_unit(cell, u) for u in cell.label_units]
        val_items = [unit_item(load_unit(cell, u)) for u in cell.units["val"]]
        keep = [self.train_keep(np.asarray(d.masks), ignore, rng) for d in train_data]
        index = FrameIndex(train_data, keep)
        encoder = cell.make_encoder().to(cell.device)
        decoder = FPNDecoder(encoder.channels, num_classes, cfg.decoder_width)
        if freeze and cfg.standardize_features:  # the frozen maps of the training frames
            encoder.eval()
            with torch.no_grad():
                levels: list[list[np.ndarray]] = [[] for _ in encoder.channels]
                for idx in shuffled_batches(len(index), cfg.feature_batch_size, torch.Generator()
                                            .manual_seed(0)):
                    for level, m in zip(levels, encoder(to_float_images(index.frames(idx),
                                                                        cell.device))):
                        level.append(m.float().cpu().numpy())
            standardize_decoder_inputs(decoder, [np.concatenate(v) for v in levels])
        model = EncoderDecoder(encoder, decoder, freeze_encoder=freeze).to(cell.device)
        groups: list[dict[str, Any]] = [{"params": list(decoder.parameters()), "lr": cfg.lr}]
        if not freeze:
            groups.append({"params": list(encoder.parameters()), "lr": cfg.encoder_lr})
        optimizer = make_optimizer(groups, cfg.optimizer, cfg.lr, cfg.weight_decay)

        def predict(item: dict[str, Any]) -> np.ndarray:
            model.eval()
            return predict_masks(model, item["frames"], cell.device, cfg.feature_batch_size)

        norm_eval = not freeze and cfg.finetune_norm_eval

        def step(idx: torch.Tensor) -> torch.Tensor:
            if norm_eval:  # after train_and_select's model.train()
                for m in encoder.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
            x = to_float_images(index.frames(idx), cell.device)
            target = torch.from_numpy(index.masks(idx)).to(cell.device).long()
            return self.loss(model(x), target, ignore)

        epochs = cfg.epochs if freeze or cfg.finetune_epochs is None else cfg.finetune_epochs
        info = self._fit(cell, model, optimizer, step, len(index), predict, val_items, generator,
                         epochs)
        timer.downstream += time.perf_counter() - t0
        info["n_train_frames"] = len(index)

        def load_test() -> list[dict[str, Any]]:
            return [unit_item(load_unit(cell, u)) for u in cell.units["test"]]

        return {"predict": predict, "load_test": load_test}, info

    def _fit(self, cell: CellInputs, model: nn.Module, optimizer: torch.optim.Optimizer,
             step: Callable[[torch.Tensor], torch.Tensor], n_train: int,
             predict: Callable[[dict[str, Any]], np.ndarray], val_items: list[dict[str, Any]],
             generator: torch.Generator, epochs: int | None = None) -> dict[str, Any]:
        """Train for ``epochs`` (default: the config's) with
        :func:`~ssl_bench.task_toolkit.train_and_select`; the model ends with the weights of
        the best val score. Returns the selection's record details."""
        cfg = self.config
        epochs = cfg.epochs if epochs is None else epochs
        if n_train == 0:
            raise SSLBenchError(f"benchmark {cell.benchmark.id!r}: the labelled units have no "
                                "training frames; check the dataset's masks")
        stream = (endless_batches(n_train, cfg.batch_size, generator)
                  if cfg.steps_per_epoch is not None else None)
        amp = TrainingPrecision(cell.precision, cell.device)

        def train_epoch(epoch: int) -> EpochLoss:
            if stream is not None:
                batches: Iterator[torch.Tensor] = itertools.islice(stream, cfg.steps_per_epoch)
            else:
                batches = shuffled_batches(n_train, cfg.batch_size, generator)
            return optimise_epoch(batches, step, optimizer, amp,
                                  f"{cell.benchmark.id} decoder training",
                                  cfg.max_steps_per_epoch)

        def validate() -> float:
            preds = [predict(it) for it in val_items]
            return self.val_score(preds, [np.asarray(it["masks"]) for it in val_items], cell)

        selection = train_and_select([model], epochs, train_epoch,
                                     validate if val_items else None,
                                     val_metric=self.val_metric, eval_every=cfg.eval_every,
                                     progress=cell.progress)
        return selection.details()

    # -- semi-supervised methods -------------------------------------------------------
    def _semi_supervised(self, cell: CellInputs, num_classes: int, rng: np.random.Generator,
                         timer: Timer) -> tuple[dict[str, Any], dict[str, Any]]:
        cfg = self.config
        ignore = cell.dataset.meta.ignore_index
        t0 = time.perf_counter()
        label_ids = {u.id for u in cell.label_units}
        labelled = [load_unit(cell, u) for u in cell.label_units]
        unlabelled = [load_unit(cell, u) for u in cell.units["train"] if u.id not in label_ids]
        keep = [self.train_keep(np.asarray(d.masks), ignore, rng) for d in labelled]
        val_items = [unit_item(load_unit(cell, u)) for u in cell.units["val"]]
        size = cell.image_size

        def validate(predictor: nn.Module) -> float:
            was_training = predictor.training
            predictor.eval()
            preds = [predict_masks(predictor, it["frames"], cell.device, cfg.feature_batch_size)
                     for it in val_items]
            predictor.train(was_training)
            return float(self.val_score(preds, [np.asarray(it["masks"]) for it in val_items], cell))

        empty_frames = np.zeros((0, size, size, 3), np.uint8)
        data = SemiSupervisedData(
            labelled_frames=np.concatenate([np.asarray(d.frames)[k]
                                            for d, k in zip(labelled, keep)]),
            labelled_masks=np.concatenate([np.asarray(d.masks)[k] for d, k in zip(labelled, keep)]),
            unlabelled_frames=(np.concatenate([np.asarray(d.frames) for d in unlabelled])
                               if unlabelled else empty_frames),
            num_classes=num_classes, ignore_index=ignore, validate=validate,
            device=cell.device, seed=cell.seed, profile=cell.profile)
        predictor = cell.method.fit_segmentation(data)
        predictor.eval()
        method_id = cell.method.meta.id
        method_details = predictor_details(predictor, method_id, TASK_DETAIL_KEYS)
        extra_predictors = predictor_extras(predictor, method_id)
        info: dict[str, Any] = {**method_details,
                                "n_train_frames": int(len(data.labelled_frames)),
                                "n_unlabelled_frames": int(len(data.unlabelled_frames)),
                                "best_val_score": validate(predictor),
                                "val_metric": self.val_metric}
        if extra_predictors:
            info["extra_predictors"] = {}
            for name, extra in extra_predictors.items():
                extra.eval()
                info["extra_predictors"][name] = {"val_score": validate(extra)}
        timer.downstream += time.perf_counter() - t0

        def predictor_fn(model: nn.Module) -> Callable[[dict[str, Any]], np.ndarray]:
            def predict(item: dict[str, Any]) -> np.ndarray:
                return predict_masks(model, item["frames"], cell.device, cfg.feature_batch_size)
            return predict

        def load_test() -> list[dict[str, Any]]:
            return [unit_item(load_unit(cell, u)) for u in cell.units["test"]]

        return {"predict": predictor_fn(predictor), "load_test": load_test,
                "extra_predict": {name: predictor_fn(extra)
                                  for name, extra in extra_predictors.items()}}, info


__all__ = ["class_map", "MaskTaskConfig", "MaskTask", "TestScores", "TASK_DETAIL_KEYS",
           "predict_masks", "unit_item", "standardize_decoder_inputs"]
