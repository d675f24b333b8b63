"""The downstream heads: causal MS-TCN and the FPN decoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.heads import CausalMSTCN, EncoderDecoder, FPNDecoder, mstcn_loss
from ssl_bench.testing import TinyConvEncoder


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_mstcn_is_causal() -> None:
    torch.manual_seed(0)
    model = CausalMSTCN(in_dim=6, num_classes=4, num_stages=3, num_layers=5, channels=8).eval()
    x = torch.randn(1, 6, 40)
    t = 17
    changed = x.clone()
    changed[:, :, t + 1:] = torch.randn(1, 6, 40 - t - 1) * 5
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (3, 1, 4, 40)
    assert torch.equal(a[..., :t + 1], b[..., :t + 1])
    assert not torch.allclose(a[..., t + 1:], b[..., t + 1:])


def test_mstcn_sees_the_past() -> None:
    torch.manual_seed(0)
    model = CausalMSTCN(in_dim=3, num_classes=2, num_stages=2, num_layers=4, channels=8).eval()
    x = torch.randn(1, 3, 30)
    changed = x.clone()
    changed[:, :, 5] += 3.0
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert torch.equal(a[..., :5], b[..., :5])
    assert not torch.allclose(a[..., 20], b[..., 20])  # receptive field reaches back 15+ frames


def test_mstcn_loss_matches_hand_computation() -> None:
    logits = torch.tensor([[[[0.0, 10.0, 10.0, 0.0],
                             [0.0, -10.0, -10.0, 0.0]]]])  # (S=1, B=1, K=2, T=4)
    targets = torch.tensor([[0, 1, 1, -100]])
    loss = mstcn_loss(logits, targets, ignore_index=-100, smoothing_weight=0.15, clamp=16.0)
    log_p = F.log_softmax(logits[0], dim=1)[0]  # (K, T)
    ce = -(log_p[0, 0] + log_p[1, 1] + log_p[1, 2]) / 3
    # valid neighbour pairs: (0,1) and (1,2); squared differences clamped at 16
    d01 = torch.clamp((log_p[:, 1] - log_p[:, 0]) ** 2, max=16.0)
    d12 = torch.clamp((log_p[:, 2] - log_p[:, 1]) ** 2, max=16.0)
    expected = ce + 0.15 * torch.cat([d01, d12]).mean()
    assert float(d01.max()) == 16.0  # the clamp is exercised
    assert torch.allclose(loss, expected)


def test_fpn_output_shape_any_levels() -> None:
    decoder = FPNDecoder([8, 16], num_classes=5, width=16)
    feats = [torch.randn(2, 8, 16, 20), torch.randn(2, 16, 8, 10)]
    assert decoder(feats, out_size=(32, 40)).shape == (2, 5, 32, 40)
    # ViT-like: several maps at one stride
    vit = FPNDecoder([12, 12, 12], num_classes=3, width=8)
    out = vit([torch.randn(1, 12, 4, 4) for _ in range(3)], out_size=(64, 64))
    assert out.shape == (1, 3, 64, 64)


def test_encoder_decoder_frozen_encoder_gets_no_gradient() -> None:
    encoder = TinyConvEncoder()
    model = EncoderDecoder(encoder, FPNDecoder(encoder.channels, 4, width=8), freeze_encoder=True)
    model.train()
    assert not encoder.training
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 4, 32, 32)
    out.sum().backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())
