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


def test_distillself_single_stage_tcn_architecture() -> None:
    # DistillSelf's BaseCausalTCN: input Dropout2d, 1x1 conv, 12 causal dilated residual layers
    # of 64 maps (dilation 2**i, left padding 2 * dilation), 1x1 output conv; one stage
    model = CausalMSTCN(in_dim=2048, num_classes=7, num_stages=1, num_layers=12, channels=64,
                        dropout=0.5, input_dropout=0.5)
    assert len(model.stages) == 1
    stage = model.stages[0]
    assert (stage.conv_in.in_channels, stage.conv_in.out_channels) == (2048, 64)
    assert (stage.conv_out.in_channels, stage.conv_out.out_channels) == (64, 7)
    assert len(stage.layers) == 12
    assert [layer.conv_dilated.dilation[0] for layer in stage.layers] == [2 ** i for i in range(12)]
    assert all(layer.left_pad == 2 * layer.conv_dilated.dilation[0] for layer in stage.layers)
    assert all(layer.conv_dilated.kernel_size == (3,) and layer.dropout.p == 0.5
               for layer in stage.layers)
    assert isinstance(model.input_dropout, torch.nn.Dropout2d) and model.input_dropout.p == 0.5
    assert model(torch.randn(1, 2048, 9)).shape == (1, 1, 7, 9)
    # the default model has no input dropout module (nothing drawn, outputs unchanged)
    assert CausalMSTCN(in_dim=4, num_classes=2).input_dropout is None


def test_single_stage_tcn_with_input_dropout_is_causal() -> None:
    torch.manual_seed(0)
    model = CausalMSTCN(in_dim=6, num_classes=4, num_stages=1, num_layers=6, channels=8,
                        input_dropout=0.5).eval()
    x = torch.randn(2, 6, 50)
    for t in (0, 20, 48):
        changed = x.clone()
        changed[:, :, t + 1:] = torch.randn(2, 6, 50 - t - 1) * 5
        with torch.no_grad():
            a, b = model(x), model(changed)
        assert torch.equal(a[..., :t + 1], b[..., :t + 1])
        assert not torch.allclose(a[..., t + 1:], b[..., t + 1:])


def test_input_dropout_zeroes_whole_feature_channels_over_time() -> None:
    torch.manual_seed(0)
    model = CausalMSTCN(in_dim=64, num_classes=3, num_stages=1, num_layers=2, channels=4,
                        dropout=0.0, input_dropout=0.5)
    seen: list[torch.Tensor] = []
    model.stages[0].conv_in.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    x = torch.ones(3, 64, 20)
    model.train()
    model(x)
    dropped = seen[-1]
    # each (video, channel) is either zero at every frame or scaled by 1 / (1 - p) at every one
    per_channel = dropped[:, :, :1].expand_as(dropped)
    assert torch.equal(dropped, per_channel)
    assert set(dropped.unique().tolist()) == {0.0, 2.0}
    assert 0.3 < float((dropped[:, :, 0] == 0).float().mean()) < 0.7
    model.eval()
    model(x)
    assert torch.equal(seen[-1], x)  # no dropout at evaluation


def test_mstcn_loss_smoothing_weight_one_matches_hand_computation() -> None:
    # DistillSelf train.py: CE over frames + 1.0 x mean of the clamped squared differences
    logits = torch.tensor([[[[2.0, -1.0, 0.5], [0.0, 3.0, -2.0], [1.0, 1.0, 1.0]]]])
    targets = torch.tensor([[0, 1, 2]])
    log_p = F.log_softmax(logits[0], dim=1)[0]  # (K, T)
    ce = -(log_p[0, 0] + log_p[1, 1] + log_p[2, 2]) / 3
    smooth = torch.clamp((log_p[:, 1:] - log_p[:, :-1]) ** 2, max=16.0).mean()
    loss = mstcn_loss(logits, targets, smoothing_weight=1.0)
    assert torch.allclose(loss, ce + smooth)
    assert torch.allclose(loss - mstcn_loss(logits, targets, smoothing_weight=0.0), smooth)


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


def test_fpn_standardized_inputs_make_the_decoder_blind_to_feature_scale() -> None:
    """With the training maps' statistics fixed, scaling and shifting an encoder's maps per channel
    leaves the decoder's output unchanged (the linear protocol's normalisation)."""
    torch.manual_seed(0)
    maps = [torch.randn(4, 3, 8, 8), torch.randn(4, 5, 4, 4)]
    scale = [torch.tensor([10.0, 0.1, 3.0]), torch.linspace(0.5, 40.0, 5)]
    shift = [torch.tensor([1.0, -2.0, 5.0]), torch.arange(5.0)]
    moved = [m * s.view(1, -1, 1, 1) + b.view(1, -1, 1, 1) for m, s, b in zip(maps, scale, shift)]
    decoder = FPNDecoder([3, 5], num_classes=2, width=8).eval()
    with torch.no_grad():
        decoder.standardize_inputs([m.mean((0, 2, 3)) for m in maps],
                                   [m.std((0, 2, 3), unbiased=False) for m in maps])
        a = decoder(maps, (8, 8))
        decoder.standardize_inputs([m.mean((0, 2, 3)) for m in moved],
                                   [m.std((0, 2, 3), unbiased=False) for m in moved])
        b = decoder(moved, (8, 8))
    assert torch.allclose(a, b, atol=1e-4)
    fresh = FPNDecoder([3, 5], num_classes=2, width=8).eval()  # identity until set
    fresh.load_state_dict({k: v for k, v in decoder.state_dict().items() if "input_" not in k},
                          strict=False)
    with torch.no_grad():
        normalised = [(m - m.mean((0, 2, 3), keepdim=True)) / m.std((0, 2, 3), unbiased=False,
                                                                    keepdim=True) for m in maps]
        assert torch.allclose(fresh(normalised, (8, 8)), a, atol=1e-4)


@pytest.mark.parametrize("src, dst", [((16, 16), (64, 64)), ((5, 7), (13, 32)),
                                      ((64, 48), (16, 20)), ((9, 9), (9, 30)), ((1, 4), (3, 4))])
def test_resize_bilinear_is_torch_bilinear(src: tuple[int, int], dst: tuple[int, int]) -> None:
    from ssl_bench.heads.fpn import resize_bilinear

    torch.manual_seed(0)
    x = torch.randn(2, 3, *src, requires_grad=True)
    grad = torch.randn(2, 3, *dst)
    ours = resize_bilinear(x, dst)
    (g_ours,) = torch.autograd.grad(ours, x, grad)
    # the reference is torch's bilinear in float64 on the same values: torch's float32 kernel
    # computes its source weights in float32 and is itself off by up to 8e-6 here (64x48 ->
    # 16x20), close to the tolerance; against float64 only our float32 rounding is left
    # (values below 8: 2**-21 = 4.8e-7 per rounding; gradients below 16: 2**-20)
    x64 = x.detach().double().requires_grad_()
    ref = F.interpolate(x64, size=dst, mode="bilinear", align_corners=False)
    (g_ref,) = torch.autograd.grad(ref, x64, grad.double())
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours.double(), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(g_ours.double(), g_ref, rtol=0, atol=1e-4)


def test_linear_weights_by_hand() -> None:
    from ssl_bench.heads.fpn import _linear_weights

    # 2 -> 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (the last neighbour repeats)
    expected = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    torch.testing.assert_close(_linear_weights(2, 4), expected, rtol=0, atol=0)
