"""The frozen image teacher: the offline ImageNet EfficientNet-Lite0 of ``ssl_bench.backbones``
or a user-supplied local weights file of any timm CNN (read weights-only or as safetensors, by
:func:`ssl_bench.backbones.frozen_cnn`)."""

from __future__ import annotations

from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder, frozen_cnn


def load_teacher_backbone(name: str = DEFAULT_CNN, weights: str | None = None) -> CNNEncoder:
    """Frozen teacher backbone (eval mode, no gradients)."""
    return frozen_cnn(name, weights, backbone_option="teacher_backbone",
                      weights_option="teacher_weights")
