"""The frozen image teacher: the offline ImageNet EfficientNet-Lite0 of ``ssl_bench.backbones``,
a user-supplied local weights file of any timm CNN (read weights-only or as safetensors, by
:func:`ssl_bench.backbones.frozen_cnn`), or a MoCo v2 checkpoint.

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
from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder, frozen_cnn, read_weights, strip_prefixes
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


def _frozen_from_state(name: str, state: dict[str, torch.Tensor], path: Path) -> CNNEncoder:
    """A frozen timm ``name`` CNN holding ``state`` (every backbone tensor must be there)."""
    encoder = CNNEncoder(name, imagenet=False)
    target = encoder.body.state_dict()
    needed = [k for k in target if not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in state]
    if missing:
        raise SSLBenchError(f"MoCo weights {path} lack {len(missing)} of {len(needed)} tensors of "
                            f"timm {name} (first: {missing[0]}); set teacher_backbone to the "
                            "checkpoint's architecture (resnet50 for the MoCo v2 release)")
    for key in needed:
        if tuple(state[key].shape) != tuple(target[key].shape):
            raise SSLBenchError(f"MoCo weights {path}: {key} has shape {tuple(state[key].shape)}, "
                                f"timm {name} needs {tuple(target[key].shape)}; set "
                                "teacher_backbone to the checkpoint's architecture")
    encoder.body.load_state_dict({k: state[k] for k in needed}, strict=False)
    encoder.requires_grad_(False)
    return encoder.eval()


def load_teacher_backbone(name: str = DEFAULT_CNN, weights: str | None = None,
                          weights_format: WeightsFormat = "state-dict") -> CNNEncoder:
    """Frozen teacher backbone (eval mode, no gradients)."""
    if weights_format == "moco-v2":
        if weights is None:
            raise SSLBenchError("teacher_weights_format='moco-v2' needs teacher_weights: the path "
                                "of a local MoCo v2 checkpoint (e.g. moco_v2_800ep_pretrain.pth.tar)")
        path = Path(weights).expanduser()
        # only DDP's ``module.`` goes: ``encoder_q.`` must stay to tell the query encoder apart
        raw = strip_prefixes(read_weights(path, "teacher_weights")[0], prefixes=("module.",))
        state = moco_v2_backbone(raw, path)
        return _frozen_from_state(name, state, path)
    return frozen_cnn(name, weights, backbone_option="teacher_backbone",
                      weights_option="teacher_weights")
