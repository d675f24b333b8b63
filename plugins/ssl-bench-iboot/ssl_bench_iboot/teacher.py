"""The frozen image teacher: the offline ImageNet EfficientNet-Lite0 of ``ssl_bench.backbones``
or a user-supplied local weights file of any timm CNN classifier (read weights-only or as
safetensors, :func:`ssl_bench.backbones.read_state_dict`).

The target is the image model's representation, the pooled penultimate feature of the
classifier (:class:`ssl_bench.backbones.PooledFeatureEncoder`: ``forward_head(pre_logits=True)``
with the last linear layer removed): for EfficientNet-Lite0 the 1280-d average of ``conv_head`` +
``bn2`` + ReLU6 on top of the last
320-channel stage (the offline ImageNet file holds those tensors and they are loaded); for a
ResNet the average of ``layer4``.

At the smoke profile's 32 px the last map is 1 x 1 and the ReLU6 zeroes almost every pooled
feature, so smoke targets are near zero (smoke checks the plumbing only); at the cpu profile's
64 px about a fifth of the 1280 features are non-zero, at 224 px about two fifths (measured
on the synthetic surgical frames).
"""

from __future__ import annotations

from ssl_bench.backbones import DEFAULT_CNN, PooledFeatureEncoder, frozen_pooled_classifier


def load_teacher_backbone(name: str = DEFAULT_CNN, weights: str | None = None
                          ) -> PooledFeatureEncoder:
    """Frozen teacher (eval mode, no gradients): the offline ImageNet Lite0 when ``weights`` is
    None, else the tensors of a local file (every tensor up to the pooled feature)."""
    return frozen_pooled_classifier(name, weights)
