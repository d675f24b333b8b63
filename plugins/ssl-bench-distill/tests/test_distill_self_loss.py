"""DistillSelf's loss terms against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ssl_bench_distill.losses import distillation_kl, info_nce, moco_logits
from ssl_bench_distill.method import effective_queue_length


def _softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def test_kd_term_equals_closed_form_kl() -> None:
    student = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]
    teacher = [[2.0, 0.5, 0.0], [0.0, 0.0, 1.0]]
    expected = 0.0
    for s_row, t_row in zip(student, teacher):
        p_s, p_t = _softmax(s_row), _softmax(t_row)
        expected += sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s))
    expected /= len(student)  # batchmean
    got = distillation_kl(torch.tensor(student), torch.tensor(teacher))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # identical distributions: zero
    assert float(distillation_kl(torch.tensor(teacher), torch.tensor(teacher))) == pytest.approx(
        0.0, abs=1e-7)


def test_kd_gradient_reaches_student_only() -> None:
    student = torch.tensor([[1.0, 0.0, -1.0]], requires_grad=True)
    teacher = torch.tensor([[2.0, 0.5, 0.0]], requires_grad=True)
    distillation_kl(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None
    # d KL / d s = softmax(s) - softmax(t)
    expected = torch.softmax(student.detach(), 1) - torch.softmax(teacher.detach(), 1)
    torch.testing.assert_close(student.grad, expected)


def test_moco_logits_and_info_nce_by_hand() -> None:
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    logits = moco_logits(q, k, queue, temperature=0.2)
    torch.testing.assert_close(logits, torch.tensor([[0.6 / 0.2, 0.0, -1.0 / 0.2]]))
    row = [3.0, 0.0, -5.0]
    expected = -math.log(math.exp(3.0) / sum(math.exp(v) for v in row))
    assert float(info_nce(logits)) == pytest.approx(expected, rel=1e-6)


def test_queue_length_scaled_to_the_pool() -> None:
    # Cholec80-sized pool: the code's K = 2048 is kept
    assert effective_queue_length(90_000, 128, 2048, 0.25) == 2048
    # ~5000 frames, batch 32: cap 1250 -> but queue_size 1024 is smaller
    assert effective_queue_length(5000, 32, 1024, 0.25) == 1024
    # tiny pool: a multiple of the batch below N / 4
    assert effective_queue_length(129, 8, 64, 0.25) == 32
    # smaller than one batch: one batch
    assert effective_queue_length(10, 8, 64, 0.25) == 8
