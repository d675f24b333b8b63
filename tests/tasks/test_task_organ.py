"""Organ segmentation (2-D slice protocol) on the tiny CT dataset with the smoke profile."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ssl_bench.api import CellInputs, Unit, UnitData
from ssl_bench.cache import ArrayCache
from ssl_bench.default_plugins.tasks import TASKS
from ssl_bench.default_plugins.tasks.organ import OrganSegmentation, mean_dice_present
from ssl_bench.testing import TinyVolumeDataset, tiny_cell

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class RecordingVolumeDataset(TinyVolumeDataset):
    def __init__(self) -> None:
        super().__init__(Path("."))
        self.loads: list[str] = []

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        self.loads.append(unit.id)
        return super().load(unit, size, fps)


make_cell = tiny_cell


def run(cell: CellInputs, **overrides: Any):
    return OrganSegmentation(OrganSegmentation.make_config("smoke", overrides)).evaluate(cell)


def test_registered() -> None:
    assert any(task.load() is OrganSegmentation for task in TASKS)  # registered by path
    meta = OrganSegmentation.meta
    assert meta.main_score == "mean_dice" and meta.modalities == ("volume",)
    assert meta.higher_is_better["mean_hd95"] is False


def test_mean_dice_present_by_hand() -> None:
    gt = np.zeros((2, 4, 4), np.uint8)
    gt[0, :2, :2] = 1  # 4 voxels of organ 1; organ 2 and 3 absent
    pred = np.zeros_like(gt)
    pred[0, :2, :1] = 1  # 2 voxels, both inside
    pred[1, 3, 3] = 2  # a false organ-2 voxel: organ 2 absent from gt, not counted
    assert mean_dice_present(pred, gt, 4, 255) == pytest.approx(200.0 * 2 / (4 + 2))
    assert math.isnan(mean_dice_present(pred, np.zeros_like(gt), 4, 255))


def test_linear_smoke_returns_finite_metrics(tmp_path: Path) -> None:
    dataset = RecordingVolumeDataset()
    cell = make_cell(tmp_path, dataset)
    result = run(cell)
    assert 0.0 <= result.metrics["mean_dice"] <= 100.0
    assert math.isfinite(result.metrics["mean_hd95"])
    assert result.details["protocol"] == "linear"
    test_ids = [u.id for u in cell.units["test"]]
    assert sorted(dataset.loads[-2:]) == sorted(test_ids)
    assert set(result.per_unit["mean_dice"]) == set(test_ids)
    assert result.main_parts.value() == pytest.approx(result.metrics["mean_dice"])
    assert all(dataset.loads.count(t) == 1 for t in test_ids)


def test_background_slices_are_subsampled(tmp_path: Path) -> None:
    task = OrganSegmentation(OrganSegmentation.make_config("smoke",
                                                           {"background_slice_fraction": 0.0}))
    masks = np.zeros((5, 4, 4), np.uint8)
    masks[1, 0, 0] = 2
    masks[3, 1, 1] = 1
    keep = task.train_keep(masks, 255, np.random.default_rng(0))
    assert keep.tolist() == [False, True, False, True, False]
    full = OrganSegmentation(OrganSegmentation.make_config("smoke"))
    assert full.train_keep(masks, 255, np.random.default_rng(0)).all()


def test_linear_maps_are_cached_across_fractions_and_seeds(tmp_path: Path) -> None:
    dataset = RecordingVolumeDataset()
    cache = ArrayCache(tmp_path / "cache")
    for frac, seed in ((0.2, 0), (1.0, 1)):
        run(make_cell(tmp_path, dataset, label_frac=frac, seed=seed, cache=cache))
    assert cache.misses == 10
    assert sorted(dataset.loads) == sorted(u.id for u in dataset.units())


def test_finetune_runs(tmp_path: Path) -> None:
    result = run(make_cell(tmp_path, RecordingVolumeDataset(), protocol="finetune"))
    assert result.details["protocol"] == "finetune"
    assert math.isfinite(result.metrics["mean_dice"])


def test_finetune_epochs_cut_the_finetune_protocol_only(tmp_path: Path) -> None:
    def history(protocol: str, **overrides: Any) -> list[float]:
        cell = make_cell(tmp_path / protocol / str(overrides), RecordingVolumeDataset(), seed=3,
                         protocol=protocol)
        return run(cell, epochs=3, eval_every=1, **overrides).details["val_history"]

    full = history("finetune")
    assert len(full) == 3
    # a constant learning rate: the 2 epochs are the first 2 of the 3-epoch run
    assert history("finetune", finetune_epochs=2) == full[:2]
    assert len(history("linear", finetune_epochs=1)) == 3  # not the linear protocol's


def test_finetune_norm_eval_trains_weights_but_keeps_bn_statistics(tmp_path: Path) -> None:
    def fine_tuned(**overrides: Any) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        cell = make_cell(tmp_path / str(overrides), RecordingVolumeDataset(), protocol="finetune")
        built: list[torch.nn.Module] = []
        make = cell.make_encoder
        cell.make_encoder = lambda: built.append(make()) or built[-1]
        before = {k: v.clone() for k, v in make().state_dict().items()}
        run(cell, **overrides)
        return built[0], before

    encoder, before = fine_tuned(finetune_norm_eval=True)
    after = encoder.state_dict()
    stats = [k for k in after if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(after[k], before[k]) for k in stats)
    assert not torch.equal(after["stage1.0.weight"], before["stage1.0.weight"])
    assert not torch.equal(after["stage1.1.weight"], before["stage1.1.weight"])  # BN affine
    encoder, before = fine_tuned()  # default: train-mode BN updates its statistics
    assert not torch.equal(encoder.state_dict()["stage1.1.running_mean"],
                           before["stage1.1.running_mean"])


def test_cpu_profile_fine_tunes_the_frozen_budget_with_bn_in_eval() -> None:
    config = OrganSegmentation.make_config("cpu")
    assert config.finetune_norm_eval and config.finetune_epochs in (None, config.epochs)


def test_same_cell_twice_gives_identical_metrics(tmp_path: Path) -> None:
    a = run(make_cell(tmp_path / "a", RecordingVolumeDataset(), seed=1))
    b = run(make_cell(tmp_path / "b", RecordingVolumeDataset(), seed=1))
    assert a.metrics == b.metrics


def test_soft_dice_loss_by_hand() -> None:
    from ssl_bench.default_plugins.tasks.losses import soft_dice_loss

    target = torch.tensor([[[0, 1], [1, 255]]])
    perfect = torch.nn.functional.one_hot(torch.tensor([[[0, 1], [1, 0]]]), 3).permute(0, 3, 1, 2)
    assert float(soft_dice_loss(perfect.float() * 100, target, 255)) == pytest.approx(0.0, abs=1e-4)
    # uniform probabilities: organ 1 has 2 pixels, p = 1/3 on the 3 valid pixels
    uniform = torch.zeros(1, 3, 2, 2)
    expected = 1 - (2 * (2 / 3) + 1e-5) / ((3 / 3 + 2) + 1e-5)
    assert float(soft_dice_loss(uniform, target, 255)) == pytest.approx(expected, rel=1e-5)


def _one_hot_dice_reference(logits: torch.Tensor, target: torch.Tensor, ignore: int
                            ) -> torch.Tensor:
    """The textbook form: softmax, one-hot targets, sums over the batch's pixels."""
    valid = (target != ignore).unsqueeze(1).float()
    probs = torch.softmax(logits, dim=1) * valid
    onehot = torch.nn.functional.one_hot(torch.where(target == ignore, 0, target),
                                         logits.shape[1]).permute(0, 3, 1, 2).float() * valid
    inter = (probs * onehot).sum((0, 2, 3))[1:]
    denom = (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)))[1:]
    present = onehot.sum((0, 2, 3))[1:] > 0
    return 1 - ((2 * inter[present] + 1e-5) / (denom[present] + 1e-5)).mean()


