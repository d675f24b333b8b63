"""Phase recognition on the tiny video dataset with the smoke profile."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssl_bench.api import CellInputs, Unit, UnitData
from ssl_bench.cache import ArrayCache
from ssl_bench.default_plugins.tasks import TASKS
from ssl_bench.default_plugins.tasks.phase import PhaseRecognition
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


make_cell = tiny_cell


def run(cell: CellInputs):
    return PhaseRecognition(PhaseRecognition.make_config("smoke")).evaluate(cell)


def test_registered() -> None:
    assert any(task.load() is PhaseRecognition for task in TASKS)  # registered by path
    meta = PhaseRecognition.meta
    assert meta.id == "phase-recognition" and meta.main_score == "accuracy"
    assert meta.requires == ("frame-features",) and meta.modalities == ("video",)


def test_linear_smoke_returns_finite_metrics(tmp_path: Path) -> None:
    dataset = RecordingVideoDataset()
    result = run(make_cell(tmp_path, dataset))
    assert 0.0 <= result.metrics["accuracy"] <= 100.0
    assert math.isfinite(result.metrics["jaccard"])
    assert result.details["protocol"] == "linear"
    assert result.details["label_units"] == [u.id for u in select_label_units(
        dataset.units(), dataset.meta.id, 0.5, 0)]
    assert set(result.timings) == {"features", "downstream"}
    assert set(result.per_unit["accuracy"]) == {"video08", "video09"}
    # per-video accuracies are those of real predictions: their mean is the video accuracy
    assert np.isclose(np.mean(list(result.per_unit["accuracy"].values())),
                      result.metrics["accuracy"])
    assert np.isclose(result.main_parts.value(), result.metrics["accuracy"])
    # every metric has its per-video values; jaccard is the mean of the per-video jaccards
    assert set(result.per_unit) >= {"accuracy", "jaccard", "f1"}
    assert np.isclose(np.nanmean(list(result.per_unit["jaccard"].values())),
                      result.metrics["jaccard"])
    import json

    json.dumps(result.details)


class RelaxedVideoDataset(RecordingVideoDataset):
    meta = TinyVideoDataset.meta.model_copy(update={"relaxed_phase_groups": ((1,), (2,))})


def test_relaxed_metrics_follow_the_dataset_groups(tmp_path: Path) -> None:
    plain = run(make_cell(tmp_path / "a", RecordingVideoDataset()))
    assert "relaxed_jaccard" not in plain.metrics
    assert set(plain.per_class["jaccard"]) == {"a", "b", "c"}
    relaxed = run(make_cell(tmp_path / "b", RelaxedVideoDataset()))
    for key in ("relaxed_accuracy", "relaxed_jaccard", "matlab_accuracy", "matlab_jaccard"):
        assert math.isfinite(relaxed.metrics[key])
    assert relaxed.metrics["relaxed_accuracy"] >= relaxed.metrics["accuracy"]
    assert set(relaxed.metrics) <= set(PhaseRecognition.meta.higher_is_better)


def test_test_units_loaded_once_after_training(tmp_path: Path) -> None:
    dataset = RecordingVideoDataset()
    cell = make_cell(tmp_path, dataset)
    run(cell)
    test_ids = [u.id for u in cell.units["test"]]
    assert sorted(dataset.loads[-len(test_ids):]) == sorted(test_ids)
    assert all(dataset.loads.count(t) == 1 for t in test_ids)
    assert not set(test_ids) & set(dataset.loads[:-len(test_ids)])


def test_linear_features_are_extracted_once_per_checkpoint(tmp_path: Path) -> None:
    dataset = RecordingVideoDataset()
    cache = ArrayCache(tmp_path / "cache")
    results = []
    for frac in (0.2, 1.0):
        for seed in (0, 1):
            cell = make_cell(tmp_path, dataset, label_frac=frac, seed=seed, cache=cache)
            results.append(run(cell))
    # 6 train + 2 val + 2 test videos: each extracted (and loaded) exactly once
    assert cache.misses == 10
    assert sorted(dataset.loads) == sorted(u.id for u in dataset.units())
    assert cache.hits > 0
    assert results[-1].details["feature_cache"] == {"hits": 10, "misses": 0}


def test_finetune_protocol_runs_without_feature_cache(tmp_path: Path) -> None:
    dataset = RecordingVideoDataset()
    cell = make_cell(tmp_path, dataset, protocol="finetune")
    result = run(cell)
    assert result.details["protocol"] == "finetune"
    assert cell.cache.misses == 0 and cell.cache.hits == 0
    assert math.isfinite(result.metrics["accuracy"])
    assert result.details["finetune_best_epoch"] >= 1


def test_supervised_method_forces_finetune(tmp_path: Path) -> None:
    cell = make_cell(tmp_path, RecordingVideoDataset(), protocol="linear",
                     method_cls=SupervisedDummy)
    assert run(cell).details["protocol"] == "finetune"


def test_same_cell_twice_gives_identical_metrics(tmp_path: Path) -> None:
    a = run(make_cell(tmp_path / "a", RecordingVideoDataset(), seed=1))
    b = run(make_cell(tmp_path / "b", RecordingVideoDataset(), seed=1))
    assert a.metrics == b.metrics
    assert a.details["val_history"] == b.details["val_history"]


# ------------------------------------------------------------- DistillSelf's temporal protocol
class MultiRateVideoDataset(RecordingVideoDataset):
    """The tiny videos at any whole frame rate: each 1-fps frame (and its phase) repeated
    ``fps`` times, so a 5-fps load has five times the frames of a 1-fps one."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        self.rates.append(fps)
        data = super().load(unit, size, 1.0)
        k = int(fps)
        assert k == fps, "the test double serves whole frame rates only"
        return UnitData(unit, np.repeat(data.frames, k, axis=0),
                        phases=np.repeat(data.phases, k), fps=fps,
                        frame_ids=np.arange(len(data.phases) * k) * 5)


