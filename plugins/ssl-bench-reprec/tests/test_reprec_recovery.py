"""RepRec recovery branch: masked-only loss, stop-gradient targets, masking ratio, and the
stacked topology (the transformer reads the CNN's tokens) against hand computations."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.testing import smoke_method
from ssl_bench_reprec.losses import cnn_patch_targets, masked_recovery_loss
from ssl_bench_reprec.method import RepRec

pytestmark = pytest.mark.usefixtures("torch_one_thread")
TOPOLOGIES = ["stacked", "parallel"]


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


def _inputs(model, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    target = cnn_patch_targets(model.cnn(images), list(model.cnn.strides), 8, model.grid)
    return model.transformer_input(images, target), target


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_model_loss_gradient_only_reaches_predictions_at_masked_patches(topology: str) -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec, topology=topology)
    model = method.build()
    inputs, target = _inputs(model, torch.rand(2, 3, 32, 32))
    pred, mask = model.recover(inputs, 0.75)
    pred.retain_grad()
    masked_recovery_loss(pred, target, mask).backward()
    grad_norm = pred.grad.abs().sum(-1)
    assert bool((grad_norm[~mask] == 0).all()) and bool((grad_norm[mask] > 0).all())


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_cnn_targets_carry_no_gradient(topology: str) -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec, topology=topology)
    model = method.build()
    images = torch.rand(2, 3, 32, 32)
    maps = model.cnn(images)
    assert maps[1].requires_grad  # the CNN forward itself is differentiable ...
    target = cnn_patch_targets(maps, list(model.cnn.strides), 8, (4, 4))
    assert not target.requires_grad  # ... its use as a target (and stacked input) is not
    method.recovery_loss(model, images, maps).backward()
    assert all(p.grad is None for p in model.cnn.parameters())
    assert all(p.grad is None for p in model.projector.parameters())
    vit_grads = [p.grad for p in model.masked_vit.vit.parameters() if p.grad is not None]
    assert vit_grads and any(float(g.abs().sum()) > 0 for g in vit_grads)
    # the target is the stride-8 map (patch 8) normalised per token
    assert target.shape == (2, 16, model.cnn.channels[1])
    assert torch.allclose(target.mean(-1), torch.zeros(2, 16), atol=1e-5)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_masking_ratio_is_respected(topology: str) -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec, image_size=64, topology=topology)
    model = method.build()  # 8 x 8 = 64 tokens (patch 8 / CNN stride 8)
    inputs, _ = _inputs(model, torch.rand(3, 3, 64, 64))
    for ratio in (0.25, 0.5, 0.75, 0.9):
        _, mask = model.recover(inputs, ratio)
        assert mask.shape == (3, 64)
        expected = 64 - int(64 * (1 - ratio))
        assert mask.sum(1).tolist() == [expected] * 3
    # different images get different masks
    _, mask = model.recover(inputs, 0.5)
    assert not torch.equal(mask[0], mask[1])


def test_stacked_transformer_input_is_the_normalised_cnn_tokens() -> None:
    """By hand: the stride-8 CNN map, each position normalised over channels."""
    torch.manual_seed(0)
    method = smoke_method(RepRec)
    model = method.build()
    assert model.topology == "stacked" and model.transformer.patch_embed.proj.kernel_size == (1, 1)
    images = torch.rand(2, 3, 32, 32)
    inputs, _ = _inputs(model, images)
    fmap = model.cnn(images)[1].detach()  # (2, C, 4, 4): stride 8
    mean = fmap.mean(dim=1, keepdim=True)
    var = fmap.var(dim=1, unbiased=False, keepdim=True)
    expected = (fmap - mean) / torch.sqrt(var + 1e-5)
    torch.testing.assert_close(inputs, expected, rtol=1e-4, atol=1e-5)
    assert model.masked_vit.sequence_length == 16 + 1  # 4 x 4 CNN tokens + class token


def test_stacked_transformer_sees_only_the_visible_cnn_tokens() -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec)
    model = method.build().eval()
    inputs, _ = _inputs(model, torch.rand(2, 3, 32, 32))
    with torch.no_grad():
        torch.manual_seed(5)
        pred, mask = model.recover(inputs, 0.75)
        # a masked token's value is never read: change every masked token
        changed = inputs.flatten(2).clone()
        for b in range(2):
            changed[b][:, mask[b]] = torch.randn(changed.shape[1], int(mask[b].sum()))
        torch.manual_seed(5)  # the same mask
        pred_masked_changed, mask_again = model.recover(changed.view_as(inputs), 0.75)
        assert torch.equal(mask, mask_again)
        torch.testing.assert_close(pred_masked_changed, pred)
        # a visible token is read
        visible = inputs.flatten(2).clone()
        first_visible = int((~mask[0]).nonzero()[0])
        visible[0, :, first_visible] += 3.0
        torch.manual_seed(5)
        pred_visible_changed, _ = model.recover(visible.view_as(inputs), 0.75)
    assert not torch.allclose(pred_visible_changed[0], pred[0])
