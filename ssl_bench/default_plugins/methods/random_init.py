"""``random-init``: the randomly initialised backbone, with no pretraining at all.

The lower reference row of every leaderboard: the default CNN (timm ``efficientnet_lite0``,
Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML
2019, arXiv:1905.11946; Lite variant from the TensorFlow TPU repository) with timm's default
initialisation, seeded by the harness before :meth:`RandomInit.build`. Downstream tasks use it
with the benchmark's own protocol (a linear probe on random features, or fine-tuning).

Departures: none (there is no paper recipe; this is the control).
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from ssl_bench.api import Encoder, Method
from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder
from ssl_bench.default_plugins.methods.metas import RANDOM_INIT_META

NO_PRETRAINING_PROFILES = {
    "smoke": {"image_size": 32},
    "cpu": {"image_size": 64},
    "paper": {"image_size": 224},
}


class PlainCNN(Method):
    """The default CNN used as is (no pretraining stage): the shared body of the
    ``random-init``, ``imagenet`` and ``supervised`` rows, which differ in weights and
    protocol only."""

    imagenet: ClassVar[bool] = False
    profiles = NO_PRETRAINING_PROFILES

    def build(self) -> nn.Module:
        return CNNEncoder(DEFAULT_CNN, imagenet=self.imagenet)

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, CNNEncoder)
        return model


class RandomInit(PlainCNN):
    """The default CNN with random weights; no pretraining stage."""

    meta = RANDOM_INIT_META