def test_ce_dice_loss_matches_cross_entropy_plus_one_hot_dice_with_gradients() -> None:
    from ssl_bench.default_plugins.tasks.losses import ce_dice_loss

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (3, 6, 7))
    target[0, :2] = 255
    target[target == 3] = 0  # a foreground class absent from the batch
    got = ce_dice_loss(logits, target, 255, dice_weight=0.7)
    (g_got,) = torch.autograd.grad(got, logits)
    ref = (torch.nn.functional.cross_entropy(logits, target, ignore_index=255)
           + 0.7 * _one_hot_dice_reference(logits, target, 255))
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    assert torch.allclose(g_got, g_ref, atol=1e-12)
    ce_only = ce_dice_loss(logits.detach(), target, 255, dice_weight=0.0)
    assert float(ce_only) == pytest.approx(float(
        torch.nn.functional.cross_entropy(logits.detach(), target, ignore_index=255)), rel=1e-12)


def test_endless_batches_cover_every_item_once_per_pass() -> None:
    from itertools import islice

    from ssl_bench.task_toolkit import endless_batches

    batches = list(islice(endless_batches(6, 4, torch.Generator().manual_seed(0)), 4))
    assert [len(b) for b in batches] == [4, 2, 4, 2]
    assert sorted(torch.cat(batches[:2]).tolist()) == [0, 1, 2, 3, 4, 5]
    assert sorted(torch.cat(batches[2:]).tolist()) == [0, 1, 2, 3, 4, 5]
    assert torch.cat(batches[:2]).tolist() != torch.cat(batches[2:]).tolist()  # reshuffled


