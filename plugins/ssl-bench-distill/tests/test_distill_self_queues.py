"""DistillSelf: the queues are full when each stage starts, the teacher embeds the pooled
penultimate feature, and each step's loss dict names its stage (per-stage health)."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.backbones import PooledFeatureEncoder
from ssl_bench.engine.health import loss_trajectory, step_stage
from ssl_bench.errors import SSLBenchError
from ssl_bench.testing import first_batch, smoke_method, tiny_pool
from ssl_bench_distill.method import STAGE_STUDENT, STAGE_TEACHER, DistillSelf
from ssl_bench_distill.teacher import load_teacher_backbone


def _setup(**overrides: object) -> tuple[DistillSelf, torch.nn.Module, tuple[torch.Tensor, ...]]:
    """The smoke config on the tiny pool: a queue of 32 keys, batches of 8, 2 student steps
    (16 keys: a stage too short to fill its queue by training alone)."""
    torch.manual_seed(0)
    method = smoke_method(DistillSelf, **overrides)
    assert isinstance(method, DistillSelf)
    dataset = method.pretrain_dataset(tiny_pool("surgical", 32))
    model = method.build()
    model.train()
    return method, model, first_batch(dataset, batch_size=8)


def _assert_unit_rows(queue: torch.Tensor) -> None:
    assert torch.isfinite(queue).all()
    torch.testing.assert_close(queue.norm(dim=1), torch.ones(len(queue)))


def test_each_stage_starts_with_full_queues() -> None:
    method, model, batch = _setup()
    with torch.no_grad():  # no row may keep its initial value: make every row detectably empty
        model.student_queue.zero_()
        model.teacher_queue.zero_()
    method.training_step(model, batch, progress=0.0)
    length = int(model.queue_len)
    assert int(model.stage) == STAGE_TEACHER and length == 32
    assert int(model.queue_filled) == length
    _assert_unit_rows(model.teacher_queue[:length])
    assert (model.student_queue == 0).all()  # stage 1 has no student queue

    teacher_stage = model.teacher_queue[:length].clone()
    with torch.no_grad():
        model.student_queue.zero_()
    out = method.training_step(model, batch, progress=0.5)  # the student stage begins
    assert int(model.stage) == STAGE_STUDENT and int(model.queue_filled) == length
    _assert_unit_rows(model.student_queue[:length])
    _assert_unit_rows(model.teacher_queue[:length])
    assert not torch.equal(model.teacher_queue[:length], teacher_stage)  # refilled for stage 2
    assert float(out["kd"]) > 0


def test_fill_is_seeded_and_leaves_the_training_rng_alone() -> None:
    method, model, batch = _setup()
    other_method, other, _ = _setup()
    model.queue_len.fill_(32)  # set by the first training step
    other.load_state_dict(model.state_dict())
    torch.manual_seed(5)
    method.fill_queues(model, torch.device("cpu"))
    after_fill = torch.rand(3)
    torch.manual_seed(5)
    expected = torch.rand(3)
    other_method.fill_queues(other, torch.device("cpu"))
    assert torch.equal(after_fill, expected)
    assert int(model.queue_filled) == 32
    assert torch.equal(model.teacher_queue, other.teacher_queue)


def test_without_refill_the_kd_term_uses_the_columns_written_in_the_stage() -> None:
    method, model, batch = _setup(refill_queues=False, teacher_fraction=0.0)
    method.training_step(model, batch, progress=0.0)
    assert int(model.queue_filled) == 8  # one batch: the code's start, on random rows


def test_fill_needs_the_pool() -> None:
    method = smoke_method(DistillSelf)
    assert isinstance(method, DistillSelf)
    model = method.build()
    model.queue_len.fill_(8)
    with pytest.raises(SSLBenchError, match="pretrain_dataset"):
        method.fill_queues(model, torch.device("cpu"))


def test_teacher_embeds_the_pooled_penultimate_feature() -> None:
    """The shared pooled-feature teacher (tested against the classifier in the core suite)."""
    teacher = load_teacher_backbone()
    assert isinstance(teacher, PooledFeatureEncoder) and teacher.embed_dim == 1280
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    model = smoke_method(DistillSelf).build()
    assert model.teacher_head.layers[0].in_features == 1280


def test_each_step_names_its_stage_and_health_splits_the_losses() -> None:
    method, model, batch = _setup()
    losses: list[float] = []
    stages: list[int] = []
    steps = 3  # the smoke budget: teacher_fraction 0.34 -> two teacher steps, one student step
    for step in range(steps):
        out = method.training_step(model, batch, progress=step / steps)
        method.after_step(model, (step + 1) / steps)
        losses.append(float(out["loss"].detach()))
        stages.append(step_stage(out))
    assert stages == [STAGE_TEACHER, STAGE_TEACHER, STAGE_STUDENT]
    health = loss_trajectory(losses, stages)
    assert health["loss_stages"] == [
        {"stage": 1, "loss_first": losses[0], "loss_last": losses[1], "loss_steps": 2},
        {"stage": 2, "loss_first": losses[2], "loss_last": losses[2], "loss_steps": 1},
    ]
    assert (health["loss_first"], health["loss_last"]) == (losses[2], losses[2])
