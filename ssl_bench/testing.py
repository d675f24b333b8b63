"""Test doubles: a tiny method and tiny in-memory datasets (the mocks of lm-eval and mteb).

They implement the public interfaces exactly as a plugin does, so tests of tasks, the run
engine and the CLI exercise the real code paths in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench import hookimpl
from ssl_bench.api import (
    Benchmark,
    Dataset,
    DatasetMeta,
    Encoder,
    Method,
    MethodConfig,
    MethodMeta,
    PretrainPool,
    Unit,
    UnitData,
)
from ssl_bench.records import CellRecord, Component, DatasetRef, Status, TaskRef


class TinyConvEncoder(Encoder):
    """Two conv stages (stride 2 and 4): a few thousand parameters."""

    def __init__(self, width: int = 8) -> None:
        super().__init__(channels=[width, 2 * width], strides=[2, 4])
        self.stage1 = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1),
                                    nn.BatchNorm2d(2 * width), nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - 0.5) / 0.25
        a = self.stage1(x)
        return [a, self.stage2(a)]


class _DummyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = TinyConvEncoder()
        self.projector = nn.Linear(16, 8)


class _FrameDataset(torch.utils.data.Dataset):
    def __init__(self, pool: PretrainPool) -> None:
        self.pool = pool
        self.index = pool.frame_index()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        s, t = self.index[i]
        frame = np.asarray(self.pool.sequences[s].frames[t])
        return torch.from_numpy(frame.copy()).permute(2, 0, 1).float() / 255.0


class DummyMethod(Method):
    """A two-view consistency method on a tiny CNN (flip vs. identity)."""

    meta = MethodMeta(
        id="dummy",
        version="1",
        kind="pretrain",
        name="Dummy",
        paper="none (test double)",
        description="tiny CNN, cosine consistency between an image and its flip",
        backbone="tiny-cnn",
    )
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 3, "batch_size": 8, "image_size": 32},
        "cpu": {"epochs": 1, "max_steps": 20, "batch_size": 16, "image_size": 64},
        "paper": {"epochs": 1, "max_steps": 100, "batch_size": 32, "image_size": 224},
    }

    def build(self) -> nn.Module:
        return _DummyModel()

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        return _FrameDataset(pool)

    def training_step(
        self, model: nn.Module, batch: Any, progress: float
    ) -> dict[str, torch.Tensor]:
        assert isinstance(model, _DummyModel)
        z1 = model.projector(model.backbone.embed(batch))
        z2 = model.projector(model.backbone.embed(torch.flip(batch, dims=[3])))
        loss = 1 - F.cosine_similarity(z1, z2.detach()).mean()
        return {"loss": loss}

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, _DummyModel)
        return model.backbone


class FailingMethod(DummyMethod):
    """Raises during pretraining: the run must record a failed cell and go on."""

    meta = DummyMethod.meta.model_copy(update={"id": "failing", "name": "Failing"})

    def training_step(
        self, model: nn.Module, batch: Any, progress: float
    ) -> dict[str, torch.Tensor]:
        raise RuntimeError("this method always fails")


class NanLossMethod(DummyMethod):
    """Its pretraining loss turns NaN from the second optimiser step (step index 1) on: the
    engine must stop that cell with a failed record naming the step and run the others."""

    meta = DummyMethod.meta.model_copy(update={"id": "nan-loss", "name": "NaN loss"})
    nan_from_call = 2

    def training_step(
        self, model: nn.Module, batch: Any, progress: float
    ) -> dict[str, torch.Tensor]:
        self._calls = getattr(self, "_calls", 0) + 1
        loss = super().training_step(model, batch, progress)["loss"]
        if self._calls >= self.nan_from_call:
            loss = loss * float("nan")
        return {"loss": loss}


class DummyInitMethod(DummyMethod):
    """The dummy model without pretraining (its seeded random init): a second, cheap method
    whose cells need no pretraining job."""

    meta = DummyMethod.meta.model_copy(update={"id": "dummy-init", "name": "Dummy (init)",
                                               "pretrain_input": "none"})


class CollapsedEncoder(Encoder):
    """A deliberately collapsed encoder: a constant plus ``1e-4`` times its inner encoder's
    maps. Different images still give (barely) different outputs, so it passes the Encoder
    contract, but its embeddings all point one way: the state a silently broken SSL loss
    (no negatives, no stop-gradient) drives an encoder into. The health check must flag it."""

    def __init__(self, inner: Encoder, level: float = 0.5, scale: float = 1e-4) -> None:
        super().__init__(inner.channels, inner.strides)
        self.inner = inner
        self.level = level
        self.scale = scale

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.level + self.scale * m for m in self.inner(x)]


def collapsed(cls: type[Method], id: str | None = None) -> type[Method]:
    """The broken control of any method class: the same pretraining, a collapsed encoder
    (:class:`CollapsedEncoder`). It must show no significant gain over random init and be
    flagged by the health check (benchmarks/validity)."""
    meta = cls.meta.model_copy(update={
        "id": id or f"{cls.meta.id}-collapsed", "name": f"{cls.meta.name} (collapsed control)",
        "description": "broken control: its encoder is a constant plus 1e-4 of the trained one"})

    class Collapsed(cls):  # type: ignore[valid-type, misc]
        def encoder(self, model: nn.Module) -> Encoder:
            return CollapsedEncoder(super().encoder(model))

    Collapsed.meta = meta
    Collapsed.__name__ = Collapsed.__qualname__ = f"Collapsed{cls.__name__}"
    return Collapsed


#: the broken control over the tiny dummy method (tests)
CollapsedControl = collapsed(DummyMethod, "collapsed-control")


# --------------------------------------------------------------------------------------
# tiny in-memory datasets: 6 train / 2 val / 2 test units


def _split(i: int) -> str:
    return "train" if i < 6 else ("val" if i < 8 else "test")


def _blob_frames(rng: np.random.Generator, n: int, size: int, cls: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose colour and a square's position depend on the class of each frame/pixel."""
    frames = np.zeros((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    palette = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.uint8)
    for t in range(n):
        c = int(cls[t])
        frames[t] = palette[c % len(palette)] // 3
        half = size // 4
        y, x = rng.integers(0, size - half, size=2)
        frames[t, y:y + half, x:x + half] = palette[c % len(palette)]
        masks[t, y:y + half, x:x + half] = 1 + c % 3
    noise = rng.integers(0, 20, size=frames.shape, dtype=np.uint8)
    return frames + noise, masks


class _InMemory(Dataset):
    """In-memory test datasets: "writing" the synthetic version only creates the folder."""

    @classmethod
    def write_synthetic(cls, root: Path, size: str = "default", seed: int = 0) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)


