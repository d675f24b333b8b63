"""MMS losses against independent numpy computations and their expected effects."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssl_bench_mms.losses import (
    DIAGONAL_FILL,
    all_negative_loss,
    box_mean,
    difference_loss,
    patch_contrastive_loss,
    supervised_loss,
)


def _patchnce_loops(q: np.ndarray, k: np.ndarray, tau: float, positive: bool, p: int) -> float:
    """Explicit loops over images and positions (the PatchNCE of MMS's ``ConLoss``)."""
    b, c, h, w = q.shape
    n = h * w
    total, count = 0.0, 0
    for i in range(b):
        qs = [q[i, :, y, x] for y in range(h) for x in range(w)]
        ks = [k[i, :, y, x] for y in range(h) for x in range(w)]
        norm = ((lambda v: v / np.abs(v).sum()) if p == 1
                else (lambda v: v / np.sqrt((v ** 2).sum())))
        qs, ks = [norm(v) for v in qs], [norm(v) for v in ks]
        for a in range(n):
            logits = [float(qs[a] @ ks[a]) if positive else 0.0]
            for j in range(n):
                logits.append(DIAGONAL_FILL if j == a else float(qs[a] @ ks[j]))
            z = np.array(logits) / tau
            total += -z[0] + math.log(np.exp(z).sum())
            count += 1
    return total / count


@pytest.mark.parametrize("positive", [True, False])
@pytest.mark.parametrize("norm,p", [("l1", 1), ("l2", 2)])
def test_patch_contrastive_matches_loops(positive: bool, norm: str, p: int) -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 2, 3)).astype(np.float64)
    k = rng.normal(size=(2, 3, 2, 3)).astype(np.float64)
    ref = _patchnce_loops(q, k, 0.07, positive, p)
    got = patch_contrastive_loss(torch.tensor(q), torch.tensor(k), 0.07, positive=positive,
                                 norm=norm)  # type: ignore[arg-type]
    assert float(got) == pytest.approx(ref, rel=1e-5)


