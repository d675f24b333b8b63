"""The frozen image teacher (same loader as ssl_bench_distill.teacher; each plugin ships its
own copy so it installs alone): the offline ImageNet EfficientNet-Lite0 of ``ssl_bench.backbones``
or a user-supplied local weights file of any timm CNN.

A weights file is a state dict of the timm model (full classifier or ``features_only``; the
head tensors are ignored), optionally wrapped in ``{"state_dict": ...}`` / ``{"model": ...}``
and with a ``module.`` prefix (DDP). It is read with ``torch.load(weights_only=True)``
(``.pth``/``.pt``/``.bin``) or ``safetensors`` (``.safetensors``); nothing is downloaded.
torchvision's ``resnet50-0676ba61.pth`` loads into timm's
``resnet50``: both use the same tensor names.
"""

from __future__ import annotations

from pathlib import Path

import torch
from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder
from ssl_bench.errors import SSLBenchError

_WRAPPERS = ("state_dict", "model", "state")
_PREFIXES = ("module.", "model.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file (safetensors or a torch pickle read weights-only)."""
    if not path.is_file():
        raise SSLBenchError(f"teacher weights file not found: {path}; set teacher_weights to an "
                            f"existing .pth/.pt/.safetensors file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: object = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors carry several lines: keep the first
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SSLBenchError(f"cannot read teacher weights {path}: {first}; save them with "
                                f"torch.save(model.state_dict(), path) or as .safetensors") from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SSLBenchError(f"teacher weights {path} hold no state dict of tensors; save them with "
                            f"torch.save(model.state_dict(), path)")
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def load_teacher_backbone(name: str = DEFAULT_CNN, weights: str | None = None) -> CNNEncoder:
    """A frozen (``requires_grad=False``, eval mode) :class:`CNNEncoder` carrying the teacher's
    weights: the offline ImageNet Lite0 when ``weights`` is None, else the file's tensors."""
    if weights is None:
        if name != DEFAULT_CNN:
            raise SSLBenchError(f"no offline ImageNet weights for teacher backbone {name!r}; set "
                                f"teacher_weights to a local file of timm {name} weights or use "
                                f"teacher_backbone={DEFAULT_CNN!r}")
        encoder = CNNEncoder(name, imagenet=True)
    else:
        path = Path(weights).expanduser()
        state = read_state_dict(path)
        encoder = CNNEncoder(name, imagenet=False)
        target = encoder.body.state_dict()
        needed = [k for k in target if not k.endswith("num_batches_tracked")]
        missing = [k for k in needed if k not in state]
        if missing:
            raise SSLBenchError(f"teacher weights {path} lack {len(missing)} of {len(needed)} tensors "
                                f"of timm {name} (first: {missing[0]}); give a state dict of timm's "
                                f"{name} or set teacher_backbone to the file's architecture")
        for key in needed:
            if tuple(state[key].shape) != tuple(target[key].shape):
                raise SSLBenchError(f"teacher weights {path}: {key} has shape "
                                    f"{tuple(state[key].shape)}, timm {name} needs "
                                    f"{tuple(target[key].shape)}; set teacher_backbone to the "
                                    f"file's architecture")
        encoder.body.load_state_dict({k: state[k] for k in needed}, strict=False)
    encoder.requires_grad_(False)
    return encoder.eval()
