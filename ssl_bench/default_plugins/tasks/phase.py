"""Surgical phase recognition (Cholec80, M2CAI16-workflow): per-frame features + causal MS-TCN.

Protocol (as in DistillSelf ``xmed-lab/DistillingSelf``, SelfSupSurg, TeCNO, EndoViT):

* Frames at ``feature_fps`` (default 1 fps; ``dataset.load(..., fps=feature_fps)``).
* ``linear``: the frozen encoder's per-frame features (``Encoder.frame_features``; video
  encoders use causal temporal context) are computed once per (checkpoint, unit, frame rate)
  and cached; a causal MS-TCN (:mod:`ssl_bench.heads.mstcn`) is trained on the labelled videos.
  This is the "frozen trunk + temporal head" protocol; no separate per-frame linear probe is run.
* ``finetune`` (DistillSelf / TeCNO stage 1 then stage 2): the encoder plus a linear per-frame
  head are fine-tuned with cross-entropy on the 1-fps frames of the labelled videos (Adam 1e-4,
  lr halved every 2 epochs, 10 epochs in DistillSelf); the epoch with the best val frame
  accuracy is kept (DistillSelf selected it on the test videos; here val is used). Features are
  then extracted at ``feature_fps`` with the fine-tuned encoder (not cached across cells) and
  the temporal model is trained on them as in ``linear``.
* Default temporal model: a causal MS-TCN of 3 stages x 12 layers x 64 maps (dropout 0.5),
  cross-entropy + 0.15 x truncated MSE (clamp 16), Adam 5e-4, 100 epochs in ``paper``. The
  multi-stage design and the 0.15 smoothing weight are MS-TCN's (Farha & Gall, whose code uses
  4 stages x 10 layers), the causal convolutions TeCNO's; 3 stages is this harness's choice;
  layers, maps, optimiser, lr and epochs match DistillSelf's released ``train.py``, whose
  model is *not* this one (next item). One video per batch in ``paper`` as in MS-TCN, except
  that the last batch of an epoch holds two videos when one would be left alone
  (:func:`ssl_bench.task_toolkit.shuffled_batches`); the smaller profiles batch
  several videos, padded at the end (causal, so padding never reaches an earlier frame; padded
  frames carry no loss).
* DistillSelf's released temporal protocol (``train.py --action base_train``, model
  ``BaseCausalTCN``), selected by the benchmark ``cholec80-phase-distillself`` through task
  options: ``num_stages=1`` and ``input_dropout=0.5`` (a single-stage causal TCN, 12 layers,
  64 maps, ``nn.Dropout2d`` on the input features), ``smoothing_weight=1.0``,
  ``feature_fps=5``, Adam 5e-4 with ``weight_decay=1e-5``, ``lr_halve_every=30`` (the lr is
  halved at the start of epochs 30, 60, 90, as ``if epoch % 30 == 0: learning_rate *= 0.5``
  does there), ``fresh_optimizer_each_epoch=True`` (that loop builds a new Adam every epoch,
  which resets its moment estimates), 100 epochs, one video per batch. The best epoch is
  picked on val, not on the test videos as there.
* ``cpu`` profile: a 2-stage x 6-layer x 32-map MS-TCN, Adam 3e-3, 400 epochs, 8 videos per
  batch. With 1 % labels that is one video and one optimiser step per epoch; with 25 epochs
  the model scores what the position in the video alone gives (an encoder with constant
  features scores like random init), so the table cannot see the frames
  (``benchmarks/validity/phase_probe.py``).
* Selection (:func:`ssl_bench.task_toolkit.train_and_select`, both stages): best epoch by
  mean per-video val accuracy (stage 1: frame accuracy); the test videos are scored once with
  :func:`ssl_bench.metrics.phase.phase_metrics` at the features' frame rate (the relaxed
  boundary is 10 s = ``10 * feature_fps`` frames) with the dataset's relaxed phase groups.
  Main score: video-level accuracy; Jaccard etc. reported alongside.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ssl_bench.api import CellInputs, Encoder, Task, TaskConfig, TaskResult, Unit, UnitData
from ssl_bench.default_plugins.tasks.metas import PHASE_RECOGNITION_META
from ssl_bench.errors import SSLBenchError
from ssl_bench.heads.mstcn import CausalMSTCN, mstcn_loss
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
from ssl_bench.unit_scores import mean_parts, per_unit_values

PAD = -100


#: frame rate of the stage-1 fine-tuning frames (:func:`ssl_bench.task_toolkit.load_unit`)
FINETUNE_FPS = 1.0


def temporal_lr(base_lr: float, epoch: int, halve_every: int | None) -> float:
    """The temporal model's lr in 1-based ``epoch``: ``base_lr`` halved at the start of every
    epoch that is a multiple of ``halve_every`` (DistillSelf's train.py with 30: epochs 1-29 at
    5e-4, 30-59 at 2.5e-4, 60-89 at 1.25e-4, 90-100 at 6.25e-5); constant when None."""
    if halve_every is None:
        return base_lr
    return base_lr * 0.5 ** (epoch // halve_every)


class PhaseRecognitionConfig(TaskConfig):
    """``epochs``, ``batch_size`` (videos per step), ``lr``, ``weight_decay``: the temporal
    model (see the module docstring for the defaults and DistillSelf's variant)."""

    optimizer: str = "adam"
    num_stages: int = 3
    num_layers: int = 12
    channels: int = 64
    dropout: float = 0.5
    #: Dropout2d over the input feature channels (0: none; DistillSelf's BaseCausalTCN: 0.5)
    input_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    smoothing_weight: float = 0.15
    #: frame rate of the per-frame features the temporal model sees (and of the metrics)
    feature_fps: float = Field(default=1.0, gt=0.0)
    #: halve the lr at the start of every epoch that is a multiple of this (None: constant)
    lr_halve_every: int | None = Field(default=None, ge=1)
    #: build a new optimiser (fresh moment estimates) at the start of every epoch
    fresh_optimizer_each_epoch: bool = False
    eval_every: int = 1
    feature_batch_size: int = 64
    #: standardise the per-frame features with the labelled training frames' statistics
    #: before the temporal model (:class:`ssl_bench.task_toolkit.Standardization`, a linear
    #: probe's usual normalisation), so an encoder's arbitrary feature scale does not act as
    #: a learning rate
    standardize_features: bool = False
    # finetune stage 1: encoder + linear per-frame head, on 1-fps frames
    finetune_epochs: int = 10
    finetune_lr: float = 1e-4
    finetune_batch_size: int = 32
    #: halve the stage-1 lr after every this many epochs (None: constant)
    finetune_lr_halve_every: int | None = Field(default=2, ge=1)
    finetune_max_steps_per_epoch: int | None = None


class PhaseRecognition(Task):
    meta = PHASE_RECOGNITION_META
    Config = PhaseRecognitionConfig
    profiles = {
        "smoke": {"epochs": 4, "batch_size": 4, "lr": 5e-3, "num_stages": 2, "num_layers": 4,
                  "channels": 16, "dropout": 0.0, "finetune_epochs": 1,
                  "finetune_batch_size": 16, "finetune_lr": 1e-3,
                  "finetune_max_steps_per_epoch": 4, "feature_batch_size": 32},
        # 400 epochs: with 1 % labels (one video, one step per epoch) 25 epochs left the model
        # at what the position in the video gives, whatever the frames (benchmarks/validity)
        "cpu": {"epochs": 400, "batch_size": 8, "lr": 3e-3, "num_stages": 2, "num_layers": 6,
                "channels": 32, "dropout": 0.3, "eval_every": 5, "finetune_epochs": 2,
                "finetune_batch_size": 32, "finetune_lr": 3e-4,
                "finetune_max_steps_per_epoch": 30},
        "paper": {"epochs": 100, "batch_size": 1, "lr": 5e-4, "num_stages": 3,
                  "num_layers": 12, "channels": 64, "dropout": 0.5, "finetune_epochs": 10,
                  "finetune_batch_size": 32, "finetune_lr": 1e-4, "finetune_lr_halve_every": 2},
    }

    def __init__(self, config: PhaseRecognitionConfig) -> None:
        super().__init__(config)
        self.config: PhaseRecognitionConfig = config

    # -- features ----------------------------------------------------------------------
    def _features(self, cell: CellInputs, encoder: Encoder, unit: Unit,
                  fingerprint: str | None, loaded: dict[str, UnitData] | None = None
                  ) -> dict[str, np.ndarray]:
        """Per-frame features and phases of one video at ``feature_fps``; cached when
        ``fingerprint`` is given (linear protocol, shared with tool presence:
        :func:`ssl_bench.task_toolkit.frame_feature_entry`), else computed from ``loaded``
        data (frames already loaded at ``feature_fps``) or a fresh load."""
        entry = frame_feature_entry(cell, encoder, unit, fingerprint,
                                    self.config.feature_batch_size, "phases", loaded,
                                    fps=self.config.feature_fps)
        if "phases" not in entry:
            raise SSLBenchError(f"unit {unit.id!r} of dataset {cell.dataset.meta.id!r} has no "
                                "phase labels; phase recognition needs label_kind 'phase'")
        return entry

    # -- stage 1 of finetune ---------------------------------------------------------------
    def _finetune_encoder(self, cell: CellInputs, generator: torch.Generator, num_phases: int,
                          loaded: dict[str, UnitData]) -> tuple[Encoder, dict[str, Any]]:
        """Stage 1 of ``finetune``; fills ``loaded`` with the train and val videos it read.
        The encoder is kept at the epoch of the best mean val frame accuracy (the last epoch
        without val videos); its selection goes into the record under ``finetune_`` keys."""
        cfg = self.config
        encoder = cell.make_encoder().to(cell.device)
        head = nn.Linear(encoder.embed_dim, num_phases).to(cell.device)
        for u in cell.label_units + cell.units["val"]:
            loaded[u.id] = load_unit(cell, u)
        train = FrameIndex([loaded[u.id] for u in cell.label_units])
        val = [loaded[u.id] for u in cell.units["val"]]
        params = list(encoder.parameters()) + list(head.parameters())
        optimizer = make_optimizer(params, "adam", cfg.finetune_lr, cfg.weight_decay)
        scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, cfg.finetune_lr_halve_every, 0.5)
                     if cfg.finetune_lr_halve_every is not None else None)
        amp = TrainingPrecision(cell.precision, cell.device)

        def step(idx: torch.Tensor) -> torch.Tensor:
            x = to_float_images(train.frames(idx), cell.device)
            y = torch.from_numpy(train.phases(idx)).to(cell.device)
            return F.cross_entropy(head(encoder.embed(x)), y)

        def train_epoch(epoch: int) -> EpochLoss:
            epoch_loss = optimise_epoch(
                shuffled_batches(len(train), cfg.finetune_batch_size, generator), step, optimizer,
                amp, f"{cell.benchmark.id} encoder fine-tuning", cfg.finetune_max_steps_per_epoch)
            if scheduler is not None:
                scheduler.step()
            return epoch_loss

        def validate() -> float:
            accs = []
            with torch.no_grad():
                for d in val:
                    logits = torch.cat([
                        head(encoder.embed(to_float_images(d.frames[i:i + cfg.feature_batch_size],
                                                           cell.device)))
                        for i in range(0, len(d.frames), cfg.feature_batch_size)])
                    gt = torch.from_numpy(np.asarray(d.phases, dtype=np.int64)).to(cell.device)
                    accs.append(100.0 * (logits.argmax(1) == gt).float().mean().item())
            return float(np.mean(accs))

        selection = train_and_select([encoder, head], cfg.finetune_epochs, train_epoch,
                                     validate if val else None, val_metric="frame_accuracy",
                                     progress=cell.progress, stage="fine-tuning")
        return encoder, {**selection.details(prefix="finetune_"),
                         "finetune_n_train_frames": len(train)}

    # -- MS-TCN ----------------------------------------------------------------------------
    @staticmethod
    def _pad(videos: list[dict[str, np.ndarray]], device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(v["phases"]) for v in videos)
        dim = videos[0]["features"].shape[1]
        x = torch.zeros((len(videos), dim, length))
        y = torch.full((len(videos), length), PAD, dtype=torch.long)
        for i, v in enumerate(videos):
            t = len(v["phases"])
            x[i, :, :t] = torch.from_numpy(np.asarray(v["features"], np.float32)).T
            y[i, :t] = torch.from_numpy(np.asarray(v["phases"], np.int64))
        return x.to(device), y.to(device)

    @classmethod
    def _predict(cls, model: CausalMSTCN, videos: list[dict[str, np.ndarray]],
                 device: torch.device, chunk: int = 8) -> list[np.ndarray]:
        """Last-stage argmax per video; videos are padded at the end and run ``chunk`` at a
        time (the model is causal, so the padding never changes a real frame's output)."""
        preds: list[np.ndarray] = []
        with torch.no_grad():
            for i in range(0, len(videos), chunk):
                group = videos[i:i + chunk]
                x, _ = cls._pad(group, device)
                labels = model(x)[-1].argmax(1).cpu().numpy().astype(np.int64)
                preds.extend(labels[j, :len(v["phases"])] for j, v in enumerate(group))
        return preds

    def evaluate(self, cell: CellInputs) -> TaskResult:
        cfg = self.config
        generator = seed_everything(cell.seed)
        timer = Timer()
        meta = cell.dataset.meta
        num_phases = len(meta.classes)
        protocol = resolve_protocol(cell)
        hits0, misses0 = cell.cache.hits, cell.cache.misses
        details: dict[str, Any] = {"protocol": protocol,
                                   "label_units": [u.id for u in cell.label_units]}

        t0 = time.perf_counter()
        loaded: dict[str, UnitData] = {}
        if protocol == "finetune":
            encoder, info = self._finetune_encoder(cell, generator, num_phases, loaded)
            details.update(info)
            timer.downstream += time.perf_counter() - t0
            t0 = time.perf_counter()
            fingerprint = None  # fine-tuned weights differ per cell: no cross-cell cache
        else:
            encoder = cell.make_encoder().to(cell.device).eval()
            fingerprint = cell.dataset.fingerprint()
        if cfg.feature_fps != FINETUNE_FPS:
            loaded.clear()  # stage 1 read 1-fps frames; the features need other ones
        counter = UnitProgress(cell, "features", [cell.label_units, cell.units["val"],
                                                cell.units["test"]])
        train = [counter.done(self._features(cell, encoder, u, fingerprint, loaded))
                 for u in cell.label_units]
        val = [counter.done(self._features(cell, encoder, u, fingerprint, loaded))
               for u in cell.units["val"]]
        loaded.clear()
        timer.features += time.perf_counter() - t0

        t0 = time.perf_counter()
        standardization = (Standardization.fit(np.concatenate([v["features"] for v in train]))
                           if cfg.standardize_features else None)

        def standardize(video: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            if standardization is None:
                return video
            return {**video, "features": standardization.apply(video["features"])}
        train, val = [standardize(v) for v in train], [standardize(v) for v in val]
        model = CausalMSTCN(train[0]["features"].shape[1], num_phases, cfg.num_stages,
                            cfg.num_layers, cfg.channels, cfg.dropout,
                            input_dropout=cfg.input_dropout).to(cell.device)
        optimizer = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
        # the temporal model trains in float32 whatever the run's precision
        fp32 = TrainingPrecision("fp32", cell.device)

        def step(idx: torch.Tensor) -> torch.Tensor:
            x, y = self._pad([train[i] for i in idx.tolist()], cell.device)
            return mstcn_loss(model(x), y, ignore_index=PAD, smoothing_weight=cfg.smoothing_weight)

        def train_epoch(epoch: int) -> EpochLoss:
            nonlocal optimizer
            lr = temporal_lr(cfg.lr, epoch, cfg.lr_halve_every)
            if cfg.fresh_optimizer_each_epoch and epoch > 1:
                optimizer = make_optimizer(model.parameters(), cfg.optimizer, lr,
                                           cfg.weight_decay)
            for group in optimizer.param_groups:
                group["lr"] = lr
            return optimise_epoch(shuffled_batches(len(train), cfg.batch_size, generator), step,
                                  optimizer, fp32, f"{cell.benchmark.id} temporal model training")

        def validate() -> float:
            accs = [100.0 * float(np.mean(p == v["phases"]))
                    for p, v in zip(self._predict(model, val, cell.device), val)]
            return float(np.mean(accs))

        selection = train_and_select([model], cfg.epochs, train_epoch, validate if val else None,
                                     val_metric="accuracy", eval_every=cfg.eval_every,
                                     progress=cell.progress)
        timer.downstream += time.perf_counter() - t0

        # ---- the one test pass
        t0 = time.perf_counter()
        test = [standardize(counter.done(self._features(cell, encoder, u, fingerprint)))
                for u in cell.units["test"]]
        timer.features += time.perf_counter() - t0
        t0 = time.perf_counter()
        from ssl_bench.metrics.phase import phase_metrics

        preds = self._predict(model, test, cell.device)
        gts = [np.asarray(v["phases"], np.int64) for v in test]
        metrics, per_class = phase_metrics(preds, gts, num_phases, fps=cfg.feature_fps,
                                           relaxed_groups=meta.relaxed_phase_groups)
        unit_ids = [u.id for u in cell.units["test"]]
        per_unit = per_unit_values(unit_ids, [
            phase_metrics([p], [g], num_phases, fps=cfg.feature_fps,
                          relaxed_groups=meta.relaxed_phase_groups)[0]
            for p, g in zip(preds, gts)])
        timer.downstream += time.perf_counter() - t0
        # per-phase values are keyed by phase id in the metric; the record uses phase names
        names = {str(i): name for i, name in enumerate(meta.classes)}
        per_class = {metric: {names.get(k, k): float(v) for k, v in values.items()}
                     for metric, values in per_class.items()}
        details.update({
            "n_train_frames": int(sum(len(v["phases"]) for v in train)),
            "feature_fps": cfg.feature_fps,
            **selection.details(),
            "feature_cache": {"hits": cell.cache.hits - hits0,
                              "misses": cell.cache.misses - misses0},
        })
        return TaskResult(metrics={k: float(v) for k, v in metrics.items()}, per_class=per_class,
                          details=details, timings=timer.as_dict(), per_unit=per_unit,
                          main_parts=mean_parts(per_unit["accuracy"]))
