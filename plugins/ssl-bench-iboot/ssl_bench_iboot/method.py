"""iBoot: a video encoder bootstrapped from a frozen image model.

Paper: Fatemeh Saleh, Fuwen Tan, Adrian Bulat, Georgios Tzimiropoulos, Brais Martinez,
"iBoot: Image-bootstrapped Self-Supervised Video Representation Learning", arXiv 2206.08339,
2022 (Samsung AI Cambridge). No official code is known. From the abstract: a strong image
model is used inside a video SSL framework, the typical video SSL design and objective are
changed so that the video encoder *subsumes* the image model's semantic content, and the
method learns in fewer epochs with a smaller batch.

What this module trains (two clips ``a``, ``b`` of the same unit per item, each augmented
independently):

* image bootstrapping (the iBoot term): at every frame, a predictor on the student's causal
  clip feature regresses the frozen image teacher's embedding of that frame,
  ``L_img = mean_t (2 - 2 cos(pred_img(h_t), teacher(x_t)))`` over both clips;
* video BYOL between the two clips (Grill et al., NeurIPS 2020, arXiv 2006.07733): online
  projector + predictor on the time-averaged clip feature vs an EMA target encoder + projector,
  symmetrised, ``L_vid = 2 - 2 cos``;
* ``loss = image_weight * L_img + video_weight * L_vid``.

Choices (everything the paper leaves open here; "NOT RETRIEVED" in the project's METHODS.md):

* Teacher: the offline ImageNet EfficientNet-Lite0 (supervised; the paper uses self- or
  language-supervised models such as DINO/CLIP, unavailable offline) or a user file
  (``teacher_weights``); frozen, eval mode; its target is the pooled last feature map.
* Student: ``CNNEncoder(efficientnet_lite0)`` per frame (random init, so rows compare with the
  other CNN methods) + :class:`CausalTemporalConv` (residual causal temporal convolutions, zero
  initialised). A causal module so that phase recognition uses only past frames.
* Image term on every frame of both clips, same augmented frames for student and teacher (the
  teacher is fixed, so no collapse is possible through it; augmentation invariance comes from
  the clip-to-clip BYOL term).
* Clip representation for BYOL: the mean over time of the causal per-frame features.
* Weights 1 and 1; BYOL heads from lightly (projection hidden 1024 -> 256 in paper, smaller in
  cpu); EMA momentum cosine from 0.99 to 1 (BYOL uses 0.996; 0.99 suits short budgets).
* Clips: ``clip_length`` consecutive frames of the pool (1 fps by default), the second clip
  starting at most ``max_gap`` frames from the first; same augmentation for every frame of a
  clip (``ssl_bench.transforms.ssl_augment``).
* Budgets: smoke/cpu tiny; paper profile = 224 px, 8-frame clips, batch 32 clips, 20 epochs
  (the paper's point: few epochs, small batch), AdamW lr 1e-3.
* Metadata: provides only frame features (per-frame maps are the frame CNN's, without the
  temporal context, so segmentation/organ tasks are declared n/a); surgical video only.

Departures: none from a code base (there is none); see the choices above.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import update_momentum
from pydantic import Field, model_validator
from ssl_bench.api import Encoder, Method, MethodConfig, MethodMeta, PretrainPool
from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder
from ssl_bench.errors import SSLBenchError
from ssl_bench.transforms import ssl_augment
from torch import nn

from ssl_bench_iboot.data import ClipPairs
from ssl_bench_iboot.teacher import load_teacher_backbone
from ssl_bench_iboot.video_encoder import CausalTemporalConv, VideoEncoder


class IBootConfig(MethodConfig):
    backbone: str = DEFAULT_CNN  # per-frame student CNN, random init
    teacher_backbone: str = DEFAULT_CNN
    #: local .pth/.pt/.safetensors state dict of timm ``teacher_backbone``; None = offline ImageNet
    teacher_weights: str | None = None
    clip_length: int = Field(4, ge=1)
    clip_step: int = Field(1, ge=1)  # frames between clip frames (at the pool's fps)
    max_gap: int = Field(8, ge=0)  # max distance in frames between the two clips' starts
    temporal_kernel: int = Field(3, ge=1)
    temporal_layers: int = Field(1, ge=0)
    image_weight: float = 1.0
    video_weight: float = 1.0
    ema_momentum: float = Field(0.99, ge=0.0, le=1.0)  # start of the cosine schedule to 1
    proj_hidden_dim: int = 1024
    proj_dim: int = 256
    crop_scale: tuple[float, float] = (0.2, 1.0)

    @model_validator(mode="after")
    def _receptive_field_fits_clip(self) -> "IBootConfig":
        field = 1 + self.temporal_layers * (self.temporal_kernel - 1)
        if field > self.clip_length:
            raise ValueError(f"temporal receptive field {field} exceeds clip_length "
                             f"{self.clip_length}; lengthen the clip or shrink the module")
        return self


def negative_cosine_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's ``2 - 2 cos`` averaged over rows; no gradient reaches ``target``."""
    cos = nn.functional.cosine_similarity(prediction, target.detach(), dim=-1)
    return (2 - 2 * cos).mean()