class TinyVideoDataset(_InMemory):
    """10 videos of 3 phases in order; frame colour follows the phase.

    Tool labels (3 tools): ``tool-a`` in phases 0-1, ``tool-b`` in phase 1, ``tool-c`` on every
    other frame of phase 2 (half of it invisible in the frames); the last frame of each video
    is unannotated (255), as a frame past the end of a tool file is."""

    meta = DatasetMeta(id="tiny-video", version="1", name="Tiny video", modality="video",
                       domain="surgical", label_kind="phase", classes=("a", "b", "c"),
                       tools=("tool-a", "tool-b", "tool-c"), license="CC0",
                       citation="test double", fps=1.0)

    def units(self) -> list[Unit]:
        return [Unit(f"video{i:02d}", _split(i), f"tiny/video{i:02d}") for i in range(10)]

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        i = int(unit.id[-2:])
        rng = np.random.default_rng(i)
        lengths = rng.integers(4, 8, size=3)
        phases = np.repeat(np.arange(3), lengths)
        frames, _ = _blob_frames(rng, len(phases), size, phases)
        every_other = np.arange(len(phases)) % 2 == 0
        tools = np.stack([phases <= 1, phases == 1, (phases == 2) & every_other], axis=1)
        tools = tools.astype(np.uint8)
        tools[-1] = 255
        return UnitData(unit, frames, phases=phases.astype(np.int64), fps=fps,
                        frame_ids=np.arange(len(phases)) * 25, tools=tools)

    def fingerprint(self) -> str:
        return "tiny-video-1"


class TinySegDataset(_InMemory):
    """10 clips of 4 frames; masks have 4 classes (0 background)."""

    meta = DatasetMeta(id="tiny-seg", version="1", name="Tiny segmentation", modality="image",
                       domain="surgical", label_kind="mask",
                       classes=("background", "a", "b", "c"), license="CC0",
                       citation="test double")

    def units(self) -> list[Unit]:
        return [Unit(f"clip{i:02d}", _split(i), f"tiny/clip{i:02d}") for i in range(10)]

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        i = int(unit.id[-2:])
        rng = np.random.default_rng(100 + i)
        frames, masks = _blob_frames(rng, 4, size, rng.integers(0, 3, size=4))
        return UnitData(unit, frames, masks=masks, frame_ids=np.arange(4))

    def fingerprint(self) -> str:
        return "tiny-seg-1"


