"""Shared pieces of the built-in tasks: seeding, data loading, feature caching, optimisers,
and the training/selection loop of the two mask tasks (semantic and organ segmentation).

Protocols (see docs/index.md, "Concepts", and the task modules):

* ``linear``: the encoder is frozen (``eval()``, no gradients). Its outputs are computed once
  per (checkpoint, dataset fingerprint, split, unit, image size, feature kind) and kept in the
  run's :class:`~ssl_bench.cache.ArrayCache`, so every label fraction and seed of one checkpoint
  reuses them.
* ``finetune``: encoder and head are trained end to end on the labelled units; nothing is
  cached across cells because the weights differ per cell.
* Model selection uses the val split only; the test split is loaded (or read from the cache)
  once, after training, for the final scoring pass.
* ``semi-supervised``: the method trains its own predictor (``Method.fit_segmentation``). Its
  ``predictor.details`` go into the record details, and each of its
  ``predictor.extra_predictors`` is scored on val and on the same test units through the same
  metric as the row, into ``details["extra_predictors"][name]`` (``val_score``, ``test``).
"""

from __future__ import annotations

import itertools
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
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
from ssl_bench.errors import SSLBenchError
from ssl_bench.heads.fpn import EncoderDecoder, FPNDecoder
from ssl_bench.precision import TrainingPrecision, autocast
from ssl_bench.unit_scores import UnitParts

# --------------------------------------------------------------------------------------
# generic helpers


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a local generator for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def resolve_protocol(cell: CellInputs) -> str:
    """The protocol actually run: the supervised row (``meta.protocol == "finetune"``) always
    fine-tunes; otherwise the benchmark's protocol."""
    if cell.method.meta.protocol == "finetune":
        return "finetune"
    if cell.protocol not in ("linear", "finetune"):
        raise SSLBenchError(
            f"benchmark {cell.benchmark.id!r}: unknown protocol {cell.protocol!r}; use "
            "'linear' or 'finetune'")
    return cell.protocol


