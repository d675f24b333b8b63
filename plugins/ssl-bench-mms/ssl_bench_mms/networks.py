"""The MMS networks: two U-Net-style segmentation networks, two projectors and two classifiers.

Sources (facts only; the code here is our own):

* Lou, Tawfik, Yao, Liu, Noble, "Min-Max Similarity: A Contrastive Semi-Supervised Deep
  Learning Network for Surgical Tools Segmentation", IEEE TMI 42(10):2832-2841, 2023,
  arXiv 2203.15177.
* Official code AngeLouCN/Min_Max_Similarity: ``model/pretrained_unet.py`` (``preUnet``: an
  ImageNet Res2Net-101-v1b encoder, layers 1-3 plus the stem, and a U-Net decoder whose blocks
  are conv-BN-LeakyReLU twice, widths 512/256/64 at strides 8/4/2, a 1x1 conv to the logits and
  a final x2 bilinear upsampling); ``model/projector.py`` (``projectors``: conv-BN-ReLU 1->8,
  max-pool, conv-BN-ReLU 8->16, max-pool, 1x1 conv 16->16, i.e. 1/4 resolution;
  ``classifier``: 1->8->16->32 with three max-pools and a 1x1 conv 32->32, i.e. 1/8
  resolution). Both heads take the *prediction logits* of a network as input: preUnet gives
  one logit channel, so the heads read one channel (``input_nc=1`` / ``inp_dim=1``).

Head input (:func:`head_input`): with K = 2 classes the network's two logits ``z0, z1`` carry
the paper's single foreground logit as ``z1 - z0`` (``softmax(z)[1] = sigmoid(z1 - z0)``), so the
heads read that one channel, as in the code. With K > 2 (our generalisation; the paper and code
are binary) they read the K logit channels.

Departures (see also ``method.py``):

* Encoder: timm ``efficientnet_lite0`` through :class:`ssl_bench.backbones.CNNEncoder`
  (maps at strides 2/4/8/16, the same levels preUnet reads from Res2Net: stem, layer1-3), with
  the offline ImageNet weights when ``imagenet=True`` (the paper's encoder is ImageNet
  pretrained; Res2Net-101 weights are not available offline and the default CNN keeps
  leaderboard rows comparable).
* Decoder widths are a parameter (the paper profile uses preUnet's 512/256/64).
* K > 2 classes: the heads take the K logit channels (the code has no multi-class case).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.api import Encoder
from ssl_bench.backbones import CNNEncoder


class ConvBlock(nn.Sequential):
    """Two conv3x3-BN-LeakyReLU layers (preUnet's ``CONV_Block``)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, mid_ch, 3, padding=1), nn.BatchNorm2d(mid_ch), nn.LeakyReLU(),
            nn.Conv2d(mid_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.LeakyReLU(),
        )


class UNetDecoder(nn.Module):
    """Coarsest map -> (upsample x2, conv block, concat skip, conv block) per level -> logits.

    ``in_channels``/``strides`` are the encoder's levels, finest first; ``widths`` are the decoder
    widths at every level but the coarsest, finest first (e.g. strides 2/4/8 for a 4-level
    encoder). The logits are upsampled bilinearly to the input size."""

    def __init__(self, in_channels: Sequence[int], widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        if len(widths) != len(in_channels) - 1:
            raise ValueError(f"need {len(in_channels) - 1} decoder widths, got {len(widths)}")
        self.up_blocks = nn.ModuleList()
        self.merge_blocks = nn.ModuleList()
        below = in_channels[-1]
        for skip_ch, width in zip(reversed(in_channels[:-1]), reversed(list(widths))):
            self.up_blocks.append(ConvBlock(below, width, width))
            self.merge_blocks.append(ConvBlock(skip_ch + width, width, width))
            below = width
        self.final = nn.Conv2d(below, num_classes, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        x = features[-1]
        for up, merge, skip in zip(self.up_blocks, self.merge_blocks, reversed(features[:-1])):
            x = up(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            x = merge(torch.cat([skip, x], dim=1))
        return F.interpolate(self.final(x), size=out_size, mode="bilinear", align_corners=False)


class SegNet(nn.Module):
    """One MMS segmentation network: images in [0, 1] (B, 3, H, W) -> logits (B, K, H, W)."""

    def __init__(self, num_classes: int, backbone: str, imagenet: bool,
                 decoder_widths: Sequence[int]) -> None:
        super().__init__()
        self.encoder = CNNEncoder(backbone, imagenet=imagenet, out_indices=(0, 1, 2, 3))
        self.decoder = UNetDecoder(self.encoder.channels, decoder_widths, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x), out_size=(x.shape[-2], x.shape[-1]))


class _ConvBNReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch),
                         nn.ReLU(inplace=True))


class PredictionHead(nn.Module):
    """conv-BN-ReLU stages, each followed by a 2x2 max-pool, then a 1x1 conv.

    ``widths=(8, 16)`` is the MMS projector (1/4 resolution, 16 channels);
    ``widths=(8, 16, 32)`` is the MMS classifier (1/8 resolution, 32 channels)."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            stages += [_ConvBNReLU(prev, width), nn.MaxPool2d(2, 2)]
            prev = width
        self.stages = nn.Sequential(*stages)
        self.final = nn.Conv2d(prev, prev, kernel_size=1)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.final(self.stages(logits))


def head_channels(num_classes: int) -> int:
    """Input channels of the projector and classifier heads: 1 for K = 2, else K."""
    return 1 if num_classes == 2 else num_classes


def head_input(logits: torch.Tensor) -> torch.Tensor:
    """What the heads read from (B, K, H, W) logits: for K = 2 the foreground logit
    ``z1 - z0`` (B, 1, H, W), the code's single-channel prediction; for K > 2 the logits."""
    if logits.shape[1] == 2:
        return logits[:, 1:2] - logits[:, 0:1]
    return logits


class MMSModel(nn.Module):
    """Everything MMS trains or keeps: two segmentation networks and their heads."""

    def __init__(self, num_classes: int, backbone: str, imagenet: bool,
                 decoder_widths: Sequence[int], head_width: int = 8) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net1 = SegNet(num_classes, backbone, imagenet, decoder_widths)
        self.net2 = SegNet(num_classes, backbone, imagenet, decoder_widths)
        proj = (head_width, 2 * head_width)
        cls = (head_width, 2 * head_width, 4 * head_width)
        heads_in = head_channels(num_classes)
        self.projector1 = PredictionHead(heads_in, proj)
        self.projector2 = PredictionHead(heads_in, proj)
        self.classifier1 = PredictionHead(heads_in, cls)
        self.classifier2 = PredictionHead(heads_in, cls)

    @property
    def nets(self) -> tuple[SegNet, SegNet]:
        return self.net1, self.net2

    def heads(self) -> list[nn.Module]:
        return [self.projector1, self.projector2, self.classifier1, self.classifier2]

    def encoder(self) -> Encoder:
        return self.net1.encoder


class SegPredictor(nn.Module):
    """The predictor handed to the harness: one segmentation network, run at ``input_hw``.

    Inputs of any size are resized (bilinear) to ``input_hw`` (the training size, e.g. the
    paper's 288x512) and the logits are resized back to the input size; with
    ``input_hw=None`` the network runs at the input size."""

    def __init__(self, net: SegNet, input_hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.net = net
        self.input_hw = tuple(input_hw) if input_hw is not None else None
        #: read by the harness (``Method.fit_segmentation``): merged into the record details
        self.details: dict[str, Any] = {}
        #: read by the harness: further predictors it scores on val and test beside this one
        self.extra_predictors: dict[str, nn.Module] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        if self.input_hw is None or self.input_hw == size:
            return self.net(x)
        logits = self.net(F.interpolate(x, size=self.input_hw, mode="bilinear",
                                        align_corners=False))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


__all__ = ["ConvBlock", "UNetDecoder", "SegNet", "PredictionHead", "MMSModel", "SegPredictor",
           "head_channels", "head_input"]
