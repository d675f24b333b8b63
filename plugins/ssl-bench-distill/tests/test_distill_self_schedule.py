"""DistillSelf's per-stage cosine learning rate (the code's two jobs) against hand values, and
the optimiser it drives: directly and through the harness's mmengine run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from ssl_bench.engine.pretrain import run_pretraining
from ssl_bench.testing import smoke_method, tiny_pool
from ssl_bench_distill.method import DistillSelf
from ssl_bench_distill.schedule import stage_cosine_factor

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _code_cosine(epoch: float, epochs: float) -> float:
    """``adjust_learning_rate`` of main_moco.py with --cos, as a factor of the peak lr."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


@pytest.mark.parametrize("progress,expected", [
    (0.0, 1.0), (0.125, 0.5 * (1 + math.cos(math.pi / 4))), (0.25, 0.5), (0.49, None),
    (0.5, 1.0), (0.75, 0.5), (0.875, 0.5 * (1 + math.cos(3 * math.pi / 4))), (1.0, 0.0)])
def test_each_stage_has_its_own_cosine_from_the_peak(progress: float, expected: float | None
                                                     ) -> None:
    # teacher_fraction 0.5 of 400 epochs: two 200-epoch jobs, as the paper profile
    got = stage_cosine_factor(progress, 0.5)
    epoch_in_stage = (progress % 0.5) * 400 if progress < 1.0 else 200
    assert got == pytest.approx(_code_cosine(epoch_in_stage, 200), abs=1e-12)
    if expected is not None:
        assert got == pytest.approx(expected, abs=1e-12)
    # the single harness cosine of version 1 starts the student at half the peak
    assert _code_cosine(0.5 * 400, 400) == pytest.approx(0.5)


def test_uneven_stages() -> None:
    assert stage_cosine_factor(0.15, 0.3) == pytest.approx(0.5)
    assert stage_cosine_factor(0.3, 0.3) == pytest.approx(1.0)
    assert stage_cosine_factor(0.65, 0.3) == pytest.approx(0.5)
    assert stage_cosine_factor(0.2, 0.0) == pytest.approx(_code_cosine(0.2, 1.0))


def test_lr_factor_is_the_stage_cosine_and_single_leaves_the_harness_schedule() -> None:
    method = smoke_method(DistillSelf, teacher_fraction=0.5, lr=0.01)
    for progress in (0.0, 0.25, 0.5, 0.75):
        assert method.lr_factor(progress) == pytest.approx(stage_cosine_factor(progress, 0.5))
        assert method.learning_rate(progress) == pytest.approx(
            0.01 * stage_cosine_factor(progress, 0.5))
    assert smoke_method(DistillSelf, lr_schedule="single").lr_factor(0.3) is None


def test_harness_run_uses_the_per_stage_lr(tmp_path: Path) -> None:
    """Through mmengine's Runner (the harness applies Method.lr_factor before every step): the
    lr of every optimiser step."""
    torch.manual_seed(0)
    steps = 6
    method = smoke_method(DistillSelf, teacher_fraction=0.5, lr=0.01, max_steps=steps,
                          optimizer="sgd")
    used: list[float] = []
    handle = register_optimizer_step_post_hook(
        lambda opt, _a, _k: used.append(opt.param_groups[0]["lr"]))
    try:
        run_pretraining(method, tiny_pool("surgical", 32), tmp_path / "run", 0,
                        log=lambda _m: None)
    finally:
        handle.remove()
    expected = [0.01 * stage_cosine_factor(i / steps, 0.5) for i in range(steps)]
    assert used == pytest.approx(expected)
    assert used[3] == pytest.approx(0.01)  # the student starts at the peak lr
