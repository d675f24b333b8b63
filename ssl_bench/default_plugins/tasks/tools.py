"""Surgical tool presence detection (Cholec80): multi-label, one score per tool and frame.

Protocol (SelfSupSurg, Ramesh et al., Medical Image Analysis 2023, CAMMA-public/SelfSupSurg
``configs/config/hparams/cholec80/finetuning/*/series_01/test/tools``; EndoNet, Twinanda et
al., IEEE TMI 2017, for the task and its annotations):

* Frames at 1 fps, the rate of the Cholec80 tool annotations, labelled from
  :attr:`ssl_bench.api.UnitData.tools` (the dataset's ``meta.tools`` columns). Frames the
  annotation does not cover (255) are left out of training and scoring.
* Loss: binary cross-entropy with logits over the tools, each tool weighted on its positive
  frames by ``pos_weight`` = negative / positive labelled training frames of that tool (1 for
  a tool without positives). SelfSupSurg passes fixed per-tool ``pos_weight`` values from its
  training set (grasper 0.52 ... scissors 52.2); here they are computed from the labelled
  frames of each cell.
* ``linear``: the frozen encoder's per-frame features (``Encoder.frame_features``) are computed
  once per (checkpoint, video) and cached under the same key as phase recognition's (one
  extraction serves both tasks: :func:`ssl_bench.task_toolkit.frame_feature_entry`). They are
  standardised with the statistics of the labelled training frames
  (:class:`ssl_bench.task_toolkit.Standardization`: a linear probe's usual normalisation, cf.
  MAE's BatchNorm without affine before its linear head), and one linear layer is trained
  on shuffled frame batches. SelfSupSurg publishes no linear tool protocol:
  its epochs (50) and batch size (64) are used in ``paper``, Adam 1e-3 is our choice.
* ``finetune`` (the ``supervised`` row always; SelfSupSurg's tool fine-tuning): encoder and a
  linear head on its pooled embedding are trained end to end on the labelled frames. ``paper``
  follows SelfSupSurg: Adam, lr 1e-5 dropped to 1e-6 after 25 of 50 epochs, weight decay
  5e-4, 64 frames per batch (per GPU there). Departures: the backbone and image size are the
  harness's, not
  SelfSupSurg's ResNet-50 at its own resolution; no AMP / synchronised BatchNorm.
* Selection: the epoch with the best val ``mAP`` (the main score, video-wise); the test videos
  are scored once with :func:`ssl_bench.metrics.tools.tool_metrics`.

Main score: ``mAP`` is **video-wise** (AP per tool in each test video, per tool the mean over
the videos where it occurs, then the mean over tools: ivtmetrics' recommended
``compute_video_AP``, the CholecT50 protocol). ``frame_mAP`` is the AP pooled over all test
frames that SelfSupSurg computes for Cholec80 (``utils/model_helpers.py``), reported beside it
to compare with published Cholec80 figures. The pooled AP cannot be the main score: a frame's
rank depends on every other video's frames, so it is no ratio of per-video sums and a paired
bootstrap over test videos (:mod:`ssl_bench.unit_scores`) could not recompute it; the
video-wise mAP is a class-wise mean of per-video values, so ``main_parts`` reproduces it
exactly. ``per_unit`` holds each test video's own mAP; ``details`` the test prevalence of each
tool and the chance levels (the metrics of a constant score, whose AP is the prevalence).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.api import CellInputs, Encoder, Task, TaskConfig, TaskResult, Unit, UnitData
from ssl_bench.default_plugins.tasks.metas import TOOL_PRESENCE_META
from ssl_bench.errors import SSLBenchError
from ssl_bench.metrics.tools import tool_metrics
from ssl_bench.precision import TrainingPrecision
from ssl_bench.task_toolkit import (
    EpochLoss,
    FrameIndex,
    Standardization,
    Timer,
    UnitProgress,
    frame_feature_entry,
    load_unit,
    make_optimizer,
    optimise_epoch,
    resolve_protocol,
    seed_everything,
    shuffled_batches,
    to_float_images,
    train_and_select,
)
from ssl_bench.unit_scores import classwise_mean_parts

UNANNOTATED = 255


class ToolPresenceConfig(TaskConfig):
    """``epochs``, ``batch_size`` (frames), ``lr``, ``weight_decay``: the linear head on
    frozen features; ``finetune_*``: the end-to-end protocol."""

    optimizer: str = "adam"
    #: weight each tool's positive frames by its negative / positive training-frame ratio
    pos_weight: bool = True
    #: standardise frozen features with the labelled training frames' mean and std
    standardize: bool = True
    #: score val every this many epochs (and after the last one)
    eval_every: int = 1
    feature_batch_size: int = 64
    finetune_epochs: int = 50
    finetune_lr: float = 1e-5
    finetune_weight_decay: float = 5e-4
    finetune_batch_size: int = 64
    #: multiply the fine-tuning learning rate by 0.1 after this many epochs (None: constant)
    finetune_lr_drop_epoch: int | None = 25
    finetune_max_steps_per_epoch: int | None = None


def annotated(tools: np.ndarray) -> np.ndarray:
    """(T,) bool: the frames whose tool labels are annotated (not 255)."""
    return np.all(np.asarray(tools) != UNANNOTATED, axis=1)


def positive_weights(labels: np.ndarray) -> np.ndarray:
    """(K,) negative / positive frame ratio per tool of ``(N, K)`` 0/1 labels (1 where a tool
    has no positive frame)."""
    labels = np.asarray(labels, dtype=np.float64)
    pos = labels.sum(axis=0)
    neg = len(labels) - pos
    return np.where(pos > 0, neg / np.where(pos > 0, pos, 1.0), 1.0)


class ToolPresence(Task):
    meta = TOOL_PRESENCE_META
    Config = ToolPresenceConfig
    profiles = {
        "smoke": {"epochs": 5, "batch_size": 32, "lr": 1e-2, "feature_batch_size": 32,
                  "finetune_epochs": 1, "finetune_batch_size": 16, "finetune_lr": 1e-3,
                  "finetune_weight_decay": 0.0, "finetune_lr_drop_epoch": None,
                  "finetune_max_steps_per_epoch": 4},
        "cpu": {"epochs": 30, "batch_size": 64, "lr": 3e-3, "eval_every": 5,
                "finetune_epochs": 2, "finetune_batch_size": 32, "finetune_lr": 3e-4,
                "finetune_weight_decay": 0.0, "finetune_lr_drop_epoch": None,
                "finetune_max_steps_per_epoch": 30},
        "paper": {"epochs": 50, "batch_size": 64, "lr": 1e-3, "eval_every": 5,
                  "finetune_epochs": 50, "finetune_batch_size": 64, "finetune_lr": 1e-5,
                  "finetune_weight_decay": 5e-4, "finetune_lr_drop_epoch": 25},
    }

    def __init__(self, config: ToolPresenceConfig) -> None:
        super().__init__(config)
        self.config: ToolPresenceConfig = config

    # -- data ----------------------------------------------------------------------------
    @staticmethod
    def _tool_names(cell: CellInputs) -> tuple[str, ...]:
        names = cell.dataset.meta.tools
        if not names:
            raise SSLBenchError(f"dataset {cell.dataset.meta.id!r} declares no tools; tool "
                                "presence needs a dataset with tool annotations (meta.tools, "
                                "e.g. cholec80)")
        return names

    @staticmethod
    def _check_tools(cell: CellInputs, unit: Unit, tools: np.ndarray | None, n_tools: int
                     ) -> np.ndarray:
        if tools is None:
            raise SSLBenchError(f"unit {unit.id!r} of dataset {cell.dataset.meta.id!r} has no "
                                "tool labels; restore its tool annotation file (cholec80: "
                                f"tool_annotations/{unit.id}-tool.txt)")
        tools = np.asarray(tools, dtype=np.uint8)
        if tools.ndim != 2 or tools.shape[1] != n_tools:
            raise SSLBenchError(f"unit {unit.id!r}: tool labels of shape {tools.shape}, expected "
                                f"(frames, {n_tools}) for the tools of {cell.dataset.meta.id!r}")
        return tools

    def _entry(self, cell: CellInputs, encoder: Encoder, unit: Unit, fingerprint: str,
               n_tools: int) -> dict[str, np.ndarray]:
        entry = frame_feature_entry(cell, encoder, unit, fingerprint,
                                    self.config.feature_batch_size, "tools")
        tools = self._check_tools(cell, unit, entry.get("tools"), n_tools)
        return {"features": np.asarray(entry["features"], np.float32), "tools": tools}

    # -- training --------------------------------------------------------------------------
    def _fit(self, cell: CellInputs, modules: list[nn.Module], optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler | None, epochs: int, batch_size: int,
             max_steps: int | None, n_train: int, step: Callable[[torch.Tensor], torch.Tensor],
             predict_val: Callable[[], list[np.ndarray]], val_gts: list[np.ndarray],
             names: tuple[str, ...], generator: torch.Generator) -> dict[str, Any]:
        """Train ``epochs`` with :func:`~ssl_bench.task_toolkit.train_and_select`; keep the
        modules' state of the best val mAP (the last epoch when there are no val videos).
        Returns the selection's record details."""
        if n_train == 0:
            raise SSLBenchError(f"benchmark {cell.benchmark.id!r}: the labelled videos have no "
                                "annotated tool frames; check the tool annotation files")
        amp = TrainingPrecision(cell.precision, cell.device)

        def train_epoch(epoch: int) -> EpochLoss:
            epoch_loss = optimise_epoch(shuffled_batches(n_train, batch_size, generator), step,
                                        optimizer, amp,
                                        f"{cell.benchmark.id} tool presence training", max_steps)
            if scheduler is not None:
                scheduler.step()
            return epoch_loss

        def validate() -> float:
            return float(tool_metrics(predict_val(), val_gts, names)[0]["mAP"])

        selection = train_and_select(modules, epochs, train_epoch,
                                     validate if val_gts else None, val_metric="mAP",
                                     eval_every=self.config.eval_every, progress=cell.progress)
        return selection.details()

    def _bce(self, pos_weight: torch.Tensor | None
             ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        return loss

    def _pos_weight(self, labels: np.ndarray, device: torch.device) -> torch.Tensor | None:
        if not self.config.pos_weight:
            return None
        return torch.from_numpy(positive_weights(labels)).float().to(device)

    # -- linear protocol ------------------------------------------------------------------------
    def _linear(self, cell: CellInputs, names: tuple[str, ...], generator: torch.Generator,
                timer: Timer) -> tuple[Callable[[], list[tuple[np.ndarray, np.ndarray]]],
                                       dict[str, Any]]:
        cfg = self.config
        k = len(names)
        encoder = cell.make_encoder().to(cell.device).eval()
        fingerprint = cell.dataset.fingerprint()
        t0 = time.perf_counter()
        counter = UnitProgress(cell, "features", [cell.label_units, cell.units["val"],
                                                cell.units["test"]])
        train = [counter.done(self._entry(cell, encoder, u, fingerprint, k))
                 for u in cell.label_units]
        val = [counter.done(self._entry(cell, encoder, u, fingerprint, k))
               for u in cell.units["val"]]
        timer.features += time.perf_counter() - t0

        t0 = time.perf_counter()
        keep = [annotated(v["tools"]) for v in train]
        x_np = np.concatenate([v["features"][m] for v, m in zip(train, keep)])
        y_np = np.concatenate([v["tools"][m] for v, m in zip(train, keep)])
        standardize = (Standardization.fit(x_np) if cfg.standardize and len(x_np)
                       else Standardization.identity(x_np.shape[1]))
        x = torch.from_numpy(standardize.apply(x_np)).to(cell.device)
        y = torch.from_numpy(y_np.astype(np.float32)).to(cell.device)
        head = nn.Linear(x.shape[1], k).to(cell.device)
        optimizer = make_optimizer(head.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
        criterion = self._bce(self._pos_weight(y_np, cell.device))

        def predict(feats: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                z = torch.from_numpy(standardize.apply(feats)).to(cell.device)
                return head(z).double().cpu().numpy()

        def step(idx: torch.Tensor) -> torch.Tensor:
            idx = idx.to(cell.device)
            return criterion(head(x[idx]), y[idx])

        val_keep = [annotated(v["tools"]) for v in val]
        info = self._fit(cell, [head], optimizer, None, cfg.epochs, cfg.batch_size, None, len(x),
                         step, lambda: [predict(v["features"])[m] for v, m in zip(val, val_keep)],
                         [v["tools"][m] for v, m in zip(val, val_keep)], names, generator)
        timer.downstream += time.perf_counter() - t0
        info["n_train_frames"] = int(len(x))

        def score_test() -> list[tuple[np.ndarray, np.ndarray]]:
            t1 = time.perf_counter()
            test = [counter.done(self._entry(cell, encoder, u, fingerprint, k))
                    for u in cell.units["test"]]
            timer.features += time.perf_counter() - t1
            return [(predict(v["features"]), v["tools"]) for v in test]

        return score_test, info

    # -- finetune protocol ------------------------------------------------------------------------
    def _finetune(self, cell: CellInputs, names: tuple[str, ...], generator: torch.Generator,
                  timer: Timer) -> tuple[Callable[[], list[tuple[np.ndarray, np.ndarray]]],
                                         dict[str, Any]]:
        cfg = self.config
        k = len(names)
        t0 = time.perf_counter()
        encoder = cell.make_encoder().to(cell.device)
        head = nn.Linear(encoder.embed_dim, k).to(cell.device)

        def load(u: Unit) -> UnitData:
            data = load_unit(cell, u)
            data.tools = self._check_tools(cell, u, data.tools, k)
            return data

        def tool_labels(data: UnitData) -> np.ndarray:
            assert data.tools is not None  # load() checked them
            return data.tools

        train_data = [load(u) for u in cell.label_units]
        val_data = [load(u) for u in cell.units["val"]]
        train = FrameIndex(train_data, keep=[annotated(tool_labels(d)) for d in train_data])
        labels = (np.concatenate([tool_labels(d)[annotated(tool_labels(d))] for d in train_data])
                  if train_data else np.zeros((0, k), np.uint8))
        params = list(encoder.parameters()) + list(head.parameters())
        optimizer = make_optimizer(params, cfg.optimizer, cfg.finetune_lr,
                                   cfg.finetune_weight_decay)
        scheduler = (torch.optim.lr_scheduler.MultiStepLR(optimizer, [cfg.finetune_lr_drop_epoch],
                                                          0.1)
                     if cfg.finetune_lr_drop_epoch else None)
        criterion = self._bce(self._pos_weight(labels, cell.device))

        def predict(frames: np.ndarray) -> np.ndarray:
            outs = []
            with torch.no_grad():
                for i in range(0, len(frames), cfg.feature_batch_size):
                    x = to_float_images(frames[i:i + cfg.feature_batch_size], cell.device)
                    outs.append(head(encoder.embed(x)).double().cpu().numpy())
            return np.concatenate(outs) if outs else np.zeros((0, k))

        def step(idx: torch.Tensor) -> torch.Tensor:
            x = to_float_images(train.frames(idx), cell.device)
            y = torch.from_numpy(train.tools(idx).astype(np.float32)).to(cell.device)
            return criterion(head(encoder.embed(x)), y)

        val_keep = [annotated(tool_labels(d)) for d in val_data]
        info = self._fit(cell, [encoder, head], optimizer, scheduler, cfg.finetune_epochs,
                         cfg.finetune_batch_size, cfg.finetune_max_steps_per_epoch, len(train),
                         step, lambda: [predict(d.frames)[m] for d, m in zip(val_data, val_keep)],
                         [tool_labels(d)[m] for d, m in zip(val_data, val_keep)], names, generator)
        timer.downstream += time.perf_counter() - t0
        info["n_train_frames"] = len(train)

        def score_test() -> list[tuple[np.ndarray, np.ndarray]]:
            t1 = time.perf_counter()
            out = []
            for u in cell.units["test"]:
                data = load(u)
                out.append((predict(data.frames), tool_labels(data)))
            timer.features += time.perf_counter() - t1
            return out

        return score_test, info

    # -- the cell -------------------------------------------------------------------------------
    def evaluate(self, cell: CellInputs) -> TaskResult:
        generator = seed_everything(cell.seed)
        timer = Timer()
        names = self._tool_names(cell)
        protocol = resolve_protocol(cell)
        hits0, misses0 = cell.cache.hits, cell.cache.misses
        details: dict[str, Any] = {"protocol": protocol,
                                   "label_units": [u.id for u in cell.label_units]}
        if protocol == "finetune":
            score_test, info = self._finetune(cell, names, generator, timer)
        else:
            score_test, info = self._linear(cell, names, generator, timer)
        details.update(info)

        # ---- the one test pass
        scored = score_test()
        t0 = time.perf_counter()
        keep = [annotated(gt) for _, gt in scored]
        preds = [p[m] for (p, _), m in zip(scored, keep)]
        gts = [gt[m] for (_, gt), m in zip(scored, keep)]
        metrics, per_class, video_ap = tool_metrics(preds, gts, names)
        chance = tool_metrics([np.zeros(g.shape) for g in gts], gts, names)[0]
        unit_ids = [u.id for u in cell.units["test"]]
        with np.errstate(invalid="ignore"):
            own = {u: float(np.nanmean(row)) if np.isfinite(row).any() else math.nan
                   for u, row in zip(unit_ids, video_ap)}
        per_unit = {"mAP": own, "frame_mAP": dict(own)}
        main_parts = classwise_mean_parts({u: row.tolist() for u, row in zip(unit_ids, video_ap)})
        timer.downstream += time.perf_counter() - t0
        all_gt = np.concatenate(gts) if gts else np.zeros((0, len(names)))
        details.update({
            "n_test_frames": int(len(all_gt)),
            "test_prevalence": {n: round(100.0 * float(all_gt[:, i].mean()), 4) if len(all_gt)
                                else None for i, n in enumerate(names)},
            "chance_mAP": _json_float(chance["mAP"]),
            "chance_frame_mAP": _json_float(chance["frame_mAP"]),
            "feature_cache": {"hits": cell.cache.hits - hits0,
                              "misses": cell.cache.misses - misses0},
        })
        return TaskResult(metrics={k: float(v) for k, v in metrics.items()}, per_class=per_class,
                          details=details, timings=timer.as_dict(), per_unit=per_unit,
                          main_parts=main_parts)


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)
