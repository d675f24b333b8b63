"""Each baseline's loss against hand-computed or independent (numpy) values on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssl_bench.default_plugins.methods.byol import byol_loss, ema_momentum
from ssl_bench.default_plugins.methods.dino import DINO, teacher_temperature
from ssl_bench.default_plugins.methods.mae import mae_loss
from ssl_bench.default_plugins.methods.moco_v2 import MoCoV2, moco_infonce
from ssl_bench.default_plugins.methods.simclr import SimCLR
from ssl_bench.testing import smoke_method


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _ntxent_numpy(a: np.ndarray, b: np.ndarray, temperature: float) -> float:
    """NT-Xent (SimCLR Eq. 1) written out over the 2N views."""
    z = np.concatenate([a, b])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(a)
    sim = z @ z.T / temperature
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        total += -sim[i, j] + np.log(np.exp(sim[i, others]).sum())
    return total / (2 * n)


def test_ntxent_on_hand_vectors() -> None:
    method = smoke_method(SimCLR)
    assert method.config.temperature == 0.5
    # float64: the loss is a logsumexp near 2.24 minus the positive logit 2, so in float32 one
    # rounding of the logsumexp (2**-22) is already 1e-6 of the result and its last bit depends
    # on the CPU's exp/log kernels; in float64 the same cancellation leaves ~1e-15
    e = torch.eye(2, dtype=torch.float64)
    # identical unit views: each anchor sees logits 2 (positive), 0, 0 (negatives) at T = 0.5
    assert float(method.criterion(e, e)) == pytest.approx(math.log(1 + 2 * math.exp(-2)),
                                                          rel=1e-12)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    got = float(method.criterion(torch.tensor(a, dtype=torch.float32),
                                 torch.tensor(b, dtype=torch.float32)))
    assert got == pytest.approx(_ntxent_numpy(a, b, 0.5), rel=1e-5)


def test_moco_infonce_with_known_queue() -> None:
    # float64 (queue included): the loss, ~0.095, is a logsumexp near 3.1 minus 3, so one
    # float32 rounding of the logsumexp (2**-22) would be 2.5e-6 of it
    loss_fn = moco_infonce(queue_size=3, dim=2, temperature=0.2).double()
    loss_fn.memory_bank.bank.copy_(torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    loss_fn.memory_bank.bank_ptr.zero_()
    q = torch.tensor([[2.0, 0.0]], dtype=torch.float64, requires_grad=True)  # normalised: (1, 0)
    k = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    # logits [q.k, q.queue] / T = [0.6, 0, -1, 0] / 0.2 = [3, 0, -5, 0]; positive at index 0
    expected = -3 + math.log(math.exp(3) + 1 + math.exp(-5) + 1)
    assert float(loss_fn(q, k).detach()) == pytest.approx(expected, rel=1e-12)
    # the key was enqueued (FIFO at the pointer) after being scored
    assert torch.allclose(loss_fn.memory_bank.bank[0],
                          torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert int(loss_fn.memory_bank.bank_ptr) == 1
    assert "memory_bank.bank" in loss_fn.state_dict()  # the queue is checkpointed


def test_moco_model_keeps_queue_in_checkpoint() -> None:
    method = smoke_method(MoCoV2)
    keys = method.build().state_dict().keys()
    assert {"criterion.memory_bank.bank", "criterion.memory_bank.bank_ptr"} <= set(keys)


def test_byol_two_minus_two_cos_with_stop_gradient() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    z = torch.tensor([[1.0, 1.0], [0.0, -2.0]], requires_grad=True)
    loss = byol_loss(p, z)
    # cos = 1/sqrt(2) and -1: (2 - sqrt(2) + 4) / 2
    assert float(loss.detach()) == pytest.approx(3 - math.sqrt(2) / 2, rel=1e-6)
    loss.backward()
    assert z.grad is None and p.grad is not None


def test_ema_momentum_cosine_schedule() -> None:
    assert ema_momentum(0.0, 0.996) == pytest.approx(0.996)
    assert ema_momentum(0.5, 0.996) == pytest.approx(0.998)
    assert ema_momentum(1.0, 0.996) == pytest.approx(1.0)


def test_dino_cross_entropy_with_centering_on_hand_logits() -> None:
    method = smoke_method(DINO, head_output_dim=3)
    model = method.build()
    criterion = model.criterion
    center = np.array([0.5, -0.5, 0.0])
    criterion.center.copy_(torch.tensor(center, dtype=torch.float32).view(1, 1, 3))
    teacher = [np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 2.0, 1.0]])]
    student = [np.array([[0.2, 0.1, 0.0]]), np.array([[0.0, 0.3, -0.3]]),
               np.array([[1.0, -1.0, 0.5]])]  # third: a local crop
    t_temp = teacher_temperature(0.0, method.config)
    assert t_temp == pytest.approx(0.04)
    got = criterion([torch.tensor(t, dtype=torch.float32) for t in teacher],
                    [torch.tensor(s, dtype=torch.float32) for s in student], teacher_temp=t_temp)
    # independent numpy: softmax((t - c) / 0.04) vs log_softmax(s / 0.1), every pair of
    # different views (teacher view i never scores student view i)
    t_prob = [np.exp(_log_softmax((t - center) / 0.04)) for t in teacher]
    s_logp = [_log_softmax(s / 0.1) for s in student]
    terms = [-(t_prob[i] * s_logp[j]).sum() for i in range(2) for j in range(3) if i != j]
    assert float(got) == pytest.approx(np.mean(terms), rel=1e-5)
    # centre EMA with momentum 0.9 over the teacher outputs
    new_center = 0.9 * center + 0.1 * np.mean(np.concatenate(teacher), axis=0)
    assert np.allclose(criterion.center.view(-1).numpy(), new_center, atol=1e-6)


def test_dino_teacher_temperature_warmup() -> None:
    config = smoke_method(DINO).config
    assert teacher_temperature(0.15, config) == pytest.approx(0.055)
    assert teacher_temperature(0.3, config) == pytest.approx(0.07)
    assert teacher_temperature(0.9, config) == pytest.approx(0.07)


def test_mae_loss_only_on_masked_patches() -> None:
    rng = np.random.default_rng(1)
    patches = rng.normal(size=(1, 4, 3))
    idx_mask = np.array([[1, 3]])
    pred = rng.normal(size=(1, 2, 3))
    target = patches[0, [1, 3]]
    target = (target - target.mean(-1, keepdims=True)) / np.sqrt(
        target.var(-1, ddof=1, keepdims=True) + 1e-6)
    expected = ((pred[0] - target) ** 2).mean()

    def loss(p: np.ndarray, norm: bool = True) -> float:
        return float(mae_loss(torch.tensor(pred), torch.tensor(p), torch.tensor(idx_mask), norm))

    assert loss(patches) == pytest.approx(expected, rel=1e-6)
    visible_changed = patches.copy()
    visible_changed[0, [0, 2]] += 10.0
    assert loss(visible_changed) == pytest.approx(expected, rel=1e-6)
    masked_changed = patches.copy()
    masked_changed[0, 3, 0] += 1.0
    assert loss(masked_changed) != pytest.approx(expected, rel=1e-3)
    # without normalisation: plain MSE on the masked patches
    assert loss(patches, norm=False) == pytest.approx(((pred[0] - patches[0, [1, 3]]) ** 2).mean())
