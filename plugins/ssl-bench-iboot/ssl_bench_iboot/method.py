"""iBoot: a video encoder bootstrapped from a frozen image model.

Paper: Fatemeh Saleh, Fuwen Tan, Adrian Bulat, Georgios Tzimiropoulos, Brais Martinez,
"iBoot: Image-bootstrapped Self-Supervised Video Representation Learning", arXiv 2206.08339,
2022 (Samsung AI Cambridge). No official code is known, and only two descriptions were
available to us:

* [A] the abstract: a strong image model, pre-trained with self- or language supervision, is
  used inside a video SSL framework; the typical video SSL design and objective are changed so
  that the video encoder *subsumes* the image model's semantic content; it learns in fewer
  epochs and with a smaller batch.
* [S] a secondary description of the paper (quoted in the project's audit): iBoot is
  "BYOL without EMA": the BYOL target network is replaced by the frozen image model, the online
  network is a video (3D CNN) encoder, and a linear mapping head maps its features to the
  image model's space.

What this module trains by default, and which description each part follows:

* Two augmented views of the same clip (``clip_length`` consecutive frames; one set of
  augmentation parameters per view, shared by its frames; ``max_gap`` 0): BYOL's two views [S].
* Online network = the student video encoder; target = the frozen image teacher applied to
  every frame of the *other* view (``teacher_view="other-view"``), so the student predicts the
  teacher's embedding of a differently augmented copy of the same frame: BYOL's cross-view
  prediction with the EMA target replaced by the image model [S]. No EMA network at all [S].
* Mapping head: one linear layer from the student's feature to the teacher's embedding
  (``mapping_head="linear"``) [S].
* Loss: ``L_img = mean_t (2 - 2 cos(head(h_t(view 1)), teacher(x_t(view 2))))``, symmetrised
  over the two views (BYOL's loss and symmetrisation, Grill et al., NeurIPS 2020, arXiv
  2006.07733; the loss form is our reading of [S]).

Choices where neither description says (ours):

* Student: ``CNNEncoder(efficientnet_lite0)`` per frame (random init, so rows compare with the
  other CNN methods) + :class:`CausalTemporalConv` (residual causal temporal convolutions, zero
  initialised), not a 3D CNN [S]: a causal module so that phase recognition uses only past
  frames, and the per-frame CNN keeps spatial maps comparable with the other methods.
* Prediction per frame: at every frame t the student's causal clip feature ``h_t`` predicts the
  teacher's embedding of frame t (not one clip-level vector against one frame).
* Teacher: the offline ImageNet EfficientNet-Lite0 (supervised; [A] names self- or
  language-supervised models, e.g. DINO/CLIP, unavailable offline) or a user file
  (``teacher_weights``); frozen, eval mode. Its target is the image model's representation,
  the classifier's pooled penultimate feature (1280-d for Lite0: ``conv_head`` + ``bn2`` +
  ReLU6, averaged; ``teacher.py``), as DINO's or CLIP's embedding is the output of the whole
  image model rather than of an inner stage.
* Budgets: smoke/cpu tiny; paper profile = 224 px, 8-frame clips, batch 32 clips, 20 epochs
  (following [A]: few epochs, small batch), AdamW lr 1e-3.
* Metadata: provides only frame features (per-frame maps are the frame CNN's, without the
  temporal context, so segmentation/organ tasks are declared n/a); surgical video only.

Project addition (not in [A] or [S]; off by default): ``clip_byol_addition=True`` adds
version 1's clip-level BYOL between the two clips (online projector + predictor on the
time-averaged clip feature vs an EMA target encoder + projector, ``2 - 2 cos``, symmetrised,
EMA momentum cosine from ``ema_momentum`` to 1), weighted by ``clip_byol_weight``. Version 1 =
``clip_byol_addition=True, teacher_view="same-view"`` (the teacher sees the student's own
augmented frames, which reduces the image term to per-frame distillation), ``mapping_head="mlp"``
(a BYOL MLP predictor), ``max_gap=8`` (the second clip starts up to 8 frames away).

Departures: none from a code base (there is none); see the choices above.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import update_momentum
from pydantic import Field, model_validator
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder
from ssl_bench.errors import SSLBenchError
from ssl_bench.transforms import ssl_augment
from ssl_bench_iboot.data import ClipPairs
from ssl_bench_iboot.meta import IBOOT_META
from ssl_bench_iboot.teacher import load_teacher_backbone
from ssl_bench_iboot.video_encoder import CausalTemporalConv, VideoEncoder


class IBootConfig(MethodConfig):
    backbone: str = DEFAULT_CNN  # per-frame student CNN, random init
    teacher_backbone: str = DEFAULT_CNN
    #: local .pth/.pt/.safetensors state dict of timm ``teacher_backbone``; None = offline ImageNet
    teacher_weights: str | None = None
    clip_length: int = Field(4, ge=1)
    clip_step: int = Field(1, ge=1)  # frames between clip frames (at the pool's fps)
    #: max distance in frames between the two clips' starts; 0: two views of the same clip
    max_gap: int = Field(0, ge=0)
    temporal_kernel: int = Field(3, ge=1)
    temporal_layers: int = Field(1, ge=0)
    #: "other-view": the teacher embeds the other augmented view of the same frames (BYOL with
    #: a frozen image target); "same-view": the student's own augmented frames (version 1)
    teacher_view: Literal["other-view", "same-view"] = "other-view"
    #: "linear": one linear layer to the teacher's space; "mlp": a BYOL predictor (version 1)
    mapping_head: Literal["linear", "mlp"] = "linear"
    image_weight: float = 1.0
    #: PROJECT ADDITION, not in iBoot: clip-level BYOL with an EMA target between the two clips
    clip_byol_addition: bool = False
    clip_byol_weight: float = 1.0
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

    @model_validator(mode="after")
    def _other_view_needs_the_same_frames(self) -> "IBootConfig":
        if self.teacher_view == "other-view" and self.max_gap != 0:
            raise ValueError(f"teacher_view 'other-view' needs both views to hold the same "
                             f"frames; set max_gap=0 (now {self.max_gap}) or "
                             f"teacher_view='same-view'")
        return self


def negative_cosine_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's ``2 - 2 cos`` averaged over rows; no gradient reaches ``target``."""
    cos = nn.functional.cosine_similarity(prediction, target.detach(), dim=-1)
    return (2 - 2 * cos).mean()