def distillself_config(profile: str = "smoke") -> Any:
    from ssl_bench.default_plugins.benchmarks import PUBLISHED_PROTOCOL_BENCHMARKS

    bench = next(b for b in PUBLISHED_PROTOCOL_BENCHMARKS if b.id == "cholec80-phase-distillself")
    return PhaseRecognition.make_config(profile, bench.task_options_for(profile))


def test_distillself_options_build_the_released_temporal_protocol() -> None:
    cfg = distillself_config("paper")
    assert (cfg.num_stages, cfg.num_layers, cfg.channels) == (1, 12, 64)
    assert (cfg.dropout, cfg.input_dropout, cfg.smoothing_weight) == (0.5, 0.5, 1.0)
    assert (cfg.lr, cfg.weight_decay, cfg.lr_halve_every, cfg.epochs) == (5e-4, 1e-5, 30, 100)
    assert cfg.feature_fps == 5.0 and cfg.fresh_optimizer_each_epoch and cfg.batch_size == 1
    # the defaults stay those of the MS-TCN protocol
    default = PhaseRecognition.make_config("paper")
    assert (default.num_stages, default.input_dropout, default.smoothing_weight) == (3, 0.0, 0.15)
    assert default.feature_fps == 1.0 and default.lr_halve_every is None


def test_temporal_lr_halves_at_the_start_of_every_30th_epoch() -> None:
    from ssl_bench.default_plugins.tasks.phase import temporal_lr

    lrs = {e: temporal_lr(5e-4, e, 30) for e in (1, 29, 30, 59, 60, 89, 90, 100)}
    assert lrs == {1: 5e-4, 29: 5e-4, 30: 2.5e-4, 59: 2.5e-4, 60: 1.25e-4, 89: 1.25e-4,
                   90: 6.25e-5, 100: 6.25e-5}
    assert temporal_lr(3e-3, 77, None) == 3e-3


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_distillself_variant_runs_on_5fps_features(tmp_path: Path, protocol: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl_bench.metrics.phase as phase_module

    metric_rates: list[float] = []
    real_phase_metrics = phase_module.phase_metrics

    def recording_phase_metrics(*args: Any, **kwargs: Any) -> Any:
        metric_rates.append(kwargs["fps"])
        return real_phase_metrics(*args, **kwargs)

    monkeypatch.setattr(phase_module, "phase_metrics", recording_phase_metrics)
    dataset = MultiRateVideoDataset()
    cell = make_cell(tmp_path, dataset, protocol=protocol)
    result = PhaseRecognition(distillself_config()).evaluate(cell)
    assert math.isfinite(result.metrics["accuracy"]) and result.details["feature_fps"] == 5.0
    # the temporal model saw 5-fps features: five times the frames of the 1-fps videos
    one_fps = sum(len(TinyVideoDataset(Path(".")).load(u, 8).phases) for u in cell.label_units)
    assert result.details["n_train_frames"] == 5 * one_fps
    # the relaxed boundary is 10 s at 5 fps: every phase_metrics call got fps 5
    assert metric_rates and set(metric_rates) == {5.0}
    if protocol == "finetune":  # stage 1 fine-tunes on 1-fps frames, features come at 5
        assert set(dataset.rates) == {1.0, 5.0}
        assert result.details["finetune_best_epoch"] >= 1
    else:  # cached 5-fps features carry the frame rate in their key
        assert set(dataset.rates) == {5.0}
        names = [p.name for p in cell.cache.root.glob("*.npz")]
        assert names and all(n.startswith("frame-features-5fps") for n in names)


def test_5fps_features_do_not_reuse_1fps_cache_entries(tmp_path: Path) -> None:
    dataset = MultiRateVideoDataset()
    cache = ArrayCache(tmp_path / "cache")
    run(make_cell(tmp_path, dataset, cache=cache))
    misses = cache.misses
    PhaseRecognition(distillself_config()).evaluate(make_cell(tmp_path, dataset, cache=cache))
    assert cache.misses == 2 * misses  # every 5-fps feature is new
    assert sorted({p.name.split("_")[0] for p in cache.root.glob("*.npz")}) == [
        "frame-features", "frame-features-5fps"]


def test_standardized_features_train_and_the_selection_is_recorded(tmp_path: Path) -> None:
    """With ``standardize_features`` the temporal model sees standardised features; both
    stages record their selection under the toolkit's keys."""
    config = PhaseRecognition.make_config("smoke", {"standardize_features": True})
    result = PhaseRecognition(config).evaluate(make_cell(tmp_path, RecordingVideoDataset()))
    assert math.isfinite(result.metrics["accuracy"])
    details = result.details
    assert details["val_metric"] == "accuracy" and details["selection"] == "best val accuracy"
    history = details["val_history"]
    assert round(details["best_val_score"], 4) == max(history) == history[
        details["best_epoch"] - 1]


def test_finetune_stage_one_records_its_selection(tmp_path: Path) -> None:
    result = run(make_cell(tmp_path, RecordingVideoDataset(), protocol="finetune"))
    details = result.details
    assert details["finetune_val_metric"] == "frame_accuracy"
    assert details["finetune_selection"] == "best val frame_accuracy"
    assert len(details["finetune_val_history"]) == 1  # the smoke profile's one epoch
    assert details["finetune_best_epoch"] == 1
    assert details["finetune_n_train_frames"] > 0