def class_map(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel class ids of (N, K, H, W) logits: ``argmax(1)`` (first maximum on ties),
    computed as ``max(1).indices``, which is about 5x faster than ``argmax`` over the channel
    dimension of an NCHW tensor on CPU (torch 2.x)."""
    return logits.max(dim=1).indices


def to_float_images(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1] on ``device``."""
    array = np.ascontiguousarray(np.asarray(frames))
    if not array.flags.writeable:  # read-only memmaps: torch wants a writable buffer
        array = array.copy()
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def load_unit(cell: CellInputs, unit: Unit) -> UnitData:
    return cell.dataset.load(unit, size=cell.image_size, fps=1.0)


def feature_key(cell: CellInputs, kind: str, unit: Unit, fingerprint: str) -> str:
    """Cache key of a frozen-encoder output for one unit; ``fingerprint`` is the dataset's
    :meth:`~ssl_bench.api.Dataset.fingerprint` (computed once per cell: it may walk the disk)."""
    key = (f"{kind}/{cell.checkpoint_id}/{cell.dataset.meta.id}-{fingerprint}/{unit.split}/"
           f"{unit.id}/size{cell.image_size}")
    # features extracted under autocast are their own entries; fp32 keys stay as they were
    return key if cell.precision == "fp32" else f"{key}/{cell.precision}"


def frame_feature_entry(cell: CellInputs, encoder: Encoder, unit: Unit, fingerprint: str | None,
                        batch_size: int, need: str, loaded: dict[str, UnitData] | None = None,
                        fps: float = 1.0) -> dict[str, np.ndarray]:
    """Per-frame features of one video (``Encoder.frame_features``, float32 ``(T, C)``) with
    every per-frame label it has (``"phases"`` ``(T,)``, ``"tools"`` ``(T, K)``).

    With a ``fingerprint`` (linear protocol) the entry is cached under
    ``feature_key(cell, "frame-features", ...)``, so phase recognition and tool presence share
    one extraction per (checkpoint, video); an entry cached without the label ``need`` (written
    before that label was stored) is recomputed and replaced. Without one (fine-tuned weights)
    it is computed from ``loaded`` data (frames already at ``fps``) or a fresh load. The
    caller checks that ``need`` is in the result (a dataset without that label). Frames are
    sampled at ``fps``; 1-fps features keep the key they always had, other rates name theirs.
    """

    def compute() -> dict[str, np.ndarray]:
        if loaded and unit.id in loaded:
            data = loaded[unit.id]
        else:
            data = cell.dataset.load(unit, size=cell.image_size, fps=fps)
        frames = to_float_images(data.frames, cell.device)
        with torch.no_grad(), autocast(cell.precision, cell.device):
            feats = encoder.frame_features(frames, batch_size=batch_size)
        arrays = {"features": feats.float().cpu().numpy()}
        if data.phases is not None:
            arrays["phases"] = np.asarray(data.phases, dtype=np.int64)
        if data.tools is not None:
            arrays["tools"] = np.asarray(data.tools, dtype=np.uint8)
        return arrays

    if fingerprint is None:
        return compute()
    kind = "frame-features" if fps == 1.0 else f"frame-features-{fps:g}fps"
    key = feature_key(cell, kind, unit, fingerprint)
    entry = cell.cache.get_or_compute(key, compute)
    if need not in entry:
        entry = compute()
        if need in entry:
            cell.cache.save(key, entry)
    return entry


def make_optimizer(params: Iterable[nn.Parameter] | Iterable[dict[str, Any]], name: str,
                   lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise SSLBenchError(f"unknown optimizer {name!r}; use adam, adamw or sgd")


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches; a trailing batch of one item is merged into the previous batch
    (BatchNorm cannot train on a single item whose last map is 1 x 1)."""
    order = torch.randperm(n, generator=generator)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for j, i in enumerate(starts):
        end = starts[j + 1] if j + 1 < len(starts) else n
        yield order[i:end]


def endless_batches(n: int, batch_size: int, generator: torch.Generator
                    ) -> Iterator[torch.Tensor]:
    """Shuffled batches over ``n`` items, pass after pass (a new permutation per pass)."""
    while True:
        yield from shuffled_batches(n, batch_size, generator)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        from ssl_bench.errors import CellFailure

        raise CellFailure(f"non-finite loss in {where}")


@dataclass
class TestScores:
    """A mask task's test metrics, per-class values, each test unit's own metrics and the
    per-unit parts of the main score (:mod:`ssl_bench.unit_scores`)."""

    __test__ = False  # not a pytest test class

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    per_unit: dict[str, dict[str, float]]
    main_parts: UnitParts


class EpochLoss:
    """The mean training loss of an epoch, read once at its end (one device sync per epoch),
    for :attr:`CellInputs.progress`."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.steps = 0

    def add(self, loss: torch.Tensor) -> None:
        value = loss.detach()
        self.total = value if self.total is None else self.total + value
        self.steps += 1

    def extras(self) -> dict[str, float]:
        return {"loss": float(self.total) / self.steps} if self.total is not None else {}


_T = TypeVar("_T")


class UnitProgress:
    """Counts the units of ``groups`` (e.g. train, val, test) through ``stage`` and reports
    each one done to :attr:`CellInputs.progress` (0 of all of them when created)."""

    def __init__(self, cell: CellInputs, stage: str, groups: Sequence[Sequence[Unit]]) -> None:
        self.cell, self.stage = cell, stage
        self.total = sum(len(group) for group in groups)
        self.count = 0
        cell.progress(stage, 0, self.total, {})

    def done(self, value: _T) -> _T:
        """Count one unit more; returns ``value`` (so it wraps an expression)."""
        self.count += 1
        self.cell.progress(self.stage, min(self.count, self.total), self.total, {})
        return value


@dataclass
class Timer:
    features: float = 0.0
    downstream: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"features": round(self.features, 4), "downstream": round(self.downstream, 4)}


class FrameIndex:
    """(unit, frame) pairs over a list of loaded units, for batching frames lazily (memmaps)."""

    def __init__(self, data: Sequence[UnitData], keep: Sequence[np.ndarray] | None = None) -> None:
        self.data = list(data)
        pairs: list[tuple[int, int]] = []
        for u, d in enumerate(self.data):
            frames = range(len(d.frames)) if keep is None else np.flatnonzero(keep[u])
            pairs.extend((u, int(t)) for t in frames)
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def frames(self, idx: torch.Tensor) -> np.ndarray:
        return np.stack([np.asarray(self.data[self.pairs[i][0]].frames[self.pairs[i][1]])
                         for i in idx.tolist()])

    def masks(self, idx: torch.Tensor) -> np.ndarray:
        return np.stack([np.asarray(self.data[self.pairs[i][0]].masks[self.pairs[i][1]])
                         for i in idx.tolist()])

    def phases(self, idx: torch.Tensor) -> np.ndarray:
        return np.array([int(self.data[self.pairs[i][0]].phases[self.pairs[i][1]])
                         for i in idx.tolist()], dtype=np.int64)

    def tools(self, idx: torch.Tensor) -> np.ndarray:
        return np.stack([np.asarray(self.data[self.pairs[i][0]].tools[self.pairs[i][1]])
                         for i in idx.tolist()])


# --------------------------------------------------------------------------------------
# mask tasks (semantic segmentation, organ segmentation)


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
    #: frames' mean and std before the decoder (:meth:`FPNDecoder.standardize_inputs`)
    standardize_features: bool = False


def map_statistics(maps: Sequence[np.ndarray]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per level, the (C,) mean and std over (N, H, W) of (N, C, H, W) maps (float64 sums)."""
    means, stds = [], []
    for m in maps:
        x = np.asarray(m, dtype=np.float64)
        means.append(torch.from_numpy(x.mean(axis=(0, 2, 3))).float())
        stds.append(torch.from_numpy(x.std(axis=(0, 2, 3))).float())
    return means, stds


def _predict_logits_batched(model: Callable[[torch.Tensor], torch.Tensor], frames: np.ndarray,
                            device: torch.device, batch_size: int) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            x = to_float_images(frames[i:i + batch_size], device)
            outs.append(class_map(model(x)).to(torch.uint8).cpu().numpy())
    if not outs:
        return np.zeros((0,) + tuple(np.asarray(frames).shape[1:3]), np.uint8)
    return np.concatenate(outs)


class MaskTask(ABC):
    """The shared train / select-on-val / score-test-once logic of the two mask tasks.

    Subclasses (the Task plugins) implement :meth:`train_keep` (which labelled frames train),
    :meth:`val_score` (selection score on val, higher is better) and :meth:`test_scores`.
    """

    config: MaskTaskConfig

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
                    data: list[dict[str, Any]], cell: CellInputs) -> "TestScores":
        """The task's metrics on the test units (``data``: their items, e.g. spacing), with
        each unit's own values and the per-unit parts of the main score."""

    # -- the loop ---------------------------------------------------------------------
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
            decoder.standardize_inputs(*map_statistics(maps))
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
        val_items = [_unit_item(load_unit(cell, u)) for u in cell.units["val"]]
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
            decoder.standardize_inputs(*map_statistics([np.concatenate(v) for v in levels]))
        model = EncoderDecoder(encoder, decoder, freeze_encoder=freeze).to(cell.device)
        groups: list[dict[str, Any]] = [{"params": list(decoder.parameters()), "lr": cfg.lr}]
        if not freeze:
            groups.append({"params": list(encoder.parameters()), "lr": cfg.encoder_lr})
        optimizer = make_optimizer(groups, cfg.optimizer, cfg.lr, cfg.weight_decay)

        def predict(item: dict[str, Any]) -> np.ndarray:
            model.eval()
            return _predict_logits_batched(model, item["frames"], cell.device,
                                           cfg.feature_batch_size)

        norm_eval = not freeze and cfg.finetune_norm_eval

        def step(idx: torch.Tensor) -> torch.Tensor:
            if norm_eval:  # after _fit's model.train()
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
            return [_unit_item(load_unit(cell, u)) for u in cell.units["test"]]

        return {"predict": predict, "load_test": load_test}, info

    def _fit(self, cell: CellInputs, model: nn.Module, optimizer: torch.optim.Optimizer,
             step: Callable[[torch.Tensor], torch.Tensor], n_train: int,
             predict: Callable[[dict[str, Any]], np.ndarray], val_items: list[dict[str, Any]],
             generator: torch.Generator, epochs: int | None = None) -> dict[str, Any]:
        """Train for ``epochs`` (default: the config's); keep the weights of the best val
        score."""
        cfg = self.config
        epochs = cfg.epochs if epochs is None else epochs
        if n_train == 0:
            raise SSLBenchError(f"benchmark {cell.benchmark.id!r}: the labelled units have no "
                                "training frames; check the dataset's masks")
        best_score, best_epoch, best_state = -np.inf, 0, snapshot(model)
        history = []
        stream = (endless_batches(n_train, cfg.batch_size, generator)
                  if cfg.steps_per_epoch is not None else None)
        amp = TrainingPrecision(cell.precision, cell.device)
        for epoch in range(1, epochs + 1):
            model.train()
            if stream is not None:
                batches: Iterator[torch.Tensor] = itertools.islice(stream, cfg.steps_per_epoch)
            else:
                batches = shuffled_batches(n_train, cfg.batch_size, generator)
            epoch_loss = EpochLoss()
            for n_steps, idx in enumerate(batches):
                if cfg.max_steps_per_epoch is not None and n_steps >= cfg.max_steps_per_epoch:
                    break
                with amp.autocast():
                    loss = step(idx)
                check_finite(loss, f"{cell.benchmark.id} decoder training")
                optimizer.zero_grad(set_to_none=True)
                amp.backward_step(loss, optimizer)
                epoch_loss.add(loss)
            cell.progress("downstream", epoch, epochs, epoch_loss.extras())
            if not val_items:  # no val split: keep the last epoch
                best_epoch, best_state = epoch, snapshot(model)
            elif epoch % cfg.eval_every == 0 or epoch == epochs:
                preds = [predict(it) for it in val_items]
                score = self.val_score(preds, [np.asarray(it["masks"]) for it in val_items], cell)
                history.append(round(float(score), 4))
                if score > best_score or best_epoch == 0:
                    best_score, best_epoch, best_state = score, epoch, snapshot(model)
        model.load_state_dict(best_state)
        model.eval()
        return {"best_epoch": best_epoch,
                "best_val_score": float(best_score) if val_items else None,
                "selection": "best val score" if val_items else "last epoch (no val units)",
                "val_history": history}

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
        val_items = [_unit_item(load_unit(cell, u)) for u in cell.units["val"]]
        size = cell.image_size

        def validate(predictor: nn.Module) -> float:
            was_training = predictor.training
            predictor.eval()
            preds = [_predict_logits_batched(predictor, it["frames"], cell.device,
                                             cfg.feature_batch_size) for it in val_items]
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
        method_details = _method_details(predictor, method_id)
        extra_predictors = _extra_predictors(predictor, method_id)
        info: dict[str, Any] = {**method_details,
                                "n_train_frames": int(len(data.labelled_frames)),
                                "n_unlabelled_frames": int(len(data.unlabelled_frames)),
                                "best_val_score": validate(predictor)}
        if extra_predictors:
            info["extra_predictors"] = {}
            for name, extra in extra_predictors.items():
                extra.eval()
                info["extra_predictors"][name] = {"val_score": validate(extra)}
        timer.downstream += time.perf_counter() - t0

        def predictor_fn(model: nn.Module) -> Callable[[dict[str, Any]], np.ndarray]:
            def predict(item: dict[str, Any]) -> np.ndarray:
                return _predict_logits_batched(model, item["frames"], cell.device,
                                               cfg.feature_batch_size)
            return predict

        def load_test() -> list[dict[str, Any]]:
            return [_unit_item(load_unit(cell, u)) for u in cell.units["test"]]

        return {"predict": predictor_fn(predictor), "load_test": load_test,
                "extra_predict": {name: predictor_fn(extra)
                                  for name, extra in extra_predictors.items()}}, info


#: record details the mask tasks write themselves (a method's ``predictor.details`` may not)
TASK_DETAIL_KEYS = frozenset({
    "label_units", "protocol", "n_train_frames", "n_unlabelled_frames", "best_val_score",
    "extra_predictors", "n_test_units", "feature_cache"})


def _method_details(predictor: nn.Module, method_id: str) -> dict[str, Any]:
    """The ``details`` dict a semi-supervised predictor may carry (see
    :meth:`ssl_bench.api.Method.fit_segmentation`); ``{}`` when it has none."""
    details = getattr(predictor, "details", None)
    if details is None:
        return {}
    if not isinstance(details, dict) or not all(isinstance(k, str) for k in details):
        raise SSLBenchError(f"method {method_id!r}: predictor.details must be a dict with str "
                            f"keys, got {type(details).__name__}; fix the method's "
                            "fit_segmentation")
    taken = sorted(set(details) & TASK_DETAIL_KEYS)
    if taken:
        raise SSLBenchError(f"method {method_id!r}: predictor.details uses key {taken[0]!r}, "
                            "which the task writes itself; rename it in the method")
    return dict(details)


def _extra_predictors(predictor: nn.Module, method_id: str) -> dict[str, nn.Module]:
    """The ``extra_predictors`` a semi-supervised predictor may carry (name -> module scored on
    val and test beside the row's predictor); ``{}`` when it has none."""
    extra = getattr(predictor, "extra_predictors", None)
    if extra is None:
        return {}
    if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, nn.Module) for k, v in extra.items()):
        raise SSLBenchError(f"method {method_id!r}: predictor.extra_predictors must be a dict "
                            "of str -> nn.Module; fix the method's fit_segmentation")
    return dict(extra)


