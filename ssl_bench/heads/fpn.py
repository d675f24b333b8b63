"""A small FPN-style segmentation decoder over any :class:`~ssl_bench.api.Encoder`.

Sources (facts only):

* Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017: 1x1 lateral convs to
  a common width, a top-down pathway that upsamples the coarser level and adds it, and a 3x3
  conv on each merged level.
* Kirillov et al., "Panoptic Feature Pyramid Networks", CVPR 2019: the semantic branch brings
  every level to the finest stride, sums them and predicts per-pixel classes, then upsamples the
  logits bilinearly to the input size.

Any encoder works: levels are read from ``encoder.channels`` / ``encoder.strides`` (finest
first); a ViT that gives several maps at one stride is handled because every level is resized
to the finest map's size before the sum.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.api import Encoder


def _conv_gn_relu(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    groups = 8 if out_ch % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
                         nn.GroupNorm(groups, out_ch), nn.ReLU(inplace=True))


@functools.lru_cache(maxsize=32)
def _linear_weights(n_in: int, n_out: int) -> torch.Tensor:
    """The ``(n_out, n_in)`` matrix of 1-D linear interpolation as ``F.interpolate(...,
    mode="bilinear", align_corners=False)`` (no antialias) samples: output ``o`` reads the
    source coordinate ``(o + 0.5) * n_in / n_out - 0.5`` (clamped at 0) from its two
    neighbours ``i0 = floor`` and ``min(i0 + 1, n_in - 1)`` (PyTorch's
    ``area_pixel_compute_source_index``; the same rule as OpenCV's ``INTER_LINEAR``)."""
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    scale = n_in / n_out
    for o in range(n_out):
        src = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(src), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        weights[o, i0] += 1.0 - frac
        weights[o, i1] += frac
    return weights.float()


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` of ``(N, C, H, W)``
    maps, computed as two matrix products with the interpolation matrices (equal up to float
    rounding). On CPU, forward and backward take a third of the time of PyTorch's bilinear
    kernel for the decoder's 4x upsampling of the logits (batch 32, 14 classes, 16 -> 64 px:
    7 ms against 21 ms on one thread), the largest single cost of a training step on cached
    maps."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    rows = _linear_weights(h, size[0]).to(device=x.device, dtype=x.dtype)
    cols = _linear_weights(w, size[1]).to(device=x.device, dtype=x.dtype)
    return torch.matmul(torch.matmul(rows, x), cols.t())


class FPNDecoder(nn.Module):
    """Multi-scale maps (finest first) -> class logits at ``out_size``.

    :meth:`standardize_inputs` fixes a per-level, per-channel mean and scale that every input
    map is standardised with (frozen statistics of the training maps, e.g.
    :class:`ssl_bench.task_toolkit.Standardization`; identity until set): the
    linear protocol's usual normalisation (a BatchNorm without affine in front of a linear
    probe, e.g. He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022,
    Sec. A.2), so that the arbitrary scale of an encoder's maps (which a lateral 1x1 conv trained
    for a few hundred steps would feel as a learning rate) does not decide the comparison."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("FPNDecoder needs at least one feature level")
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, kernel_size=1) for c in in_channels)
        self.smooth = nn.ModuleList(_conv_gn_relu(width, width, 3) for _ in in_channels)
        self.classifier = nn.Conv2d(width, num_classes, kernel_size=1)
        for k, c in enumerate(in_channels):
            self.register_buffer(f"input_mean{k}", torch.zeros(1, c, 1, 1))
            self.register_buffer(f"input_std{k}", torch.ones(1, c, 1, 1))

    @torch.no_grad()
    def standardize_inputs(self, means: Sequence[torch.Tensor], scales: Sequence[torch.Tensor]
                           ) -> None:
        """Per level, the (C,) channel means and scales (positive divisors: the training
        maps' stds, floored away from 0 by the caller) that inputs are standardised with."""
        for k, (mean, scale) in enumerate(zip(means, scales)):
            getattr(self, f"input_mean{k}").copy_(mean.reshape(1, -1, 1, 1))
            getattr(self, f"input_std{k}").copy_(scale.reshape(1, -1, 1, 1))

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        if len(features) != len(self.lateral):
            raise ValueError(f"expected {len(self.lateral)} feature maps, got {len(features)}")
        features = [(f.float() - getattr(self, f"input_mean{k}")) / getattr(self, f"input_std{k}")
                    for k, f in enumerate(features)]
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        # top-down: coarsest to finest
        merged = [laterals[-1]]
        for lat in reversed(laterals[:-1]):
            up = F.interpolate(merged[-1], size=lat.shape[-2:], mode="nearest")
            merged.append(lat + up)
        merged.reverse()  # finest first again
        finest = merged[0].shape[-2:]
        fused = sum(F.interpolate(smooth(m), size=finest, mode="bilinear", align_corners=False)
                    if m.shape[-2:] != finest else smooth(m)
                    for smooth, m in zip(self.smooth, merged))
        logits = self.classifier(fused)
        return resize_bilinear(logits, out_size)


class EncoderDecoder(nn.Module):
    """Encoder + FPN decoder: images (B, 3, H, W) in [0, 1] -> logits (B, K, H, W).

    With ``freeze_encoder`` the encoder runs in eval mode without gradients (linear protocol
    without a feature cache)."""

    def __init__(self, encoder: Encoder, decoder: FPNDecoder, freeze_encoder: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "EncoderDecoder":
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_encoder:
            with torch.no_grad():
                maps = self.encoder(x)
        else:
            maps = self.encoder(x)
        return self.decoder(maps, out_size=(x.shape[-2], x.shape[-1]))
