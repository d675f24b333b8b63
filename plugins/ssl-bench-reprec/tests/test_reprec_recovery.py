"""RepRec recovery branch: masked-only loss, stop-gradient targets, masking ratio."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.testing import smoke_method
from ssl_bench_reprec.losses import cnn_patch_targets, masked_recovery_loss
from ssl_bench_reprec.method import RepRec


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_loss_ignores_predictions_at_visible_positions() -> None:
    torch.manual_seed(0)
    pred = torch.randn(2, 6, 4)
    target = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    base = masked_recovery_loss(pred, target, mask)
    changed = pred.clone()
    changed[~mask] += 100.0
    assert torch.allclose(masked_recovery_loss(changed, target, mask), base)
    # hand computation: mean over masked tokens of the per-token mean squared error
    expected = ((pred - target) ** 2).mean(-1)[mask].mean()
    assert torch.allclose(base, expected)
    changed = pred.clone()
    changed[mask] += 1.0
    assert not torch.allclose(masked_recovery_loss(changed, target, mask), base)


def test_model_loss_gradient_only_reaches_predictions_at_masked_patches() -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec)
    model = method.build()
    images = torch.rand(2, 3, 32, 32)
    pred, mask = model.recover(images, 0.75)
    pred.retain_grad()
    target = cnn_patch_targets(model.cnn(images), list(model.cnn.strides), 8, (4, 4))
    masked_recovery_loss(pred, target, mask).backward()
    grad_norm = pred.grad.abs().sum(-1)
    assert bool((grad_norm[~mask] == 0).all()) and bool((grad_norm[mask] > 0).all())


def test_cnn_targets_carry_no_gradient() -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec)
    model = method.build()
    images = torch.rand(2, 3, 32, 32)
    maps = model.cnn(images)
    assert maps[1].requires_grad  # the CNN forward itself is differentiable ...
    target = cnn_patch_targets(maps, list(model.cnn.strides), 8, (4, 4))
    assert not target.requires_grad  # ... its use as a target is not
    method.recovery_loss(model, images, maps).backward()
    assert all(p.grad is None for p in model.cnn.parameters())
    assert all(p.grad is None for p in model.projector.parameters())
    vit_grads = [p.grad for p in model.vit.parameters() if p.grad is not None]
    assert vit_grads and any(float(g.abs().sum()) > 0 for g in vit_grads)
    # the target is the stride-8 map (patch 8) normalised per token
    assert target.shape == (2, 16, model.cnn.channels[1])
    assert torch.allclose(target.mean(-1), torch.zeros(2, 16), atol=1e-5)


def test_masking_ratio_is_respected() -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec, image_size=64)
    model = method.build()  # 8 x 8 = 64 patches
    images = torch.rand(3, 3, 64, 64)
    for ratio in (0.25, 0.5, 0.75, 0.9):
        _, mask = model.recover(images, ratio)
        assert mask.shape == (3, 64)
        expected = 64 - int(64 * (1 - ratio))
        assert mask.sum(1).tolist() == [expected] * 3
    # different images get different masks
    _, mask = model.recover(images, 0.5)
    assert not torch.equal(mask[0], mask[1])