class TinyVolumeDataset(_InMemory):
    """10 'CT volumes' of 6 slices; 3 organs (0 background)."""

    meta = DatasetMeta(id="tiny-ct", version="1", name="Tiny CT", modality="volume",
                       domain="ct", label_kind="mask", classes=("background", "a", "b", "c"),
                       license="CC0", citation="test double", calibrated_intensity=True,
                       lateralized=True)

    def units(self) -> list[Unit]:
        return [Unit(f"img{i:04d}", _split(i), f"tiny/img{i:04d}") for i in range(10)]

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        i = int(unit.id[-4:])
        rng = np.random.default_rng(200 + i)
        frames, masks = _blob_frames(rng, 6, size, rng.integers(0, 3, size=6))
        grey = frames.mean(axis=3, keepdims=True).astype(np.uint8)
        return UnitData(unit, np.repeat(grey, 3, axis=3), masks=masks, spacing=(2.0, 2.0, 3.0))

    def fingerprint(self) -> str:
        return "tiny-ct-1"


TINY_BENCHMARKS = [
    Benchmark(id="tiny-phase", dataset="tiny-video", task="phase-recognition", label_fracs=(0.5,),
              seeds=(0,)),
    Benchmark(id="tiny-seg", dataset="tiny-seg", task="semantic-segmentation", label_fracs=(0.5,),
              seeds=(0,)),
    Benchmark(id="tiny-organ", dataset="tiny-ct", task="organ-segmentation", label_fracs=(0.5,),
              seeds=(0,)),
    Benchmark(id="tiny-tools", dataset="tiny-video", task="tool-presence", label_fracs=(0.5,),
              seeds=(0,), default=False),
]


class TestingPlugin:
    """Registers the test doubles; use with :func:`ssl_bench.plugins.register_plugin`."""

    @hookimpl
    def register_methods(self, register: Callable[[Any], None]) -> None:
        register(DummyMethod)
        register(FailingMethod)
        register(NanLossMethod)
        register(DummyInitMethod)
        register(CollapsedControl)

    @hookimpl
    def register_datasets(self, register: Callable[[Any], None]) -> None:
        for ds in (TinyVideoDataset, TinySegDataset, TinyVolumeDataset):
            register(ds)

    @hookimpl
    def register_benchmarks(self, register: Callable[[Any], None]) -> None:
        for b in TINY_BENCHMARKS:
            register(b)