def test_contrastive_key_is_detached() -> None:
    q = torch.randn(1, 4, 2, 2, requires_grad=True)
    k = torch.randn(1, 4, 2, 2, requires_grad=True)
    patch_contrastive_loss(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def _mean_cross_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity between every position of ``a`` and every other position of ``b``."""
    qa = torch.nn.functional.normalize(a.flatten(2).transpose(1, 2), dim=-1)
    kb = torch.nn.functional.normalize(b.flatten(2).transpose(1, 2), dim=-1)
    sim = torch.bmm(qa, kb.transpose(1, 2))
    off = ~torch.eye(sim.shape[1], dtype=torch.bool).unsqueeze(0).expand_as(sim)
    return float(sim[off].mean())


def test_all_negative_gradient_pushes_features_apart() -> None:
    torch.manual_seed(0)
    base = torch.randn(1, 8, 1, 1)
    a1 = (base + 0.3 * torch.randn(2, 8, 3, 3)).requires_grad_(True)  # similar features
    a2 = base + 0.3 * torch.randn(2, 8, 3, 3)
    before = _mean_cross_cosine(a1.detach(), a2)
    all_negative_loss(a1, a2).backward()
    with torch.no_grad():
        # a gradient-descent step of 5% of the features' norm
        moved = a1 - 0.05 * a1.norm() * a1.grad / a1.grad.norm()
    after = _mean_cross_cosine(moved, a2)
    assert after < before - 1e-3


def test_all_negative_step_on_network_lowers_classifier_similarity() -> None:
    from ssl_bench_mms.networks import MMSModel

    torch.manual_seed(0)
    model = MMSModel(3, "efficientnet_lite0", False, (8, 8, 16), head_width=4).eval()
    x1, x2 = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a2 = model.classifier2(model.net2(x2))
        before = _mean_cross_cosine(model.classifier1(model.net1(x1)), a2)
    loss = all_negative_loss(model.classifier1(model.net1(x1)), a2)
    loss.backward()
    with torch.no_grad():
        for param in model.net1.parameters():
            if param.grad is not None:
                param -= 0.05 * param.grad
        after = _mean_cross_cosine(model.classifier1(model.net1(x1)), a2)
        loss_after = all_negative_loss(model.classifier1(model.net1(x1)), a2)
    assert float(loss_after) < float(loss.detach())
    assert after < before


def _binary_structure_loss(z: np.ndarray, y: np.ndarray) -> float:
    """The binary weighted BCE + IoU on logits z (H, W) and mask y (H, W), numpy, 31-box."""
    h, w = y.shape
    pad = np.zeros((h + 30, w + 30))
    pad[15:15 + h, 15:15 + w] = y
    pooled = np.array([[pad[i:i + 31, j:j + 31].sum() / 961.0 for j in range(w)] for i in range(h)])
    weit = 1 + 5 * np.abs(pooled - y)
    p = 1 / (1 + np.exp(-z))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    wbce = (weit * bce).sum() / weit.sum()
    inter = (p * y * weit).sum()
    union = ((p + y) * weit).sum()
    return float(wbce + 1 - (inter + 1) / (union - inter + 1))


def test_two_class_supervised_loss_is_the_binary_loss_on_the_foreground_logit() -> None:
    """K = 2: the paper's binary loss on z = z1 - z0 alone (no background-channel term)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 2, 6, 5))
    mask = (rng.random((2, 6, 5)) > 0.6).astype(np.int64)
    ref = np.mean([_binary_structure_loss(logits[i, 1] - logits[i, 0], mask[i].astype(float))
                   for i in range(2)])
    got = supervised_loss(torch.tensor(logits), torch.tensor(mask), ignore_index=255)
    assert float(got) == pytest.approx(ref, rel=1e-5)
    # the old channel average (foreground and background terms) is a different number
    background = np.mean([_binary_structure_loss(logits[i, 0] - logits[i, 1], 1.0 - mask[i])
                          for i in range(2)])
    assert abs(float(got) - 0.5 * (ref + background)) > 1e-3


def test_two_class_difference_loss_is_the_binary_loss_against_the_other_sigmoid() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(1, 2, 5, 4))
    b = rng.normal(size=(1, 2, 5, 4))
    za, zb = a[0, 1] - a[0, 0], b[0, 1] - b[0, 0]
    pa, pb = 1 / (1 + np.exp(-za)), 1 / (1 + np.exp(-zb))
    ref = _binary_structure_loss(za, pb) + _binary_structure_loss(zb, pa)
    got = difference_loss(torch.tensor(a), torch.tensor(b))
    assert float(got) == pytest.approx(ref, rel=1e-5)


def test_multi_class_supervised_loss_averages_the_binary_loss_over_softmax_channels() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1, 3, 5, 6))
    mask = rng.integers(0, 3, size=(1, 5, 6))
    e = np.exp(logits[0] - logits[0].max(axis=0))
    p = e / e.sum(axis=0)
    # the binary loss of channel k with sigmoid(z_k) = p_k, i.e. z_k = logit(p_k)
    ref = np.mean([_binary_structure_loss(np.log(p[k] / (1 - p[k])), (mask[0] == k).astype(float))
                   for k in range(3)])
    got = supervised_loss(torch.tensor(logits), torch.tensor(mask), ignore_index=255,
                          multiclass="per-channel")
    assert float(got) == pytest.approx(ref, rel=1e-5)


def test_multi_class_supervised_loss_is_weighted_softmax_ce_plus_iou_of_present_classes() -> None:
    """K > 2 default (version 4): weighted softmax CE + weighted IoU averaged over the classes
    present in each image; an absent class adds no IoU term."""
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(1, 4, 5, 6))
    mask = rng.integers(0, 3, size=(1, 5, 6))  # class 3 absent
    e = np.exp(logits[0] - logits[0].max(axis=0))
    p = e / e.sum(axis=0)
    onehot = np.stack([(mask[0] == k).astype(float) for k in range(4)])
    h, w = mask.shape[1:]
    weights = []
    for k in range(4):
        pad = np.zeros((h + 30, w + 30))
        pad[15:15 + h, 15:15 + w] = onehot[k]
        pooled = np.array([[pad[i:i + 31, j:j + 31].sum() / 961.0 for j in range(w)]
                           for i in range(h)])
        weights.append(1 + 5 * np.abs(pooled - onehot[k]))
    weights = np.stack(weights)
    pix_w = weights.max(axis=0)
    ce = -np.log((p * onehot).sum(axis=0))
    wce = (pix_w * ce).sum() / pix_w.sum()
    ious = []
    for k in range(3):
        inter = (p[k] * onehot[k] * weights[k]).sum()
        union = ((p[k] + onehot[k]) * weights[k]).sum()
        ious.append(1 - (inter + 1) / (union - inter + 1))
    ref = wce + np.mean(ious)
    got = supervised_loss(torch.tensor(logits), torch.tensor(mask), ignore_index=255)
    assert float(got) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("k", [2, 3])