class IBootModel(nn.Module):
    """Student video encoder, mapping head, frozen teacher and, with the clip-BYOL addition
    only, the BYOL heads and EMA target."""

    def __init__(self, config: IBootConfig) -> None:
        super().__init__()
        frames = CNNEncoder(config.backbone, imagenet=False)
        width = frames.embed_dim
        temporal = CausalTemporalConv(width, config.temporal_kernel, config.temporal_layers)
        self.student = VideoEncoder(frames, temporal)
        self.teacher = load_teacher_backbone(config.teacher_backbone, config.teacher_weights)
        self.image_head: nn.Module = (
            nn.Linear(width, self.teacher.embed_dim) if config.mapping_head == "linear"
            else BYOLPredictionHead(width, config.proj_hidden_dim, self.teacher.embed_dim))
        self.clip_byol = config.clip_byol_addition
        if self.clip_byol:
            self.projector = BYOLProjectionHead(width, config.proj_hidden_dim, config.proj_dim)
            self.predictor = BYOLPredictionHead(config.proj_dim, config.proj_hidden_dim,
                                                config.proj_dim)
            self.target = copy.deepcopy(self.student).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def train(self, mode: bool = True) -> "IBootModel":
        super().train(mode)
        self.teacher.eval()  # frozen image model, fixed BN statistics
        return self


class IBoot(Method):
    meta = IBOOT_META
    Config = IBootConfig
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 3, "batch_size": 4, "image_size": 32,
                  "clip_length": 3, "temporal_layers": 1, "proj_hidden_dim": 64,
                  "proj_dim": 32},
        "cpu": {"epochs": 1, "max_steps": 40, "batch_size": 8, "image_size": 64,
                "clip_length": 4, "temporal_layers": 1, "proj_hidden_dim": 512,
                "proj_dim": 128, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        "paper": {"epochs": 20, "batch_size": 32, "image_size": 224, "clip_length": 8,
                  "temporal_layers": 3, "proj_hidden_dim": 1024,
                  "proj_dim": 256, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4,
                  "num_workers": 8},
    }

    config: IBootConfig

    def build(self) -> IBootModel:
        return IBootModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        c = self.config
        return ClipPairs(pool, c.clip_length, ssl_augment(c.image_size, scale=c.crop_scale,
                                                          policy=pool.augment_policy),
                         step=c.clip_step, max_gap=c.max_gap)

    def training_step(
        self, model: nn.Module, batch: Any, progress: float
    ) -> dict[str, torch.Tensor]:
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
        if c.teacher_view == "other-view":
            targets = targets[::-1]  # view 1 predicts the teacher on view 2, and vice versa
        view_losses = [negative_cosine_loss(model.image_head(h.flatten(0, 1)), t)
                       for h, t in zip(features, targets)]
        image_loss = (view_losses[0] + view_losses[1]) / 2
        out = {"image": image_loss.detach()}
        loss = c.image_weight * image_loss
        if model.clip_byol:  # project addition
            with torch.no_grad():
                ema = [model.target_projector(model.target.clip_features(v).mean(dim=1))
                       for v in views]
            online = [model.predictor(model.projector(h.mean(dim=1))) for h in features]
            clip_loss = (negative_cosine_loss(online[0], ema[1])
                         + negative_cosine_loss(online[1], ema[0])) / 2
            loss = loss + c.clip_byol_weight * clip_loss
            out["clip_byol"] = clip_loss.detach()
        return {"loss": loss, **out}

    def after_step(self, model: nn.Module, progress: float) -> None:
        assert isinstance(model, IBootModel)
        if not model.clip_byol:
            return  # no EMA network
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
