"""The frozen image teacher: the offline ImageNet EfficientNet-Lite0 of ``ssl_bench.backbones``,
a user-supplied local weights file of any timm CNN classifier (read weights-only or as
safetensors), or a MoCo v2 checkpoint.

What the teacher embeds: the official code's MoCo head replaces ResNet-50's ``fc``
(``moco/builder.py``, ``--mlp``), so it reads the classifier's pooled penultimate feature (2048-d
after ``avgpool``). :class:`ssl_bench.backbones.PooledFeatureEncoder` gives the same feature of
any timm classifier,
``forward_head(pre_logits=True)`` with the last linear layer removed: for EfficientNet-Lite0 the
1280-d average of ``conv_head`` + ``bn2`` + ReLU6 on top of the last 320-channel stage (the
offline ImageNet file holds those tensors and they are loaded), for ResNet-50 the 2048-d
average of ``layer4``.

At the smoke profile's 32 px the last map is 1 x 1 and the ReLU6 zeroes almost every pooled
feature, so smoke targets are near zero (smoke checks the plumbing only); at the cpu profile's
64 px about a fifth of the 1280 features are non-zero, at 224 px about two fifths (measured
on the synthetic surgical frames).

MoCo v2 (``teacher_weights_format="moco-v2"``): the paper's footnote 1 names "the released
models trained on ImageNet by MoCo v2" (github.com/facebookresearch/moco, e.g.
``moco_v2_800ep_pretrain.pth.tar``) as its example of a public model. Those checkpoints hold
``{"state_dict": {"module.encoder_q.<torchvision resnet50 name>": ..., "module.encoder_k...",
"module.queue", ...}, "optimizer": ..., "epoch": ..., "arch": ...}``; like the MoCo repository's
``main_lincls.py`` we keep the query encoder without its ``fc`` head. torchvision's ResNet-50
tensor names are timm ``resnet50``'s, so the backbone is ``teacher_backbone="resnet50"``. The
file is read with ``torch.load(weights_only=True)`` (:func:`ssl_bench.backbones.read_weights`),
so a pickle that would run code is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ssl_bench.backbones import (
    DEFAULT_CNN,
    PooledFeatureEncoder,
    frozen_pooled,
    frozen_pooled_classifier,
    read_weights,
    strip_prefixes,
)
from ssl_bench.errors import SSLBenchError

WeightsFormat = Literal["state-dict", "moco-v2"]

#: prefix of the query encoder's tensors in a MoCo v2 checkpoint (after ``module.`` is dropped)
MOCO_QUERY_PREFIX = "encoder_q."


def moco_v2_backbone(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The query encoder of a MoCo v2 state dict, without its ``fc`` projection head, under the
    backbone's own tensor names."""
    out = {key[len(MOCO_QUERY_PREFIX):]: value for key, value in state.items()
           if key.startswith(MOCO_QUERY_PREFIX)
           and not key.startswith(MOCO_QUERY_PREFIX + "fc.")}
    if not out:
        raise SSLBenchError(f"weights {path} hold no MoCo query encoder (no "
                            f"'module.{MOCO_QUERY_PREFIX}*' tensors); give a MoCo v2 checkpoint "
                            "or set teacher_weights_format='state-dict'")
    return out


def load_teacher_backbone(name: str = DEFAULT_CNN, weights: str | None = None,
                          weights_format: WeightsFormat = "state-dict") -> PooledFeatureEncoder:
    """Frozen teacher (eval mode, no gradients) embedding the pooled penultimate feature."""
    if weights_format == "moco-v2":
        if weights is None:
            raise SSLBenchError(
                "teacher_weights_format='moco-v2' needs teacher_weights: the path "
                "of a local MoCo v2 checkpoint (e.g. moco_v2_800ep_pretrain.pth.tar)"
            )
        path = Path(weights).expanduser()
        # only DDP's ``module.`` goes: ``encoder_q.`` must stay to tell the query encoder apart
        raw = strip_prefixes(read_weights(path, "teacher_weights")[0], prefixes=("module.",))
        return frozen_pooled(PooledFeatureEncoder(name), moco_v2_backbone(raw, path), path,
                             "MoCo weights")
    return frozen_pooled_classifier(name, weights)