class CountingOrganSegmentation(OrganSegmentation):
    """Counts the training losses computed (one per optimiser step)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.n_losses = 0

    def loss(self, logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
        self.n_losses += 1
        return super().loss(logits, target, ignore_index)


@pytest.mark.parametrize("label_frac", [0.2, 1.0])
def test_steps_per_epoch_fixes_the_budget_whatever_the_label_fraction(
        tmp_path: Path, label_frac: float) -> None:
    cell = make_cell(tmp_path, RecordingVolumeDataset(), label_frac=label_frac)
    task = CountingOrganSegmentation(OrganSegmentation.make_config(
        "smoke", {"steps_per_epoch": 7, "epochs": 2, "batch_size": 4}))
    task.evaluate(cell)
    assert task.n_losses == 2 * 7
    # without it an epoch is one pass over the labelled slices: about n / 4 steps
    one_pass = CountingOrganSegmentation(OrganSegmentation.make_config(
        "smoke", {"epochs": 2, "batch_size": 4}))
    result = one_pass.evaluate(make_cell(tmp_path, RecordingVolumeDataset(),
                                         label_frac=label_frac))
    from ssl_bench.task_toolkit import shuffled_batches

    n_train = result.details["n_train_frames"]
    per_pass = len(list(shuffled_batches(n_train, 4, torch.Generator().manual_seed(0))))
    assert per_pass <= math.ceil(n_train / 4) and one_pass.n_losses == 2 * per_pass


def test_no_val_split_keeps_the_last_epoch(tmp_path: Path) -> None:
    # btcv's "monai" split (benchmark btcv-organ-monai, finetune) has no val units: MONAI
    # selects on its test volumes, the harness keeps the last epoch instead
    cell = make_cell(tmp_path, RecordingVolumeDataset(), protocol="finetune")
    cell.units["val"] = []
    result = run(cell)
    assert math.isfinite(result.metrics["mean_dice"])
    assert result.details["selection"] == "last epoch (no val units)"
    assert result.details["best_val_score"] is None