class IBootModel(nn.Module):
    """Student video encoder, heads, EMA target and the frozen teacher."""

    def __init__(self, config: IBootConfig) -> None:
        super().__init__()
        frames = CNNEncoder(config.backbone, imagenet=False)
        width = frames.embed_dim
        temporal = CausalTemporalConv(width, config.temporal_kernel, config.temporal_layers)
        self.student = VideoEncoder(frames, temporal)
        self.projector = BYOLProjectionHead(width, config.proj_hidden_dim, config.proj_dim)
        self.predictor = BYOLPredictionHead(config.proj_dim, config.proj_hidden_dim,
                                            config.proj_dim)
        self.target = copy.deepcopy(self.student).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.teacher = load_teacher_backbone(config.teacher_backbone, config.teacher_weights)
        self.image_predictor = BYOLPredictionHead(width, config.proj_hidden_dim,
                                                  self.teacher.embed_dim)

    def train(self, mode: bool = True) -> "IBootModel":
        super().train(mode)
        self.teacher.eval()  # frozen image model, fixed BN statistics
        return self


class IBoot(Method):
    meta = MethodMeta(
        id="iboot",
        version="1",
        kind="pretrain",
        name="iBoot",
        paper="Saleh, Tan, Bulat, Tzimiropoulos, Martinez. iBoot: Image-bootstrapped "
              "Self-Supervised Video Representation Learning. arXiv:2206.08339, 2022",
        url="https://arxiv.org/abs/2206.08339",
        description="causal video encoder (frame CNN + temporal conv) that regresses a frozen "
                    "ImageNet model's per-frame features, plus BYOL between two clips",
        pretrain_input="clips",
        domains=("surgical",),
        provides=frozenset({"frame-features"}),
        backbone=f"{DEFAULT_CNN}+causal-temporal-conv",
    )
    Config = IBootConfig
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 3, "batch_size": 4, "image_size": 32,
                  "clip_length": 3, "temporal_layers": 1, "proj_hidden_dim": 64,
                  "proj_dim": 32},
        "cpu": {"epochs": 1, "max_steps": 40, "batch_size": 8, "image_size": 64,
                "clip_length": 4, "temporal_layers": 1, "proj_hidden_dim": 512,
                "proj_dim": 128, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        "paper": {"epochs": 20, "batch_size": 32, "image_size": 224, "clip_length": 8,
                  "temporal_layers": 3, "max_gap": 16, "proj_hidden_dim": 1024,
                  "proj_dim": 256, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4,
                  "ema_momentum": 0.99, "num_workers": 8},
    }

    config: IBootConfig

    def build(self) -> IBootModel:
        return IBootModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        c = self.config
        return ClipPairs(pool, c.clip_length, ssl_augment(c.image_size, scale=c.crop_scale),
                         step=c.clip_step, max_gap=c.max_gap)

    def training_step(self, model: nn.Module, batch: Any, progress: float) -> dict[str, torch.Tensor]:
        assert isinstance(model, IBootModel)
        clips = batch["clips"] if isinstance(batch, dict) else batch
        if clips.dim() != 6 or clips.shape[1] != 2:
            raise SSLBenchError(f"iboot expects batches of clip pairs (B, 2, T, 3, H, W), got "
                                f"{tuple(clips.shape)}; use IBoot.pretrain_dataset")
        c = self.config
        views = [clips[:, 0], clips[:, 1]]  # (B, T, 3, H, W) each
        features = [model.student.clip_features(v) for v in views]  # (B, T, D)
        with torch.no_grad():
            targets = [model.teacher.embed(v.flatten(0, 1)) for v in views]  # (B*T, Dt)
            ema = [model.target_projector(model.target.clip_features(v).mean(dim=1))
                   for v in views]
        image_loss = sum(
            negative_cosine_loss(model.image_predictor(h.flatten(0, 1)), t)
            for h, t in zip(features, targets)
        ) / 2
        online = [model.predictor(model.projector(h.mean(dim=1))) for h in features]
        video_loss = (negative_cosine_loss(online[0], ema[1])
                      + negative_cosine_loss(online[1], ema[0])) / 2
        loss = c.image_weight * image_loss + c.video_weight * video_loss
        return {"loss": loss, "image": image_loss.detach(), "video": video_loss.detach()}

    def after_step(self, model: nn.Module, progress: float) -> None:
        assert isinstance(model, IBootModel)
        m = self.momentum(progress)
        update_momentum(model.student, model.target, m)
        update_momentum(model.projector, model.target_projector, m)

    def momentum(self, progress: float) -> float:
        """Cosine schedule from ``ema_momentum`` (progress 0) to 1 (progress 1)."""
        base = self.config.ema_momentum
        return 1 - (1 - base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1) / 2

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, IBootModel)
        return model.student
