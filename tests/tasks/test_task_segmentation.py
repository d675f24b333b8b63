"""Semantic segmentation on the tiny clip dataset with the smoke profile."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.api import CellInputs, MethodMeta, SemiSupervisedData, Unit, UnitData
from ssl_bench.cache import ArrayCache
from ssl_bench.default_plugins.tasks import TASKS
from ssl_bench.default_plugins.tasks.segmentation import SemanticSegmentation
from ssl_bench.testing import DummyMethod, TinySegDataset, tiny_cell

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class RecordingSegDataset(TinySegDataset):
    def __init__(self) -> None:
        super().__init__(Path("."))
        self.loads: list[str] = []

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        self.loads.append(unit.id)
        return super().load(unit, size, fps)


class SupervisedDummy(DummyMethod):
    meta = DummyMethod.meta.model_copy(update={"id": "supervised-dummy", "protocol": "finetune"})


class TinySemiSupervised(DummyMethod):
    """A semi-supervised double: a 1x1-conv pixel classifier fit on the labelled frames."""

    meta = MethodMeta(id="tiny-semi", version="1", kind="semi-supervised", name="Tiny semi",
                      paper="none (test double)", pretrain_input="none",
                      provides=frozenset({"segmentation-predictor"}))
    seen: dict[str, Any] = {}

    def fit_segmentation(self, data: SemiSupervisedData) -> nn.Module:
        torch.manual_seed(data.seed)
        model = nn.Conv2d(3, data.num_classes, 1)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        x = torch.from_numpy(data.labelled_frames).permute(0, 3, 1, 2).float() / 255
        y = torch.from_numpy(data.labelled_masks).long()
        for _ in range(20):
            loss = F.cross_entropy(model(x), y, ignore_index=data.ignore_index)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.seen.update(n_labelled=len(data.labelled_frames),
                         n_unlabelled=len(data.unlabelled_frames), val=data.validate(model))
        return model


def _fit_pixel_classifier(data: SemiSupervisedData, seed: int, steps: int) -> nn.Module:
    """A 1x1-conv pixel classifier fit on the labelled frames (seeded)."""
    torch.manual_seed(seed)
    model = nn.Conv2d(3, data.num_classes, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = torch.from_numpy(data.labelled_frames).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(data.labelled_masks).long()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y, ignore_index=data.ignore_index)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


class TwoNetworkSemi(TinySemiSupervised):
    """Reports network "a"; network "b" goes along as an extra predictor, with details."""

    meta = TinySemiSupervised.meta.model_copy(update={"id": "two-net-semi"})

    def fit_segmentation(self, data: SemiSupervisedData) -> nn.Module:
        row = _fit_pixel_classifier(data, seed=data.seed, steps=20)
        row.details = {"row_note": "network a", "reported": "a"}  # type: ignore[assignment]
        row.extra_predictors = {  # type: ignore[assignment]
            "network-b": _fit_pixel_classifier(data, seed=data.seed + 7, steps=3)}
        return row


class OnlyNetworkA(TinySemiSupervised):
    meta = TinySemiSupervised.meta.model_copy(update={"id": "only-a"})

    def fit_segmentation(self, data: SemiSupervisedData) -> nn.Module:
        return _fit_pixel_classifier(data, seed=data.seed, steps=20)


class OnlyNetworkB(TinySemiSupervised):
    meta = TinySemiSupervised.meta.model_copy(update={"id": "only-b"})

    def fit_segmentation(self, data: SemiSupervisedData) -> nn.Module:
        return _fit_pixel_classifier(data, seed=data.seed + 7, steps=3)


class ReservedDetailSemi(TinySemiSupervised):
    meta = TinySemiSupervised.meta.model_copy(update={"id": "reserved-detail"})

    def fit_segmentation(self, data: SemiSupervisedData) -> nn.Module:
        model = _fit_pixel_classifier(data, seed=data.seed, steps=1)
        model.details = {"protocol": "mine"}  # type: ignore[assignment]
        return model


make_cell = tiny_cell


def run(cell: CellInputs):
    return SemanticSegmentation(SemanticSegmentation.make_config("smoke")).evaluate(cell)


def test_registered() -> None:
    assert any(task.load() is SemanticSegmentation for task in TASKS)  # registered by path
    meta = SemanticSegmentation.meta
    assert meta.main_score == "miou" and meta.modalities == ("image",)
    assert set(meta.requires) == {"spatial-features", "segmentation-predictor"}


def test_linear_smoke_returns_finite_metrics(tmp_path: Path) -> None:
    result = run(make_cell(tmp_path, RecordingSegDataset()))
    assert 0.0 <= result.metrics["miou"] <= 100.0
    assert math.isfinite(result.metrics["mdice"])
    assert set(result.per_class["iou"]) == set(TinySegDataset.meta.classes)
    assert result.details["protocol"] == "linear"
    assert result.details["n_train_frames"] == 3 * 4
    assert 1 <= result.details["best_epoch"] <= 2
    assert result.details["val_metric"] == "miou"
    assert result.details["selection"] == "best val miou"
    # per-unit values of every metric, and parts that reproduce the dataset-level mIoU
    test_ids = {u.id for u in RecordingSegDataset().units() if u.split == "test"}
    assert set(result.per_unit["miou"]) == test_ids
    assert result.main_parts.units and set(result.main_parts.units) == test_ids
    assert result.main_parts.value() == pytest.approx(result.metrics["miou"])


def test_test_units_loaded_once_after_training(tmp_path: Path) -> None:
    dataset = RecordingSegDataset()
    cell = make_cell(tmp_path, dataset, protocol="finetune")
    run(cell)
    test_ids = [u.id for u in cell.units["test"]]
    assert sorted(dataset.loads[-len(test_ids):]) == sorted(test_ids)
    assert all(dataset.loads.count(t) == 1 for t in test_ids)


def test_linear_maps_are_cached_across_fractions_and_seeds(tmp_path: Path) -> None:
    dataset = RecordingSegDataset()
    cache = ArrayCache(tmp_path / "cache")
    for frac in (0.2, 1.0):
        for seed in (0, 1):
            result = run(make_cell(tmp_path, dataset, label_frac=frac, seed=seed, cache=cache))
    assert cache.misses == 10  # 6 train + 2 val + 2 test clips, once each
    assert sorted(dataset.loads) == sorted(u.id for u in dataset.units())
    assert result.details["feature_cache"] == {"hits": 10, "misses": 0}


def test_other_checkpoint_misses_the_cache(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "cache")
    run(make_cell(tmp_path, RecordingSegDataset(), cache=cache))
    misses = cache.misses
    cell = make_cell(tmp_path, RecordingSegDataset(), cache=cache)
    cell.checkpoint_id = "another-checkpoint"
    run(cell)
    assert cache.misses == 2 * misses


def test_linear_without_map_cache_runs_the_frozen_encoder(tmp_path: Path) -> None:
    cell = make_cell(tmp_path, RecordingSegDataset())
    task = SemanticSegmentation(SemanticSegmentation.make_config("smoke", {"cache_maps": False}))
    result = task.evaluate(cell)
    assert result.details["protocol"] == "linear"
    assert cell.cache.misses == 0 and math.isfinite(result.metrics["miou"])


def test_finetune_and_supervised_row(tmp_path: Path) -> None:
    result = run(make_cell(tmp_path, RecordingSegDataset(), protocol="finetune"))
    assert result.details["protocol"] == "finetune" and math.isfinite(result.metrics["miou"])
    forced = run(make_cell(tmp_path / "b", RecordingSegDataset(), method_cls=SupervisedDummy))
    assert forced.details["protocol"] == "finetune"


def test_semi_supervised_method_gets_labelled_and_unlabelled_frames(tmp_path: Path) -> None:
    dataset = RecordingSegDataset()
    cell = make_cell(tmp_path, dataset, method_cls=TinySemiSupervised)
    result = run(cell)
    assert result.details["protocol"] == "semi-supervised"
    seen = TinySemiSupervised.seen
    assert seen["n_labelled"] == 4 * len(cell.label_units)
    assert seen["n_unlabelled"] == 4 * (6 - len(cell.label_units))
    assert 0.0 <= seen["val"] <= 100.0
    assert math.isfinite(result.metrics["miou"])
    test_ids = {u.id for u in cell.units["test"]}
    assert set(dataset.loads[-2:]) == test_ids and sum(i in test_ids for i in dataset.loads) == 2


def test_extra_predictors_scored_on_the_same_test_units_and_details_merged(
        tmp_path: Path) -> None:
    dataset = RecordingSegDataset()
    both = run(make_cell(tmp_path / "both", dataset, method_cls=TwoNetworkSemi))
    only_a = run(make_cell(tmp_path / "a", RecordingSegDataset(), method_cls=OnlyNetworkA))
    only_b = run(make_cell(tmp_path / "b", RecordingSegDataset(), method_cls=OnlyNetworkB))
    # the row is network a, unchanged by the extra predictor
    assert both.metrics == only_a.metrics
    assert both.details["best_val_score"] == only_a.details["best_val_score"]
    # network b: the harness's own val and test scores, as if b were the row
    extra = both.details["extra_predictors"]["network-b"]
    assert extra["test"] == only_b.metrics
    assert extra["val_score"] == only_b.details["best_val_score"]
    assert extra["test"] != both.metrics  # two different networks (the test can tell them apart)
    # the method's details are in the record; the test units are still loaded once
    assert both.details["row_note"] == "network a" and both.details["reported"] == "a"
    assert both.details["protocol"] == "semi-supervised"
    assert both.details["val_metric"] == "miou"
    test_ids = {u.id for u in dataset.units() if u.split == "test"}
    assert sum(i in test_ids for i in dataset.loads) == len(test_ids)


def test_method_details_may_not_overwrite_task_keys(tmp_path: Path) -> None:
    from ssl_bench.errors import SSLBenchError

    with pytest.raises(SSLBenchError, match="'protocol'"):
        run(make_cell(tmp_path, RecordingSegDataset(), method_cls=ReservedDetailSemi))


def test_same_cell_twice_gives_identical_metrics(tmp_path: Path) -> None:
    a = run(make_cell(tmp_path / "a", RecordingSegDataset(), seed=2))
    b = run(make_cell(tmp_path / "b", RecordingSegDataset(), seed=2))
    assert a.metrics == b.metrics
    assert a.per_class == b.per_class or np.allclose(
        list(a.per_class["iou"].values()), list(b.per_class["iou"].values()), equal_nan=True)


def test_class_map_is_argmax_over_classes_with_first_maximum_on_ties() -> None:
    from ssl_bench.default_plugins.tasks.mask_task import class_map

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7, 6)
    assert torch.equal(class_map(logits), logits.argmax(dim=1))
    tied = torch.zeros(1, 4, 2, 2)
    tied[0, 1:3] = 1.0  # classes 1 and 2 tie everywhere: the first (1) wins
    assert torch.equal(class_map(tied), torch.ones(1, 2, 2, dtype=torch.long))
