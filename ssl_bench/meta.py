"""Metadata of the things plugins register: methods, datasets, tasks and benchmarks.

Small closed pydantic models (``extra="forbid"``, frozen); a change that alters scores bumps
``version``. This module imports neither torch nor any plugin code, so listing what is
installed stays fast.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Profile = Literal["smoke", "cpu", "paper"]
PROFILES: tuple[str, ...] = ("smoke", "cpu", "paper")
Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
Modality = Literal["video", "image", "volume"]
LabelKind = Literal["phase", "mask", "tools"]
#: What a method's result can be used for downstream.
#: ``frame-features``: one vector per frame (phase recognition);
#: ``spatial-features``: multi-scale feature maps (segmentation heads);
#: ``segmentation-predictor``: a trained predictor of masks (semi-supervised methods).
Capability = Literal["frame-features", "spatial-features", "segmentation-predictor"]
PretrainInput = Literal["none", "frames", "frame-pairs", "clips"]
ID_PATTERN = r"^[a-z0-9][a-z0-9.\-]*$"
#: the CNN every CNN method uses by default, so leaderboard rows are comparable (the
#: ``backbone`` of their metadata; :mod:`ssl_bench.backbones` builds it)
DEFAULT_CNN = "efficientnet_lite0"


class Meta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MethodMeta(Meta):
    """What a method is and what it can be used for."""

    id: str = Field(pattern=ID_PATTERN)
    version: str
    kind: Literal["pretrain", "semi-supervised"]
    name: str
    paper: str  # citation: authors, title, venue, year
    url: str | None = None
    license: str = "Apache-2.0"
    description: str = ""
    #: what pretraining consumes; "none" means the method has no pretraining stage
    pretrain_input: PretrainInput = "frames"
    #: pretraining pools (dataset domains) the method applies to
    domains: tuple[str, ...] = ("surgical", "ct")
    provides: frozenset[Capability] = frozenset({"frame-features", "spatial-features"})
    #: "benchmark": use the benchmark's protocol; "finetune": always fine-tune (the supervised row)
    protocol: Literal["benchmark", "finetune"] = "benchmark"
    backbone: str = ""


class DatasetMeta(Meta):
    """What a dataset reader reads."""

    id: str = Field(pattern=ID_PATTERN)
    version: str
    name: str
    modality: Modality
    domain: str  # pretraining pool the train units join: "surgical" or "ct"
    label_kind: LabelKind
    classes: tuple[str, ...]
    #: names of the columns of :attr:`UnitData.tools` (videos with tool annotations), else ()
    tools: tuple[str, ...] = ()
    ignore_index: int = 255
    license: str
    citation: str
    url: str | None = None
    fps: float | None = None  # native frame rate of videos
    #: pixel intensities are physical measurements (CT Hounsfield units, windowed): colour or
    #: intensity jitter in SSL views would teach invariance to the signal that identifies
    #: tissue, so pools holding such data get no colour jitter or grayscale
    calibrated_intensity: bool = False
    #: left and right are anatomically distinct (axial CT: liver right, spleen left; left and
    #: right kidneys): a horizontal flip swaps organs, so pools holding such data get no flips
    lateralized: bool = False
    #: phase datasets: 0-based phase ids of the two groups with special relaxed-boundary rules
    #: in the official MATLAB evaluation (Cholec80: ((3, 4), (5, 6)); M2CAI16: ((4, 5), (6, 7)))
    relaxed_phase_groups: tuple[tuple[int, ...], tuple[int, ...]] | None = None


class TaskMeta(Meta):
    """A downstream protocol with a fixed metric set."""

    id: str = Field(pattern=ID_PATTERN)
    version: str
    name: str
    description: str = ""
    label_kind: LabelKind
    modalities: tuple[Modality, ...]
    #: a method applies when it provides any of these
    requires: tuple[Capability, ...]
    protocols: tuple[str, ...] = ("linear", "finetune")
    main_score: str
    higher_is_better: dict[str, bool]
    #: the largest |Δ| of the main score that ``ssl-bench verify`` accepts between a record
    #: and its re-run where only the environment differs (another CPU type, library build or
    #: thread count): the same computation then differs in its last bits, and training
    #: amplifies them. None: the scores must be equal unless ``--tolerance`` is given. A task
    #: states where its figure comes from (in its docstring or beside its meta).
    verify_tolerance: float | None = Field(default=None, ge=0)


class ReferenceResult(Meta):
    """A published figure a benchmark can be compared with (shown as a "published" row of the
    leaderboard, never ranked with measured rows). Give ``label_count`` or ``label_frac``."""

    method: str
    value: float
    metric: str
    label_count: int | None = None
    label_frac: float | None = None
    backbone: str = ""
    citation: str
    url: str | None = None
    note: str = ""


class Benchmark(Meta):
    """A dataset bound to a task and a protocol, with default label fractions and seeds."""

    id: str = Field(pattern=ID_PATTERN)
    version: str = "1"
    dataset: str
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    #: reader options that depend on the budget profile (e.g. a coarser CT resampling for the
    #: cpu profile, whose 64 px slices cannot use 1.5 mm voxels anyway); merged over
    #: ``dataset_options`` and recorded in every record
    profile_dataset_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    task: str
    protocol: str = "linear"
    #: task config values this benchmark fixes (a protocol variant), merged over the task's
    #: profile values; ``profile_task_options`` per profile on top of them
    task_options: dict[str, Any] = Field(default_factory=dict)
    profile_task_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    label_fracs: tuple[float, ...] = (0.01, 0.05, 0.1, 1.0)
    #: default numbers of labelled training units (videos, clips, volumes); when given they
    #: replace ``label_fracs`` as the benchmark's default label settings
    label_counts: tuple[int, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    #: part of the default run (``--benchmarks default``, what ``make run`` runs)
    default: bool = True
    description: str = ""
    #: published figures to show beside the measured rows
    references: tuple[ReferenceResult, ...] = ()

    def options_for(self, profile: str) -> dict[str, Any]:
        return {**self.dataset_options, **self.profile_dataset_options.get(profile, {})}

    def task_options_for(self, profile: str) -> dict[str, Any]:
        return {**self.task_options, **self.profile_task_options.get(profile, {})}