class FakeClock:
    """A clock that moves only when a test sets ``now``: pass it as ``clock=`` to the display
    and the ETA tracker (``ssl_bench.engine.display``, ``ssl_bench.engine.eta``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cli_exit_code(args: list[str]) -> int:
    """Run the ``ssl-bench`` command in this process with ``args``; its exit code."""
    from ssl_bench.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def score_record(method: str, seed: int, score: float | None, *, benchmark: str = "b1",
                 label_frac: float = 0.5, profile: str = "smoke", status: Status = "ok",
                 plugin: str = "p", ssl_bench_version: str = "0.2.0") -> CellRecord:
    """A minimal result record of one cell (dataset ``d``, task ``t`` with main score ``acc``,
    higher is better; ``score`` None records no metric): input for leaderboard tests."""
    return CellRecord(
        ssl_bench_version=ssl_bench_version, date="2026-01-01T00:00:00Z", benchmark=benchmark,
        method=Component(id=method, version="1", plugin=plugin), method_kind="pretrain",
        dataset=DatasetRef(id="d", version="1"),
        task=TaskRef(id="t", version="1", main_score="acc", higher_is_better={"acc": True}),
        protocol="linear", profile=profile, label_frac=label_frac, seed=seed, cell_seed=seed,
        metrics={"acc": score} if score is not None else {}, main_score=score,
        synthetic=True, status=status)


def tiny_dataset(cls: type[Dataset], root: Path | None = None) -> Dataset:
    return cls(root or Path("."))


def installed_methods() -> list[type[Method]]:
    """Every method class the installed plugins register (the core's and every plugin's, not
    only the core's as under pytest), sorted by id; the plugin manager is reset before and
    after, so the caller's plugin state is what it was."""
    import os
    from importlib.metadata import entry_points

    from ssl_bench import plugins

    names = ",".join(ep.name for ep in entry_points(group=plugins.GROUP))
    before = os.environ.get("SSL_BENCH_LOAD_PLUGINS")
    os.environ["SSL_BENCH_LOAD_PLUGINS"] = names
    plugins.reset()
    try:
        classes = [entry.obj for entry in plugins.resolved_registries().methods]
    finally:
        if before is None:
            del os.environ["SSL_BENCH_LOAD_PLUGINS"]
        else:
            os.environ["SSL_BENCH_LOAD_PLUGINS"] = before
        plugins.reset()
    return sorted(classes, key=lambda c: c.meta.id)


__all__ = [
    "CollapsedControl", "CollapsedEncoder", "collapsed",
    "DummyMethod", "DummyInitMethod", "FailingMethod", "NanLossMethod", "TinyConvEncoder",
    "TinyVideoDataset",
    "TinySegDataset",
    "TinyVolumeDataset", "TestingPlugin", "TINY_BENCHMARKS", "MethodConfig", "tiny_pool",
    "smoke_method", "fit_fixed_batch", "first_batch", "cli_exit_code", "FakeClock", "tiny_cell",
    "tiny_dataset", "installed_methods",
]


# --------------------------------------------------------------------------------------
# helpers for method tests


def tiny_pool(domain: str = "surgical", size: int = 32) -> PretrainPool:
    """A pretraining pool from the train units of the tiny datasets of one domain."""
    from ssl_bench.api import MethodContext  # noqa: F401  (re-exported for tests)

    datasets: list[Dataset] = (
        [TinyVideoDataset("."), TinySegDataset(".")] if domain == "surgical"
        else [TinyVolumeDataset(".")]
    )
    seqs = [ds.load(u, size=size) for ds in datasets for u in ds.units() if u.split == "train"]
    return PretrainPool(domain=domain, sequences=seqs, fingerprint=f"tiny-{domain}-{size}")


def smoke_method(cls: type[Method], profile: str = "smoke", **overrides: Any) -> Method:
    """Build a method with its smoke profile on CPU (seed 0) for unit tests."""
    import tempfile

    from ssl_bench.api import MethodContext

    config = cls.make_config(profile, overrides)
    ctx = MethodContext(profile=profile, device=torch.device("cpu"), seed=0,
                        cache_dir=Path(tempfile.mkdtemp(prefix="ssl-bench-test-")),
                        log=lambda _msg: None)
    return cls(config, ctx)


def fit_fixed_batch(method: Method, model: nn.Module, batch: Any, steps: int = 5,
                    lr: float = 1e-2) -> list[float]:
    """Run ``steps`` optimiser steps of ``method.training_step`` on one fixed batch and return
    the losses (a smoke check that the loss falls)."""
    torch.manual_seed(0)
    params = method.parameters_to_optimize(model)
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    model.train()
    for i in range(steps):
        torch.manual_seed(i)  # identical augmentation randomness is not needed; batch is fixed
        out = method.training_step(model, batch, progress=i / max(steps - 1, 1))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        method.after_step(model, progress=i / max(steps - 1, 1))
        losses.append(float(out["loss"].detach()))
    return losses


def first_batch(dataset: torch.utils.data.Dataset, batch_size: int = 8) -> Any:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return next(iter(loader))


def tiny_cell(tmp: Path, dataset: Dataset, *, protocol: str = "linear", label_frac: float = 0.5,
              seed: int = 0, cache: Any = None, method_cls: type[Method] = DummyMethod,
              benchmark_id: str | None = None) -> Any:
    """The ``CellInputs`` of one smoke cell on a tiny dataset (its benchmark from
    ``TINY_BENCHMARKS``: ``benchmark_id``, else the first on the dataset), with a fixed random
    ``TinyConvEncoder`` as the "pretrained" encoder."""
    from ssl_bench.api import CellInputs, MethodContext
    from ssl_bench.cache import ArrayCache
    from ssl_bench.splits import select_label_units

    benchmark = next(b for b in TINY_BENCHMARKS if b.dataset == dataset.meta.id
                     and benchmark_id in (None, b.id))
    units = dataset.units()
    torch.manual_seed(123)
    state = TinyConvEncoder().state_dict()

    def make_encoder() -> TinyConvEncoder:
        encoder = TinyConvEncoder()
        encoder.load_state_dict(state)
        return encoder

    context = MethodContext(profile="smoke", device=torch.device("cpu"), seed=seed, cache_dir=tmp)
    return CellInputs(
        benchmark=benchmark.model_copy(update={"protocol": protocol}), dataset=dataset,
        protocol=protocol, label_frac=label_frac, seed=seed,
        units={s: [u for u in units if u.split == s] for s in ("train", "val", "test")},
        label_units=select_label_units(units, dataset.meta.id, label_frac, seed),
        method=method_cls(method_cls.make_config("smoke"), context),
        make_encoder=make_encoder, checkpoint_id="dummy-ckpt-123",
        cache=cache or ArrayCache(tmp / "cache"), image_size=32, device=torch.device("cpu"),
        profile="smoke", log=lambda _: None)
