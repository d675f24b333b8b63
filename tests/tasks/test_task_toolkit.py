"""The task toolkit (:mod:`ssl_bench.task_toolkit`): the train-and-select loop every built-in
task trains through, the one feature standardisation, and the small helpers around them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from ssl_bench.errors import CellFailure
from ssl_bench.precision import TrainingPrecision
from ssl_bench.task_toolkit import (
    STD_FLOOR,
    EpochLoss,
    Standardization,
    optimise_epoch,
    seed_everything,
    train_and_select,
)

NAN = float("nan")


def scripted(scores: list[float], eval_every: int = 1, with_val: bool = True
             ) -> tuple[Any, nn.Module, list[tuple[str, int, int, dict[str, float]]]]:
    """train_and_select over ``len(scores)`` epochs of a one-weight module whose weight is the
    epoch number after that epoch; val after epoch e scores ``scores[e - 1]``."""
    module = nn.Linear(1, 1, bias=False)
    reports: list[tuple[str, int, int, dict[str, float]]] = []
    current = {"epoch": 0}

    def train_epoch(epoch: int) -> EpochLoss:
        assert module.training
        with torch.no_grad():
            module.weight.fill_(float(epoch))
        current["epoch"] = epoch
        loss = EpochLoss()
        loss.add(torch.tensor(float(epoch)))
        return loss

    def validate() -> float:
        assert not module.training
        return scores[current["epoch"] - 1]

    selection = train_and_select(
        [module], len(scores), train_epoch, validate if with_val else None, val_metric="miou",
        eval_every=eval_every,
        progress=lambda stage, done, total, extras: reports.append(
            (stage, done, total, dict(extras))))
    return selection, module, reports


def test_the_epoch_with_the_best_val_score_is_kept() -> None:
    selection, module, reports = scripted([10.0, 50.0, 30.0])
    assert selection.best_epoch == 2 and selection.best_val_score == 50.0
    # epoch 2's weights, in eval mode
    assert module.weight.detach().item() == 2.0 and not module.training
    assert selection.val_history == [10.0, 50.0, 30.0]
    assert reports == [("downstream", e, 3, {"loss": float(e)}) for e in (1, 2, 3)]
    assert selection.details() == {
        "best_epoch": 2, "best_val_score": 50.0, "val_metric": "miou",
        "selection": "best val miou", "val_history": [10.0, 50.0, 30.0]}
    assert set(selection.details(prefix="finetune_")) == {
        "finetune_best_epoch", "finetune_best_val_score", "finetune_val_metric",
        "finetune_selection", "finetune_val_history"}


def test_ties_keep_the_earlier_epoch() -> None:
    selection, module, _ = scripted([20.0, 70.0, 70.0, 10.0])
    assert selection.best_epoch == 2 and module.weight.detach().item() == 2.0


def test_a_score_that_is_not_a_number_never_beats_one() -> None:
    selection, module, _ = scripted([NAN, 5.0, NAN, 4.0])
    assert selection.best_epoch == 2 and module.weight.detach().item() == 2.0
    assert selection.val_history == [None, 5.0, None, 4.0]
    # no finite score at all: the first epoch scored is kept, with no score
    selection, module, _ = scripted([NAN, NAN])
    assert selection.best_epoch == 1 and selection.best_val_score is None
    assert module.weight.detach().item() == 1.0


def test_val_is_scored_every_eval_every_epochs_and_after_the_last() -> None:
    selection, _, _ = scripted([1.0, 2.0, 9.0, 3.0, 4.0], eval_every=2)
    # epochs 2, 4 and 5 are scored; epoch 3's 9.0 is never seen
    assert selection.val_history == [2.0, 3.0, 4.0]
    assert selection.best_epoch == 5


def test_without_val_units_the_last_epoch_is_kept() -> None:
    selection, module, _ = scripted([1.0, 9.0, 2.0], with_val=False)
    assert selection.best_epoch == 3 and module.weight.detach().item() == 3.0
    assert selection.details()["best_val_score"] is None
    assert selection.details()["selection"] == "last epoch (no val units)"
    assert selection.val_history == []


def test_history_is_rounded_but_the_best_score_is_not() -> None:
    selection, _, _ = scripted([1.23456789, 0.5])
    assert selection.val_history == [1.2346, 0.5]
    assert selection.best_val_score == 1.23456789


def test_optimise_epoch_caps_the_steps_and_averages_the_loss() -> None:
    weight = nn.Parameter(torch.tensor(1.0))
    optimizer = torch.optim.SGD([weight], lr=0.0)
    seen: list[int] = []

    def step(idx: torch.Tensor) -> torch.Tensor:
        seen.append(int(idx[0]))
        return weight * float(idx[0])

    batches = [torch.tensor([i]) for i in range(1, 6)]
    loss = optimise_epoch(iter(batches), step, optimizer, TrainingPrecision("fp32", "cpu"),
                          "a test", max_steps=3)
    assert seen == [1, 2, 3] and loss.extras() == {"loss": 2.0}
    with pytest.raises(CellFailure, match="non-finite loss in a test"):
        optimise_epoch(iter(batches), lambda idx: weight * math.inf, optimizer,
                       TrainingPrecision("fp32", "cpu"), "a test")


def test_standardization_hand_computed() -> None:
    """Train frames [[0, 10, 7], [2, 30, 7]]: mean [1, 20, 7], std [1, 10, 0]; the constant
    channel is divided by the floor (its standardised value is 0)."""
    s = Standardization.fit(np.array([[0.0, 10.0, 7.0], [2.0, 30.0, 7.0]], np.float32))
    assert s.mean.tolist() == [1.0, 20.0, 7.0] and s.scale.tolist() == [1.0, 10.0, STD_FLOOR]
    out = s.apply(np.array([[3.0, 0.0, 7.0]], np.float32))
    assert out.dtype == np.float32 and out.tolist() == [[2.0, -2.0, 0.0]]
    mean, scale = s.tensors()
    assert mean.dtype == torch.float32 and scale.tolist() == pytest.approx([1.0, 10.0, 1e-5])
    x = np.array([[1.5, -2.0, 3.0]], np.float32)
    assert np.array_equal(Standardization.identity(3).apply(x), x)


def test_standardization_of_maps_is_per_channel_over_samples_and_pixels() -> None:
    """(N, C, H, W) = (2, 2, 1, 2) maps: channel 0 holds 1, 3, 5, 7 (mean 4, std sqrt(5)),
    channel 1 holds -1 everywhere."""
    maps = np.array([[[[1.0, 3.0]], [[-1.0, -1.0]]], [[[5.0, 7.0]], [[-1.0, -1.0]]]])
    s = Standardization.fit(maps, channel_axis=1)
    assert s.mean.tolist() == [4.0, -1.0]
    assert s.scale.tolist() == pytest.approx([math.sqrt(5.0), STD_FLOOR])


def test_one_seed_everything_for_the_engine_and_the_tasks() -> None:
    import ssl_bench.engine.cells as cells
    import ssl_bench.seeding as seeding

    assert cells.seed_everything is seeding.seed_everything is seed_everything
    generator = seed_everything(3)
    first = torch.rand(2).tolist()
    assert torch.randperm(5, generator=generator).tolist() == torch.randperm(
        5, generator=torch.Generator().manual_seed(3)).tolist()
    seed_everything(3)
    assert torch.rand(2).tolist() == first
