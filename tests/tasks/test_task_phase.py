"""Phase recognition on the tiny video dataset with the smoke profile."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

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
    assert PhaseRecognition in TASKS
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
