"""Tool presence detection on the tiny video dataset with the smoke profile, and on the small
synthetic Cholec80 suite with the real ImageNet weights (the synthetic tools carry signal)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_bench.api import CellInputs, Unit, UnitData
from ssl_bench.cache import ArrayCache
from ssl_bench.default_plugins.benchmarks import BENCHMARKS
from ssl_bench.default_plugins.tasks import TASKS
from ssl_bench.default_plugins.tasks.phase import PhaseRecognition
from ssl_bench.default_plugins.tasks.tools import ToolPresence, annotated, positive_weights
from ssl_bench.metrics.tools import tool_metrics
from ssl_bench.splits import select_label_units
from ssl_bench.testing import DummyMethod, TinyVideoDataset, tiny_cell

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class RecordingVideoDataset(TinyVideoDataset):
    def __init__(self) -> None:
        super().__init__(Path("."))
        self.loads: list[str] = []

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        self.loads.append(unit.id)
        return super().load(unit, size, fps)


class SupervisedDummy(DummyMethod):
    meta = DummyMethod.meta.model_copy(update={"id": "supervised-dummy", "protocol": "finetune"})


def make_cell(tmp: Path, dataset: TinyVideoDataset, **kwargs) -> CellInputs:
    return tiny_cell(tmp, dataset, benchmark_id="tiny-tools", **kwargs)


def run(cell: CellInputs):
    return ToolPresence(ToolPresence.make_config("smoke")).evaluate(cell)


def test_registered_and_benchmark_off_the_default_run() -> None:
    assert any(task.load() is ToolPresence for task in TASKS)  # registered by path
    meta = ToolPresence.meta
    assert meta.id == "tool-presence" and meta.main_score == "mAP"
    assert meta.requires == ("frame-features",) and meta.label_kind == "tools"
    bench = next(b for b in BENCHMARKS if b.id == "cholec80-tools")
    assert (bench.dataset, bench.task, bench.protocol, bench.default) == (
        "cholec80", "tool-presence", "linear", False)
    for profile in ("smoke", "cpu", "paper"):
        ToolPresence.make_config(profile)


def test_positive_weights_are_the_negative_positive_ratio() -> None:
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_allclose(positive_weights(labels), [1 / 3, 3.0, 1.0])


def test_linear_smoke_metrics_per_unit_and_main_parts(tmp_path: Path) -> None:
    dataset = RecordingVideoDataset()
    result = run(make_cell(tmp_path, dataset))
    assert result.details["protocol"] == "linear"
    assert result.details["label_units"] == [u.id for u in select_label_units(
        dataset.units(), dataset.meta.id, 0.5, 0)]
    assert 0.0 <= result.metrics["mAP"] <= 100.0 and 0.0 <= result.metrics["frame_mAP"] <= 100.0
    assert set(result.metrics) <= set(ToolPresence.meta.higher_is_better)
    assert set(result.per_class["AP"]) == set(dataset.meta.tools)
    assert set(result.per_unit["mAP"]) == {"video08", "video09"}
    # the main score is reproduced exactly by its per-video parts
    assert result.main_parts.units == ["video08", "video09"]
    assert result.main_parts.value() == pytest.approx(result.metrics["mAP"], rel=1e-12)
    # per tool: the mean over the test videos of their own APs
    per_video = result.main_parts.num / result.main_parts.den
    np.testing.assert_allclose(per_video.mean(axis=0),
                               [result.per_class["AP"][t] for t in dataset.meta.tools])
    # the unannotated last frame of each test video is not scored
    n_test = sum(int(annotated(dataset.load(u, 32).tools).sum()) for u in dataset.units()
                 if u.split == "test")
    assert result.details["n_test_frames"] == n_test
    assert result.details["n_train_frames"] == sum(
        int(annotated(dataset.load(u, 32).tools).sum())
        for u in select_label_units(dataset.units(), dataset.meta.id, 0.5, 0))
    # tool-a/tool-b follow the frame colour, so a linear probe beats a constant score
    assert result.metrics["mAP"] > result.details["chance_mAP"]
    json.dumps(result.details)


def test_test_units_loaded_once_after_training(tmp_path: Path) -> None:
    dataset = RecordingVideoDataset()
    cell = make_cell(tmp_path, dataset)
    run(cell)
    test_ids = [u.id for u in cell.units["test"]]
    assert sorted(dataset.loads[-len(test_ids):]) == sorted(test_ids)
    assert not set(test_ids) & set(dataset.loads[:-len(test_ids)])


def test_linear_features_are_extracted_once_and_shared_with_phase(tmp_path: Path) -> None:
    dataset = RecordingVideoDataset()
    cache = ArrayCache(tmp_path / "cache")
    for frac in (0.2, 1.0):
        for seed in (0, 1):
            run(make_cell(tmp_path, dataset, label_frac=frac, seed=seed, cache=cache))
    # 6 train + 2 val + 2 test videos: each extracted (and loaded) exactly once
    assert cache.misses == 10
    assert sorted(dataset.loads) == sorted(u.id for u in dataset.units())
    # phase recognition on the same checkpoint reads the same entries: no new extraction
    phase_cell = tiny_cell(tmp_path, dataset, cache=cache, label_frac=1.0)
    result = PhaseRecognition(PhaseRecognition.make_config("smoke")).evaluate(phase_cell)
    assert result.details["feature_cache"] == {"hits": 10, "misses": 0}
    assert len(dataset.loads) == 10


def test_entry_cached_without_tools_is_recomputed(tmp_path: Path) -> None:
    """A feature entry written before tool labels were stored (phases only) is replaced."""
    dataset = RecordingVideoDataset()
    cache = ArrayCache(tmp_path / "cache")
    cell = make_cell(tmp_path, dataset, cache=cache)
    fingerprint = dataset.fingerprint()
    from ssl_bench.task_toolkit import feature_key

    for unit in dataset.units():
        cache.save(feature_key(cell, "frame-features", unit, fingerprint),
                   {"features": np.zeros((3, 16), np.float32), "phases": np.zeros(3, np.int64)})
    result = run(cell)
    assert math.isfinite(result.metrics["mAP"])
    used = cell.label_units + cell.units["val"] + cell.units["test"]
    assert sorted(dataset.loads) == sorted(u.id for u in used)
    entry = cache.load(feature_key(cell, "frame-features", used[0], fingerprint))
    assert "tools" in entry and entry["features"].shape[0] == len(entry["tools"])


def test_finetune_protocol_runs_without_feature_cache(tmp_path: Path) -> None:
    cell = make_cell(tmp_path, RecordingVideoDataset(), protocol="finetune")
    result = run(cell)
    assert result.details["protocol"] == "finetune"
    assert cell.cache.misses == 0 and cell.cache.hits == 0
    assert math.isfinite(result.metrics["mAP"])
    assert result.details["best_epoch"] >= 1
    assert result.main_parts.value() == pytest.approx(result.metrics["mAP"], rel=1e-12)
    assert result.details["val_metric"] == "mAP" and result.details["selection"] == "best val mAP"
    assert round(result.details["best_val_score"], 4) in result.details["val_history"]


def test_supervised_method_forces_finetune(tmp_path: Path) -> None:
    cell = make_cell(tmp_path, RecordingVideoDataset(), protocol="linear",
                     method_cls=SupervisedDummy)
    assert run(cell).details["protocol"] == "finetune"


def test_same_cell_twice_gives_identical_metrics(tmp_path: Path) -> None:
    for protocol in ("linear", "finetune"):
        a = run(make_cell(tmp_path / f"a-{protocol}", RecordingVideoDataset(), seed=1,
                          protocol=protocol))
        b = run(make_cell(tmp_path / f"b-{protocol}", RecordingVideoDataset(), seed=1,
                          protocol=protocol))
        assert a.metrics == b.metrics
        assert a.details["val_history"] == b.details["val_history"]


def test_dataset_without_tools_is_one_clear_line(tmp_path: Path) -> None:
    class NoTools(RecordingVideoDataset):
        meta = TinyVideoDataset.meta.model_copy(update={"tools": ()})

    from ssl_bench.errors import SSLBenchError

    with pytest.raises(SSLBenchError, match="declares no tools") as exc:
        run(make_cell(tmp_path, NoTools()))
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------------------
# the synthetic suite's tool annotations carry signal


@pytest.fixture(scope="module")
def synthetic_cholec80(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssl_bench.default_plugins.datasets.cholec80 import Cholec80

    root = tmp_path_factory.mktemp("synth") / "cholec80"
    Cholec80.write_synthetic(root, size="small", seed=0)
    return root


def test_synthetic_tools_are_detected_above_chance_with_imagenet_features(
        synthetic_cholec80: Path, tmp_path: Path) -> None:
    """A linear probe on the real ImageNet EfficientNet-Lite0 features finds the drawn tools:
    its mAP is well above the chance level (a constant score: AP = prevalence)."""
    from ssl_bench.api import MethodContext
    from ssl_bench.default_plugins.datasets.cholec80 import Cholec80
    from ssl_bench.default_plugins.methods.imagenet import ImageNet

    dataset = Cholec80(synthetic_cholec80, cache_dir=tmp_path / "data")
    units = dataset.units()
    context = MethodContext(profile="smoke", device=torch.device("cpu"), seed=0,
                            cache_dir=tmp_path, log=lambda _: None)
    method = ImageNet(ImageNet.make_config("smoke"), context)
    bench = next(b for b in BENCHMARKS if b.id == "cholec80-tools")
    torch.manual_seed(0)
    cell = CellInputs(
        benchmark=bench, dataset=dataset, protocol="linear", label_frac=1.0, seed=0,
        units={s: [u for u in units if u.split == s] for s in ("train", "val", "test")},
        label_units=[u for u in units if u.split == "train"], method=method,
        make_encoder=lambda: method.encoder(method.build()), checkpoint_id="imagenet-test",
        cache=ArrayCache(tmp_path / "features"), image_size=64, device=torch.device("cpu"),
        profile="smoke", log=lambda _: None)
    task = ToolPresence(ToolPresence.make_config("smoke", {"epochs": 30}))
    result = task.evaluate(cell)
    chance = result.details["chance_mAP"]
    assert result.details["n_test_frames"] > 30
    assert result.metrics["mAP"] > chance + 15, (result.metrics, chance)
    assert result.metrics["frame_mAP"] > result.details["chance_frame_mAP"] + 15
    # the reported chance level is the metric of a constant score on the same frames
    gts = [dataset.load(u, 16).tools for u in cell.units["test"]]
    assert all(annotated(g).all() for g in gts)  # at 1 fps every frame has its tool row
    assert chance == pytest.approx(
        tool_metrics([np.zeros(g.shape) for g in gts], gts, dataset.meta.tools)[0]["mAP"],
        abs=1e-4)
