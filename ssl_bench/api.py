"""The public interfaces a plugin implements: Method, Dataset, Task, Benchmark.

Each is small and typed. Metadata are closed pydantic models (``extra="forbid"``); a change
that alters scores bumps ``version``.

Data conventions shared by every plugin:

* A dataset is a list of :class:`Unit` (a video, an image clip, a CT volume), each in one
  split. Label fractions select training *units*, never frames.
* Any unit loads as a sequence of 2-D frames (:class:`UnitData`): video frames at a chosen
  rate, the frames of a clip, or the axial slices of a CT volume, all resized to a square
  ``size`` and stored as ``uint8`` RGB (grey CT slices are replicated to 3 channels after
  HU windowing).
* An :class:`Encoder` takes float images in ``[0, 1]`` of shape ``(B, 3, H, W)`` and does its
  own normalisation.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from ssl_bench.errors import SSLBenchError

if TYPE_CHECKING:
    from ssl_bench.cache import ArrayCache
    from ssl_bench.unit_scores import UnitParts

from ssl_bench.lazy import LazyClass  # noqa: F401  (re-exported: the public API)
from ssl_bench.meta import (  # noqa: F401  (re-exported: the public API)
    ID_PATTERN,
    PROFILES,
    SPLITS,
    Benchmark,
    Capability,
    DatasetMeta,
    LabelKind,
    Meta,
    MethodMeta,
    Modality,
    PretrainInput,
    Profile,
    ReferenceResult,
    Split,
    TaskMeta,
)

# --------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Unit:
    """One labelled item of a dataset: a video, an image clip or a CT volume."""

    id: str
    split: str
    #: identity of the underlying recording/patient (e.g. "cholec80/video01"); pretraining
    #: excludes any source that is in a val/test split of a dataset of the run
    source: str
    #: labels used to stratify label-fraction subsets (e.g. the classes present)
    strata: tuple[str, ...] = ()


@dataclass
class UnitData:
    """A unit loaded as a sequence of square 2-D frames."""

    unit: Unit
    frames: np.ndarray  # (T, H, W, 3) uint8, possibly a read-only memmap
    phases: np.ndarray | None = None  # (T,) int64 phase id per frame
    masks: np.ndarray | None = None  # (T, H, W) uint8 class id per pixel, ignore_index allowed
    fps: float | None = None  # frame rate of `frames` (videos)
    spacing: tuple[float, float, float] | None = None  # mm per (row, col, frame) for volumes
    frame_ids: np.ndarray | None = None  # original frame index of each frame (videos, clips)
    #: (T, n_tools) uint8 tool presence per frame (videos with tool annotations), else None;
    #: 0 absent, 1 present, 255 in every column of a frame the annotation does not cover
    tools: np.ndarray | None = None


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dataset(ABC):
    """Reads one real dataset layout from ``root``.

    Subclasses set ``meta`` and implement :meth:`units` and :meth:`load`. ``Options`` is a
    pydantic model of reader options (e.g. which split); ``cache_dir`` is where decoded frames
    and resampled volumes are cached (written atomically).
    """

    # Set on the class; an instance may replace it with a copy whose classes follow its options.
    meta: DatasetMeta
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, root: Path | str, options: Mapping[str, Any] | None = None,
                 cache_dir: Path | None = None) -> None:
        from ssl_bench.paths import cache_dir as default_cache_dir

        self.root = Path(root)
        try:
            self.options = self.Options(**dict(options or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SSLBenchError(
                f"bad option for dataset {self.meta.id!r}: {'.'.join(map(str, first['loc']))}: "
                f"{first['msg']}"
            ) from None
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "data"
        #: set by the harness when ``root`` is the embedded synthetic suite
        self.synthetic = False

    @abstractmethod
    def units(self) -> list[Unit]:
        """All units with their split. Raises :class:`ssl_bench.errors.DataError` naming the
        file (and line) when the layout is wrong."""

    @abstractmethod
    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        """Load one unit as frames of ``size`` x ``size`` (videos sampled at ``fps``)."""

    def frame_count(self, unit: Unit, fps: float = 1.0) -> int | None:
        """How many frames :meth:`load` returns for ``unit`` at ``fps`` (or a close estimate),
        counted without decoding (a video's container header, a folder's file list, a volume's
        NIfTI header), so that a dry run can plan a pretraining's steps (epochs x pool frames /
        batch); None when the reader cannot count them that cheaply. Default: None."""
        return None

    def prepare_cost(self, unit: Unit, variants: Sequence[tuple[int, float]]) -> int:
        """Work left to :meth:`prepare` ``unit`` for ``variants`` ((size, fps) pairs), counted
        the way ``prepare`` reports it (videos: frames to decode), for progress and ETA; 0 when
        the caches already hold every variant. Default: 1 (unknown, never skipped)."""
        return 1

    def prepare(self, unit: Unit, variants: Sequence[tuple[int, float]],
                progress: Callable[[int], None] | None = None) -> None:
        """Fill the on-disk caches of ``unit`` for every (size, fps) pair of ``variants`` at
        once (a video reader decodes once for all of them), calling ``progress(n)`` as ``n``
        more of :meth:`prepare_cost`'s work is done. Runs in a worker process of
        ``ssl-bench data prepare --jobs``, so the reader must pickle. Default: :meth:`load`
        each pair, then report 1."""
        for size, fps in variants:
            self.load(unit, size=size, fps=fps)
        if progress is not None:
            progress(1)

    def check(self) -> list[str]:
        """Problems with the layout on disk, one line each (empty when valid)."""
        from ssl_bench.errors import DataError

        try:
            units = self.units()
        except DataError as exc:
            return [str(exc)]
        problems = []
        for unit in units:
            try:
                self.load(unit, size=32)
            except DataError as exc:
                problems.append(str(exc))
        return problems

    def info(self) -> dict[str, Any]:
        units = self.units()
        return {
            "id": self.meta.id,
            "root": str(self.root),
            "classes": list(self.meta.classes),
            "units": {s: sum(1 for u in units if u.split == s) for s in SPLITS},
        }

    def fingerprint(self) -> str:
        """A string that changes when the data on disk change and is the same for the same
        data on any machine: the reader id, its options and every file's relative path, size
        and sampled content (:func:`ssl_bench.data_fingerprint.tree_fingerprint`; no mtimes,
        no absolute paths). Computed once per instance."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            from ssl_bench.data_fingerprint import tree_fingerprint

            salt = f"{self.meta.id}\0{self.options.model_dump()!r}"
            cached = self.__dict__["_fingerprint"] = tree_fingerprint(self.root, salt)
        return cached

    @classmethod
    def write_synthetic(cls, root: Path, size: str = "default", seed: int = 0) -> None:
        """Write a deterministic synthetic dataset in this reader's real layout under ``root``.

        Optional: datasets that support it are part of the embedded default suite."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------
# encoders and methods


class Encoder(nn.Module):
    """The downstream view of a (pre)trained backbone.

    ``forward`` maps float images in ``[0, 1]`` (B, 3, H, W) to a list of feature maps, finest
    first, with ``channels[i]`` channels at stride ``strides[i]``. Normalisation is the
    encoder's job, so every method keeps its own input statistics.
    """

    def __init__(self, channels: Sequence[int], strides: Sequence[int]) -> None:
        super().__init__()
        self.channels = list(channels)
        self.strides = list(strides)

    @property
    def embed_dim(self) -> int:
        return self.channels[-1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One vector per image: global average of the coarsest map."""
        return self(x)[-1].mean(dim=(2, 3))

    @torch.no_grad()
    def frame_features(self, frames: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Per-frame features of an ordered sequence (T, 3, H, W) -> (T, C).

        Video encoders override this to use temporal context (causally)."""
        outs = [self.embed(frames[i:i + batch_size]) for i in range(0, len(frames), batch_size)]
        return torch.cat(outs) if outs else frames.new_zeros((0, self.embed_dim))


class MethodConfig(BaseModel):
    """Budget and optimisation settings shared by every method; methods subclass it."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = 1
    max_steps: int | None = None  # cap on optimiser steps (None: epochs decide)
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    momentum: float = 0.9
    warmup_epochs: float = 0.0
    image_size: int = 64
    fps: float = 1.0  # frame rate of the pretraining pool's videos
    num_workers: int = 0


@dataclass
class MethodContext:
    """What the harness hands a method when it builds it."""

    profile: str
    device: torch.device
    seed: int
    cache_dir: Path
    log: Callable[[str], None] = print
    #: the run's ``--precision`` (``fp32``, ``bf16``, ``fp16``; :mod:`ssl_bench.precision`)
    precision: str = "fp32"
    #: the run's ``--compile``: the harness compiles the model's children for pretraining
    compile: bool = False


@dataclass(frozen=True)
class AugmentPolicy:
    """Which view augmentations the data of a pool allows (:func:`ssl_bench.transforms.
    ssl_augment` follows it): no colour jitter when any of its datasets has calibrated
    intensities (CT), no horizontal flips when any is lateralized (CT)."""

    colour_jitter: bool = True
    horizontal_flip: bool = True

    @classmethod
    def for_datasets(cls, metas: Sequence["DatasetMeta"]) -> "AugmentPolicy":
        return cls(colour_jitter=not any(m.calibrated_intensity for m in metas),
                   horizontal_flip=not any(m.lateralized for m in metas))


@dataclass
class PretrainPool:
    """Unlabelled pretraining data: train-split units of the datasets of one domain."""

    domain: str
    sequences: list[UnitData]
    fingerprint: str
    #: the view augmentations its data allows (methods pass it to ``ssl_augment``)
    augment_policy: AugmentPolicy = field(default_factory=AugmentPolicy)

    def frame_index(self) -> list[tuple[int, int]]:
        """(sequence, frame) pairs over every frame of the pool."""
        return [(s, t) for s, seq in enumerate(self.sequences) for t in range(len(seq.frames))]

    def __len__(self) -> int:
        return sum(len(s.frames) for s in self.sequences)


@dataclass
class SemiSupervisedData:
    """Inputs of a semi-supervised segmentation method (label subset + unlabelled rest)."""

    labelled_frames: np.ndarray  # (N, H, W, 3) uint8
    labelled_masks: np.ndarray  # (N, H, W) uint8
    unlabelled_frames: np.ndarray  # (M, H, W, 3) uint8 (train split minus the labelled units)
    num_classes: int
    ignore_index: int
    #: scores a predictor on the val split (higher is better); use it for model selection
    validate: Callable[[nn.Module], float]
    device: torch.device
    seed: int
    profile: str


class Method(ABC):
    """A pretraining method (``meta.kind == "pretrain"``) or a semi-supervised one.

    Pretraining is driven by the harness (on mmengine's Runner)::

        model = method.build()                       # every module trained and checkpointed
        data = method.pretrain_dataset(pool)         # a torch Dataset, default collate
        for batch in loader:                         # config.epochs / config.max_steps
            losses = method.training_step(model, batch, progress)   # {"loss": ..., ...}
            backward + optimiser step on method.parameters_to_optimize(model)
            method.after_step(model, progress)       # EMA / momentum updates
        encoder = method.encoder(model)

    Methods without pretraining set ``meta.pretrain_input = "none"``; the harness then calls
    ``method.encoder(method.build())`` directly. Semi-supervised methods implement
    :meth:`fit_segmentation` instead.
    """

    meta: ClassVar[MethodMeta]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: per-profile config values (keys of ``Config``); every method has smoke, cpu and paper
    profiles: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: None: the harness may pretrain the method in the run's ``--precision`` (autocast around
    #: ``training_step``). A method whose loss is unsafe in bfloat16/float16 (e.g. a
    #: numerically delicate normalisation) sets this to the reason, and is then pretrained in
    #: fp32 whatever the run asks (downstream tasks still use the run's precision).
    needs_fp32: ClassVar[str | None] = None

    def __init__(self, config: MethodConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context

    @classmethod
    def make_config(cls, profile: str, overrides: Mapping[str, Any] | None = None) -> MethodConfig:
        """The config of ``profile`` (a missing profile is an error, never a silent default),
        with ``overrides`` on top, validated against ``Config``."""
        return _make_config(cls.Config, "method", cls.meta.id, cls.profiles, profile, overrides)

    def lr_factor(self, progress: float) -> float | None:
        """The method's own learning-rate schedule: the multiplier of the optimiser's initial
        learning rate at training ``progress`` in [0, 1] (applied before every step), or None
        (the default) for the harness's schedule: linear warm-up over ``warmup_epochs``, then
        a cosine to 0. A method that returns a number at progress 0 owns its schedule."""
        return None

    def configure_optimizer(self, model: nn.Module) -> "torch.optim.Optimizer | None":
        """The method's own optimiser for pretraining (e.g. LARS for VICReg), or None to use the
        one ``config.optimizer`` names (adamw, adam, sgd). The learning-rate schedule (the
        harness's warm-up then cosine, or :meth:`lr_factor`) is applied to whatever optimiser
        this returns."""
        return None

    # -- pretraining --------------------------------------------------------------------
    @abstractmethod
    def build(self) -> nn.Module:
        """A fresh module holding every trained parameter and state buffer (EMA, queues)."""

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        raise NotImplementedError(f"{self.meta.id} has no pretraining stage")

    def training_step(
        self, model: nn.Module, batch: Any, progress: float
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{self.meta.id} has no pretraining stage")

    def after_step(self, model: nn.Module, progress: float) -> None:  # noqa: B027 (optional hook)
        """Called after each optimiser step (``progress`` in [0, 1])."""

    def parameters_to_optimize(self, model: nn.Module) -> list[nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    @abstractmethod
    def encoder(self, model: nn.Module) -> Encoder:
        """The downstream encoder (sharing weights with ``model``)."""

    # -- semi-supervised ----------------------------------------------------------------
    def fit_segmentation(self, data: SemiSupervisedData) -> nn.Module:
        """Train a predictor ``(B, 3, H, W) in [0, 1] -> (B, K, H, W)`` logits.

        The returned module is the one the row reports. It may carry two optional attributes
        that the mask tasks read:

        * ``details: dict[str, Any]`` (JSON-serialisable) is merged into the record's
          details; keys the task writes itself (``protocol``, ``best_val_score``,
          ``extra_predictors``, ...) are refused. A ``row_note`` key is a short text the
          leaderboard shows beside the row (e.g. which of several networks it reports).
        * ``extra_predictors: dict[str, nn.Module]`` are further predictors of the same
          contract (e.g. the other network of a two-network method). The task scores each
          one on val and on the same test units through the same metric as the row, and
          stores ``{"val_score": ..., "test": {metric: value}}`` under
          ``details["extra_predictors"][name]``; they never change the row's metrics.
        """
        raise NotImplementedError(f"{self.meta.id} is not a semi-supervised method")


# --------------------------------------------------------------------------------------
# tasks


#: ``progress(stage, done, total, extras)``: how far a long stage has got, for the live
#: display and the run's ETA (e.g. ``("features", 3, 12, {})`` after 3 of 12 units, or
#: ``("downstream", 5, 25, {"loss": 0.41})`` after epoch 5 of 25). ``extras`` may carry
#: ``loss`` (a float) and, in pretraining, ``batch`` (samples per step).
Progress = Callable[[str, int, int, Mapping[str, Any]], None]


def no_progress(stage: str, done: int, total: int, extras: Mapping[str, Any]) -> None:
    """The default :data:`Progress`: report nowhere."""


@dataclass
class CellInputs:
    """Everything a task needs to evaluate one cell (method x benchmark x fraction x seed).

    ``progress`` is optional to call: a task that reports its stages (feature extraction,
    training epochs) through it gets them shown live; one that does not still runs."""

    benchmark: Benchmark
    dataset: Dataset
    protocol: str
    label_frac: float
    seed: int
    units: dict[str, list[Unit]]  # by split
    label_units: list[Unit]  # chosen by the harness: the labelled training units
    method: Method
    make_encoder: Callable[[], Encoder]  # a fresh encoder carrying the pretrained weights
    checkpoint_id: str  # identifies the encoder weights (feature cache key)
    cache: "ArrayCache"
    image_size: int
    device: torch.device
    profile: str
    log: Callable[[str], None] = print
    progress: Progress = no_progress
    #: the run's ``--precision``: tasks run feature extraction and training under
    #: ``ssl_bench.precision.autocast(precision, device)``
    precision: str = "fp32"


@dataclass
class TaskResult:
    """What a task reports for one cell.

    ``per_unit``: for each metric, its value on each test unit alone (unit id -> value).
    ``main_parts``: the exact decomposition of the main score over the test units
    (:class:`ssl_bench.unit_scores.UnitParts`); the paired bootstrap of the leaderboard
    resamples it, and the engine checks that it reproduces ``metrics[main_score]``.
    """

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    per_unit: dict[str, dict[str, float]] = field(default_factory=dict)
    main_parts: "UnitParts | None" = None


class TaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0


class Task(ABC):
    """A downstream protocol and its metrics."""

    meta: ClassVar[TaskMeta]
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    profiles: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    @classmethod
    def make_config(cls, profile: str, overrides: Mapping[str, Any] | None = None) -> TaskConfig:
        """The config of ``profile`` with ``overrides`` (benchmark task options, ``-o``) on top."""
        return _make_config(cls.Config, "task", cls.meta.id, cls.profiles, profile, overrides)

    @classmethod
    def applies_to(cls, method_meta: MethodMeta, dataset_meta: DatasetMeta) -> bool:
        return bool(set(cls.meta.requires) & set(method_meta.provides)) and (
            dataset_meta.domain in method_meta.domains
        )

    @abstractmethod
    def evaluate(self, cell: CellInputs) -> TaskResult:
        """Fit on ``cell.label_units``, select on val, score test once."""


def _make_config(config_cls: type[BaseModel], kind: str, id: str,
                 profiles: Mapping[str, Mapping[str, Any]], profile: str,
                 overrides: Mapping[str, Any] | None) -> Any:
    if profile not in profiles:
        have = ", ".join(sorted(profiles)) or "none"
        raise SSLBenchError(f"{kind} {id!r} has no {profile!r} profile (it has: {have}); add "
                            f"profiles[{profile!r}] to its class or run with another --profile")
    values = {**profiles[profile], **(overrides or {})}
    try:
        return config_cls(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(map(str, first["loc"]))
        if first["type"] == "extra_forbidden":
            valid = ", ".join(sorted(config_cls.model_fields))
            raise SSLBenchError(f"{kind} {id!r} has no setting {key!r}; valid settings: "
                                f"{valid}") from None
        raise SSLBenchError(f"bad config for {kind} {id!r} ({profile}): {key}: "
                            f"{first['msg']}") from None


def label_count(n_units: int, label_frac: float) -> int:
    """Number of labelled units for a fraction: round-half-up, at least one."""
    return max(1, min(n_units, math.floor(label_frac * n_units + 0.5)))