def test_ignored_pixels_do_not_change_the_supervised_loss(k: int) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, k, 8, 8)
    mask = torch.randint(0, k, (2, 8, 8))
    mask[:, :2] = 255
    changed = logits.clone()
    changed[:, :, :2] = torch.randn(2, k, 2, 8) * 10
    a = supervised_loss(logits, mask, 255)
    b = supervised_loss(changed, mask, 255)
    assert float(a) == pytest.approx(float(b), rel=1e-6)


@pytest.mark.parametrize("kernel", [3, 31])
def test_box_mean_equals_the_two_dimensional_average_pool(kernel: int) -> None:
    x = torch.rand(2, 3, 40, 37, dtype=torch.float64)
    ref = torch.nn.functional.avg_pool2d(x, kernel_size=kernel, stride=1, padding=kernel // 2)
    assert torch.allclose(box_mean(x, kernel), ref, atol=1e-12)


def test_rampup_weight_follows_the_sigmoid_rampup() -> None:
    """exp(-5 (1 - t)^2), t = step / (rampup * total) capped at 1; off when rampup is 0."""
    from ssl_bench_mms.method import rampup_weight

    assert rampup_weight(0, 96, 0.0) == rampup_weight(50, 96, 0.0) == 1.0
    assert rampup_weight(0, 96, 1.0) == pytest.approx(math.exp(-5.0))
    assert rampup_weight(48, 96, 1.0) == pytest.approx(math.exp(-1.25))
    assert rampup_weight(48, 96, 0.5) == rampup_weight(90, 96, 0.5) == 1.0
    assert rampup_weight(24, 96, 0.5) == pytest.approx(math.exp(-1.25))


def test_the_ramp_scales_every_term_but_the_supervised_one() -> None:
    from ssl_bench_mms.method import MMSConfig, mms_losses
    from ssl_bench_mms.networks import MMSModel

    torch.manual_seed(0)
    model = MMSModel(3, "efficientnet_lite0", False, (8, 8, 16), head_width=4).eval()
    x, xu = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    y = torch.randint(0, 3, (2, 32, 32))
    cfg = MMSConfig(weight_sup=0.5, weight_diff=0.25, weight_contrast=0.125,
                    weight_all_negative=0.125)
    with torch.no_grad():
        full = mms_losses(model, x, y, x, y, xu, cfg, 255, unlabelled_weight=1.0)
        half = mms_losses(model, x, y, x, y, xu, cfg, 255, unlabelled_weight=0.5)
    rest = 0.25 * full["diff"] + 0.125 * full["contrast"] + 0.125 * full["all_negative"]
    torch.testing.assert_close(full["loss"], 0.5 * full["sup"] + rest)
    torch.testing.assert_close(half["loss"], 0.5 * full["sup"] + 0.5 * rest)


def test_the_cpu_profile_ramps_the_earlier_official_weighting() -> None:
    from ssl_bench_mms.method import MMSMethod

    cpu, paper = MMSMethod.profiles["cpu"], MMSMethod.profiles["paper"]
    assert (cpu["weight_sup"], cpu["weight_diff"], cpu["weight_contrast"],
            cpu["weight_all_negative"], cpu["unlabelled_rampup"]) == (0.5, 0.25, 0.125, 0.125,
                                                                      1.0)
    assert not {"weight_sup", "unlabelled_rampup"} & set(paper)  # the latest code's 0.25 x 4
