"""RepRec: a contrastive CNN plus a transformer that recovers the CNN's masked representations.

Paper: Xiangyi Yan, Junayed Naushad, Shanlin Sun, Kun Han, Hao Tang, Deying Kong, Haoyu Ma,
Chenyu You, Xiaohui Xie, "Representation Recovering for Self-Supervised Pre-training on Medical
Images", IEEE/CVF WACV 2023 (pages 2684-2694 in the publisher record at
https://researchconnect.stonybrook.edu/en/publications/representation-recovering-for-self-supervised-pre-training-on-med/ ;
../shared/specs/METHODS.md gives 2685-2695).
Official code: none found (../shared/specs/METHODS.md, section (d)). Only the abstract was
available to us; everything it does not state is a choice, listed below.

From the abstract: a hybrid framework; a convolutional encoder is pre-trained contrastively to
provide low-level feature information; a transformer encoder is pre-trained generatively by
recovering masked representations produced by the convolutional encoder (not pixels: the
authors find vanilla MAE mostly recovers coarse semantics); evaluated on three multi-organ
(CT) segmentation datasets with the hybrid feeding a segmentation decoder.

Pipeline here, per batch of two augmented views of a frame (``ssl_bench.transforms``):
* CNN branch: ``CNNEncoder`` maps of both views -> global average of the stride-32 map ->
  SimCLR projection head -> NT-Xent (lightly ``NTXentLoss``, Chen et al. 2020).
* Transformer branch: view 1 is patch-embedded, a ``mask_ratio`` of the patches is dropped
  (lightly ``random_token_mask``), the ViT encodes the visible patches only (lightly
  ``MaskedVisionTransformerTIMM``), a light decoder (lightly
  ``MaskedVisionTransformerDecoderTIMM`` with mask tokens) and a linear layer predict, at every
  patch, the CNN's feature vector of view 1 at that patch; the loss (``losses.py``) is the MSE
  on masked patches only, against detached (stop-gradient), per-token normalised CNN features.
* Loss = NT-Xent + ``recovery_weight`` x recovery (recovery only once ``progress >=
  recovery_start``).
* Downstream encoder (``RepRecEncoder``): the CNN's maps at strides 4/8/16/32 with the
  transformer's token map concatenated to the CNN map at stride ``patch_size``.

Choices (not stated in the abstract):
* CNN: ``efficientnet_lite0`` (the harness's DEFAULT_CNN, random init) so rows compare with the
  other CNN methods; ``cnn`` can name any timm CNN (e.g. ``resnet50``).
* Contrastive loss: SimCLR NT-Xent with in-batch negatives, temperature 0.2, 2-layer projection
  head on the globally pooled coarsest CNN map.
* Targets: the CNN map at stride ``patch_size`` (lite0: 40 channels at stride 8, 112 at 16),
  i.e. mid/low-level features at the token resolution, average-pooled to the patch grid when the
  sizes differ; normalised per token over channels (LayerNorm without affine, as MAE's
  ``norm_pix_loss``); stop-gradient on the targets so the recovery loss never shapes the CNN
  (the CNN is trained by the contrastive loss only; otherwise the CNN could make its own targets
  trivially predictable).
* Which image the transformer sees: view 1 (the same view whose CNN features are the targets).
* Masking: random patch masking, ratio 0.75 (MAE's), class token never masked; the transformer
  encoder sees visible patches only, the decoder sees mask tokens (MAE's asymmetric design).
* Decoder: MAE-style transformer (paper profile: 512 wide, 8 blocks, 16 heads) + linear layer to
  the CNN channel count; it is discarded downstream.
* Schedule: both objectives trained jointly in one model from step 0 (``recovery_start`` 0);
  the CNN keeps learning contrastively throughout, so the targets drift slowly (like a
  momentum/online target). ``recovery_start`` > 0 gives a staged variant (CNN first).
* Hybrid fusion: concatenation of the transformer map with the CNN map of the same stride;
  ``embed`` (frame features) concatenates the pooled coarsest CNN map and the pooled
  transformer map.
* Paper profile: ViT-B/16 and 224 px slices, AdamW lr 1.5e-4, weight decay 0.05, batch 256,
  100 epochs with 10 warm-up epochs (MAE's base-lr recipe, He et al. 2022); the paper's
  values were not retrieved.

Departures: 2-D slices/frames instead of whatever volume handling the paper used (the harness is
2-D); CNN defaults to EfficientNet-Lite0 rather than the paper's CNN.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules import (
    MaskedVisionTransformerDecoderTIMM,
    MaskedVisionTransformerTIMM,
    SimCLRProjectionHead,
)
from lightly.models.utils import random_token_mask, set_at_index
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, MethodMeta, PretrainPool
from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder, ViTEncoder, vit_encoder
from ssl_bench.errors import SSLBenchError
from ssl_bench.transforms import FrameViews, ssl_augment
from ssl_bench_reprec.losses import cnn_patch_targets, masked_recovery_loss


class RepRecConfig(MethodConfig):
    cnn: str = DEFAULT_CNN
    vit_size: str = "vit-micro"
    patch_size: int = 8
    mask_ratio: float = 0.75
    decoder_dim: int = 64
    decoder_depth: int = 1
    decoder_heads: int = 2
    proj_hidden_dim: int = 256
    proj_dim: int = 64
    temperature: float = 0.2
    recovery_weight: float = 1.0
    recovery_start: float = 0.0  # fraction of training before the recovery loss switches on


def fuse_level(strides: list[int], patch_size: int) -> int:
    """Index of the CNN level the transformer map joins: the coarsest with stride <= patch."""
    levels = [i for i, s in enumerate(strides) if s <= patch_size]
    if not levels:
        raise SSLBenchError(f"RepRec: patch_size {patch_size} is finer than every CNN stride "
                            f"{strides}; use patch_size >= {strides[0]}")
    return levels[-1]


class RepRecEncoder(Encoder):
    """The hybrid: CNN maps (finest first) with the transformer's token map concatenated to the
    CNN map at the patch stride."""

    def __init__(self, cnn: CNNEncoder, vit: ViTEncoder) -> None:
        level = fuse_level(list(cnn.strides), vit.patch_size)
        channels = list(cnn.channels)
        channels[level] += vit.embed_dim
        super().__init__(channels, list(cnn.strides))
        self.cnn = cnn
        self.vit = vit
        self.level = level

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = list(self.cnn(x))
        tokens = self.vit(x)[0]
        target = maps[self.level]
        if tokens.shape[-2:] != target.shape[-2:]:
            tokens = F.interpolate(tokens, size=target.shape[-2:], mode="bilinear",
                                   align_corners=False)
        maps[self.level] = torch.cat([target, tokens], dim=1)
        return maps

    @property
    def embed_dim(self) -> int:
        return self.cnn.channels[-1] + self.vit.embed_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        maps = self(x)
        cnn_vec = maps[-1].mean(dim=(2, 3))
        vit_vec = maps[self.level][:, -self.vit.embed_dim:].mean(dim=(2, 3))
        return torch.cat([cnn_vec, vit_vec], dim=1)


class RepRecModel(nn.Module):
    """Every trained module: CNN + projector, ViT (+ lightly's masked view of it), decoder."""

    def __init__(self, cfg: RepRecConfig) -> None:
        super().__init__()
        self.cnn = CNNEncoder(cfg.cnn, imagenet=False)
        self.projector = SimCLRProjectionHead(self.cnn.channels[-1], cfg.proj_hidden_dim,
                                              cfg.proj_dim)
        self.vit = vit_encoder(cfg.vit_size, img_size=cfg.image_size, patch_size=cfg.patch_size)
        # shares (and MAE-initialises) the timm ViT inside self.vit
        self.masked_vit = MaskedVisionTransformerTIMM(vit=self.vit.vit)
        level = fuse_level(list(self.cnn.strides), cfg.patch_size)
        self.target_channels = self.cnn.channels[level]
        grid = cfg.image_size // cfg.patch_size
        self.decoder_embed = nn.Linear(self.vit.embed_dim, cfg.decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=grid * grid, embed_dim=cfg.decoder_dim, depth=cfg.decoder_depth,
            num_heads=cfg.decoder_heads,
        )
        self.predictor = nn.Linear(cfg.decoder_dim, self.target_channels)

    def recover(self, images: torch.Tensor, mask_ratio: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked forward of the transformer branch.

        Returns predictions (B, N, C_target) at every patch and the (B, N) bool mask (True:
        masked, hidden from the transformer encoder)."""
        b = images.shape[0]
        n = self.masked_vit.sequence_length  # patches + class token
        idx_keep, idx_mask = random_token_mask((b, n), mask_ratio, device=images.device)
        encoded = self.masked_vit.encode(self.vit.normalise(images), idx_keep=idx_keep)
        embedded = self.decoder_embed(encoded)
        full = embedded.new_zeros(b, n, embedded.shape[-1])
        full = set_at_index(full, idx_keep, embedded)
        decoded = self.decoder(full, idx_mask=idx_mask)
        pred = self.predictor(decoded[:, self.vit.vit.num_prefix_tokens:])
        mask = torch.zeros(b, n, dtype=torch.bool, device=images.device)
        mask.scatter_(1, idx_mask, True)
        return pred, mask[:, self.vit.vit.num_prefix_tokens:]


class RepRec(Method):
    meta = MethodMeta(
        id="reprec",
        version="1",
        kind="pretrain",
        name="RepRec",
        paper=("Yan, Naushad, Sun, Han, Tang, Kong, Ma, You, Xie. Representation Recovering for "
               "Self-Supervised Pre-training on Medical Images. WACV 2023, pp. 2684-2694"),
        url=("https://researchconnect.stonybrook.edu/en/publications/"
             "representation-recovering-for-self-supervised-pre-training-on-med/"),
        description=("contrastive CNN (NT-Xent) + ViT recovering the CNN's masked patch "
                     "features; hybrid CNN+ViT encoder"),
        pretrain_input="frames",
        domains=("surgical", "ct"),
        backbone=f"{DEFAULT_CNN}+vit",
    )
    Config = RepRecConfig
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 2, "batch_size": 4, "image_size": 32,
                  "vit_size": "vit-micro", "patch_size": 8, "decoder_dim": 32,
                  "decoder_depth": 1, "decoder_heads": 2, "proj_hidden_dim": 32, "proj_dim": 16},
        "cpu": {"epochs": 1, "max_steps": 20, "batch_size": 32, "image_size": 64,
                "vit_size": "vit-micro", "patch_size": 8, "decoder_dim": 64, "decoder_depth": 1,
                "decoder_heads": 2, "proj_hidden_dim": 256, "proj_dim": 64, "lr": 1e-3,
                "weight_decay": 0.05, "optimizer": "adamw"},
        # paper values not retrieved: ViT-B/16 + MAE recipe (see Choices)
        "paper": {"epochs": 100, "batch_size": 256, "image_size": 224, "vit_size": "vit-base",
                  "patch_size": 16, "decoder_dim": 512, "decoder_depth": 8, "decoder_heads": 16,
                  "proj_hidden_dim": 2048, "proj_dim": 128, "lr": 1.5e-4, "weight_decay": 0.05,
                  "optimizer": "adamw", "warmup_epochs": 10.0, "num_workers": 8},
    }

    config: RepRecConfig

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        self.contrastive = NTXentLoss(temperature=self.config.temperature)

    def build(self) -> nn.Module:
        cfg = self.config
        if cfg.image_size % cfg.patch_size:
            raise SSLBenchError(f"RepRec: image_size {cfg.image_size} is not a multiple of "
                                f"patch_size {cfg.patch_size}; change one of them")
        return RepRecModel(cfg)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        size = self.config.image_size
        return FrameViews(pool, [ssl_augment(size), ssl_augment(size)])

    def recovery_loss(self, model: RepRecModel, images: torch.Tensor,
                      cnn_maps: list[torch.Tensor]) -> torch.Tensor:
        """Recovery of the (detached) CNN features of ``images`` at masked patches."""
        cfg = self.config
        pred, mask = model.recover(images, cfg.mask_ratio)
        grid = (images.shape[-2] // cfg.patch_size, images.shape[-1] // cfg.patch_size)
        target = cnn_patch_targets(cnn_maps, list(model.cnn.strides), cfg.patch_size, grid)
        return masked_recovery_loss(pred, target, mask)

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        device = next(model.parameters()).device
        view1, view2 = (v.to(device) for v in batch)
        b = view1.shape[0]
        # one CNN forward over both views: BatchNorm statistics over 2B images
        maps = model.cnn(torch.cat([view1, view2]))
        z = model.projector(maps[-1].mean(dim=(2, 3)))
        contrastive = self.contrastive(z[:b], z[b:])
        maps1 = [m[:b] for m in maps]
        if progress >= self.config.recovery_start:
            recovery = self.recovery_loss(model, view1, maps1)
        else:
            recovery = contrastive.new_zeros(())
        loss = contrastive + self.config.recovery_weight * recovery
        return {"loss": loss, "contrastive": contrastive.detach(), "recovery": recovery.detach()}

    def encoder(self, model: nn.Module) -> Encoder:
        return RepRecEncoder(model.cnn, model.vit)