def _soft_dice_term(probs: torch.Tensor, target: torch.Tensor, ignore_index: int
                    ) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes present, from softmax ``probs``.

    Without a one-hot tensor: the intersection of class k is the sum of p_k over the pixels
    labelled k (a gather and an ``index_add``), the label mass a ``bincount``."""
    num_classes = probs.shape[1]
    valid = target != ignore_index
    ids = torch.where(valid, target, 0)
    probs = probs * valid.unsqueeze(1)
    p_sum = probs.sum((0, 2, 3))
    flat = ids.flatten()
    p_true = probs.gather(1, ids.unsqueeze(1)).flatten()  # 0 at ignored pixels
    inter = torch.zeros(num_classes, dtype=probs.dtype, device=probs.device).index_add(
        0, flat, p_true)
    g_sum = torch.bincount(flat[valid.flatten()], minlength=num_classes).to(probs.dtype)
    inter, denom, present = inter[1:], (p_sum + g_sum)[1:], g_sum[1:] > 0
    if not present.any():
        return probs.new_zeros(())
    dice = (2 * inter[present] + 1e-5) / (denom[present] + 1e-5)
    return 1 - dice.mean()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes (1..K-1) present in the batch, pixels of
    the whole batch pooled; ignored pixels excluded (cf. MONAI ``DiceLoss`` with softmax and
    one-hot targets, as in its BTCV DiceCE recipes)."""
    return _soft_dice_term(F.softmax(logits, dim=1), target, ignore_index)


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                 dice_weight: float) -> torch.Tensor:
    """Cross-entropy (ignored pixels skipped) + ``dice_weight`` x :func:`soft_dice_loss`,
    sharing one log-softmax (half the time of computing the two separately on CPU)."""
    log_p = F.log_softmax(logits, dim=1)
    loss = F.nll_loss(log_p, target, ignore_index=ignore_index)
    if dice_weight > 0:
        loss = loss + dice_weight * _soft_dice_term(log_p.exp(), target, ignore_index)
    return loss


def _unit_item(data: UnitData) -> dict[str, Any]:
    if data.masks is None:
        raise SSLBenchError(f"unit {data.unit.id!r} has no masks; a segmentation benchmark needs "
                            "a dataset with label_kind 'mask'")
    item: dict[str, Any] = {"unit": data.unit.id, "frames": data.frames, "masks": data.masks}
    if data.spacing is not None:
        item["spacing"] = tuple(float(s) for s in data.spacing)
    return item


__all__ = [
    "class_map",
    "seed_everything", "resolve_protocol", "to_float_images", "load_unit", "feature_key",
    "frame_feature_entry",
    "make_optimizer", "shuffled_batches", "endless_batches", "snapshot", "Timer", "FrameIndex",
    "EpochLoss", "UnitProgress",
    "MaskTaskConfig", "MaskTask", "TestScores",
]
