"""RepRec: a contrastive CNN plus a transformer that recovers the CNN's masked representations.

Paper: Xiangyi Yan, Junayed Naushad, Shanlin Sun, Kun Han, Hao Tang, Deying Kong, Haoyu Ma,
Chenyu You, Xiaohui Xie, "Representation Recovering for Self-Supervised Pre-training on Medical
Images", IEEE/CVF WACV 2023 (pages 2684-2694 in the publisher record at
https://researchconnect.stonybrook.edu/en/publications/representation-recovering-for-self-supervised-pre-training-on-med/;
other listings give 2685-2695).
Official code: none found. Only the abstract was
available to us; everything it does not state is a choice, listed below.

From the abstract: a hybrid framework; a convolutional encoder is pre-trained contrastively to
provide low-level feature information; a transformer encoder is pre-trained generatively by
recovering masked representations produced by the convolutional encoder (not pixels: the
authors find vanilla MAE mostly recovers coarse semantics); evaluated on three multi-organ
(CT) segmentation datasets with the hybrid feeding a segmentation decoder.

Topology (``topology``): the abstract admits two readings of "recovering masked representations
from the convolutional encoder".

* ``"stacked"`` (default, version 2): the CNN's feature map is cut into tokens, a ratio of the
  tokens is masked, and a transformer that sees the visible CNN tokens recovers the masked ones.
  This is the reading the evidence supports best: the abstract's object of masking is the
  CNN's *representations*, and the same authors' AFTer-UNet (Yan, Tang, Sun, Ma, Kong, Xie,
  "AFTer-UNet: Axial Fusion Transformer UNet for Medical Image Segmentation", WACV 2022) runs
  its transformer on the CNN encoder's feature tokens, between a CNN encoder and decoder.
* ``"parallel"`` (version 1): a ViT beside the CNN sees the image with masked pixel patches and
  predicts the CNN's features at the masked patches.

Pipeline here, per batch of two augmented views of a frame (``ssl_bench.transforms``):
* CNN branch: ``CNNEncoder`` maps of both views -> global average of the stride-32 map ->
  SimCLR projection head -> NT-Xent (lightly ``NTXentLoss``, Chen et al. 2020).
* Recovery targets: view 1's CNN map at the recovery level (the coarsest stride <=
  ``patch_size``), detached (stop-gradient), as tokens normalised per token (``losses.py``).
* Transformer branch, stacked: the same normalised CNN tokens of view 1 (detached, so the CNN
  is shaped by the contrastive loss only) are the transformer's input tokens, embedded by a
  linear layer (a timm ViT with 1x1 "patches" and ``in_chans`` = the CNN width); a
  ``mask_ratio`` of them is dropped (lightly ``random_token_mask``), the transformer encodes the
  visible tokens only (lightly ``MaskedVisionTransformerTIMM``), a light decoder (lightly
  ``MaskedVisionTransformerDecoderTIMM`` with mask tokens) and a linear layer predict every
  token; the loss is the MSE on masked tokens only.
* Transformer branch, parallel: view 1 is patch-embedded (patch ``patch_size``), masked and
  decoded the same way, predicting the CNN's tokens at the patch grid.
* Loss = NT-Xent + ``recovery_weight`` x recovery (recovery only once ``progress >=
  recovery_start``).
* Downstream encoder (``RepRecEncoder``): the CNN's maps at strides 4/8/16/32 with the
  transformer's token map concatenated to the CNN map at the recovery level; stacked: the
  transformer reads that CNN map's (normalised, not detached) tokens unmasked; parallel: the ViT
  reads the image.

Choices (not stated in the abstract):
* CNN: ``efficientnet_lite0`` (the harness's DEFAULT_CNN, random init) so rows compare with the
  other CNN methods; ``cnn`` can name any timm CNN (e.g. ``resnet50``).
* Contrastive loss: SimCLR NT-Xent with in-batch negatives, temperature 0.2, 2-layer projection
  head on the globally pooled coarsest CNN map. Under DDP the negatives come from the global
  batch: lightly's ``gather_distributed=True`` all-gathers the projections of every rank with a
  gradient-preserving all-gather (``lightly.utils.dist.gather``), so the mean of the ranks'
  losses is the one-process loss of the global batch, as SimCLR's own code does across TPU
  replicas; in one process nothing is gathered. The recovery loss needs nothing from other
  ranks (a mean over each sample's masked tokens, the same count per sample).
* Recovered level: the CNN map at stride ``patch_size`` (lite0: 40 channels at stride 8, 112 at
  16), i.e. mid/low-level features; normalised per token over channels (LayerNorm without
  affine, as MAE's ``norm_pix_loss``); stop-gradient on the targets (and, stacked, on the
  transformer's input) so the recovery loss never shapes the CNN (otherwise the CNN could make
  its own targets trivially predictable).
* Which image the transformer branch uses: view 1 (the view whose CNN features are the targets).
* Masking: random token masking, ratio 0.75 (MAE's), class token never masked; the transformer
  encoder sees visible tokens only, the decoder sees mask tokens (MAE's asymmetric design).
* Decoder: MAE-style transformer (paper profile: 512 wide, 8 blocks, 16 heads) + linear layer to
  the CNN channel count; it is discarded downstream.
* Schedule: both objectives trained jointly in one model from step 0 (``recovery_start`` 0);
  the CNN keeps learning contrastively throughout, so the targets drift slowly (like a
  momentum/online target). ``recovery_start`` > 0 gives a staged variant (CNN first).
* Hybrid fusion: concatenation of the transformer map with the CNN map of the same stride;
  ``embed`` (frame features) concatenates the pooled coarsest CNN map and the pooled
  transformer map.
* Paper profile: ViT-B widths (12 blocks, 768 wide; stacked: on the 14 x 14 stride-16 CNN
  tokens of 224 px slices; parallel: ViT-B/16 on pixels), AdamW lr 1.5e-4, weight decay 0.05,
  batch 256, 100 epochs with 10 warm-up epochs (MAE's base-lr recipe, He et al. 2022); the
  paper's values were not retrieved.

On CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`) the views drop
colour jitter, grayscale and horizontal flips.
Departures: 2-D slices/frames instead of whatever volume handling the paper used (the harness is
2-D); CNN defaults to EfficientNet-Lite0 rather than the paper's CNN.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules import (
    MaskedVisionTransformerDecoderTIMM,
    MaskedVisionTransformerTIMM,
    SimCLRProjectionHead,
)
from lightly.models.utils import random_token_mask, set_at_index
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import DEFAULT_CNN, VIT_SIZES, CNNEncoder, ViTEncoder, vit_encoder
from ssl_bench.errors import SSLBenchError
from ssl_bench.transforms import FrameViews, ssl_augment
from ssl_bench_reprec.losses import cnn_patch_targets, masked_recovery_loss, normalised_tokens
from ssl_bench_reprec.meta import REPREC_META


class RepRecConfig(MethodConfig):
    cnn: str = DEFAULT_CNN
    #: "stacked": a transformer recovers the CNN's masked feature tokens; "parallel": a ViT on
    #: masked pixel patches predicts the CNN's features there (version 1)
    topology: Literal["stacked", "parallel"] = "stacked"
    vit_size: str = "vit-micro"
    #: recovery level: the CNN map of the coarsest stride <= patch_size; parallel: ViT patch size
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
    """Index of the CNN level the transformer map joins (and whose features are recovered):
    the coarsest with stride <= patch."""
    levels = [i for i, s in enumerate(strides) if s <= patch_size]
    if not levels:
        raise SSLBenchError(f"RepRec: patch_size {patch_size} is finer than every CNN stride "
                            f"{strides}; use patch_size >= {strides[0]}")
    return levels[-1]


def token_transformer(size: str, grid: int, in_channels: int) -> VisionTransformer:
    """A timm ViT whose "patches" are the positions of a (B, in_channels, grid, grid) CNN map:
    patch size 1, so its patch embedding is a linear embedding of each CNN token."""
    if size not in VIT_SIZES:
        raise SSLBenchError(f"unknown ViT size {size!r}; choose one of {', '.join(VIT_SIZES)}")
    return VisionTransformer(img_size=grid, patch_size=1, in_chans=in_channels, num_classes=0,
                             dynamic_img_size=True, class_token=True, **VIT_SIZES[size])


def token_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, N, C) row-major tokens -> (B, C, h, w) map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)


class RepRecEncoder(Encoder):
    """The hybrid: CNN maps (finest first) with the transformer's token map concatenated to the
    CNN map at ``level``. Subclasses say what the transformer reads."""

    def __init__(self, cnn: CNNEncoder, level: int, transformer_dim: int) -> None:
        channels = list(cnn.channels)
        channels[level] += transformer_dim
        super().__init__(channels, list(cnn.strides))
        self.cnn = cnn
        self.level = level
        self.transformer_dim = transformer_dim

    def transformer_map(self, x: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        """(B, transformer_dim, h, w) map of the transformer."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = list(self.cnn(x))
        tokens = self.transformer_map(x, maps)
        target = maps[self.level]
        if tokens.shape[-2:] != target.shape[-2:]:
            tokens = F.interpolate(tokens, size=target.shape[-2:], mode="bilinear",
                                   align_corners=False)
        maps[self.level] = torch.cat([target, tokens], dim=1)
        return maps

    @property
    def embed_dim(self) -> int:
        return self.cnn.channels[-1] + self.transformer_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        maps = self(x)
        cnn_vec = maps[-1].mean(dim=(2, 3))
        vit_vec = maps[self.level][:, -self.transformer_dim:].mean(dim=(2, 3))
        return torch.cat([cnn_vec, vit_vec], dim=1)


class ParallelRepRecEncoder(RepRecEncoder):
    """Parallel topology: the ViT reads the image."""

    def __init__(self, cnn: CNNEncoder, vit: ViTEncoder) -> None:
        super().__init__(cnn, fuse_level(list(cnn.strides), vit.patch_size), vit.embed_dim)
        self.vit = vit

    def transformer_map(self, x: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        return self.vit(x)[0]


class StackedRepRecEncoder(RepRecEncoder):
    """Stacked topology: the transformer reads the CNN's normalised tokens at ``level``."""

    def __init__(self, cnn: CNNEncoder, transformer: VisionTransformer, level: int) -> None:
        super().__init__(cnn, level, transformer.embed_dim)
        self.transformer = transformer

    def transformer_map(self, x: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        fmap = maps[self.level]
        b, _, h, w = fmap.shape
        inputs = token_map(normalised_tokens(fmap, (h, w)), (h, w))
        out = self.transformer.forward_features(inputs)[:, self.transformer.num_prefix_tokens:]
        return out.transpose(1, 2).reshape(b, -1, h, w)


class RepRecModel(nn.Module):
    """Every trained module: CNN + projector, the transformer (+ lightly's masked view of it),
    decoder. Parallel: ``vit`` is a :class:`ViTEncoder` on pixels; stacked: ``transformer`` is a
    token ViT on the CNN map at ``level``."""

    def __init__(self, cfg: RepRecConfig) -> None:
        super().__init__()
        self.topology = cfg.topology
        self.cnn = CNNEncoder(cfg.cnn, imagenet=False)
        self.projector = SimCLRProjectionHead(self.cnn.channels[-1], cfg.proj_hidden_dim,
                                              cfg.proj_dim)
        self.level = fuse_level(list(self.cnn.strides), cfg.patch_size)
        self.target_channels = self.cnn.channels[self.level]
        if cfg.topology == "parallel":
            self.vit = vit_encoder(cfg.vit_size, img_size=cfg.image_size,
                                   patch_size=cfg.patch_size)
            timm_vit = self.vit.vit
            grid = cfg.image_size // cfg.patch_size
        else:
            grid = cfg.image_size // self.cnn.strides[self.level]
            self.transformer = token_transformer(cfg.vit_size, grid, self.target_channels)
            timm_vit = self.transformer
        self.grid = (grid, grid)
        # shares (and MAE-initialises) the timm ViT above
        self.masked_vit = MaskedVisionTransformerTIMM(vit=timm_vit)
        self.decoder_embed = nn.Linear(timm_vit.embed_dim, cfg.decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=grid * grid, embed_dim=cfg.decoder_dim, depth=cfg.decoder_depth,
            num_heads=cfg.decoder_heads,
        )
        self.predictor = nn.Linear(cfg.decoder_dim, self.target_channels)

    def transformer_input(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """What the masked transformer reads: the normalised images (parallel) or the target
        tokens (B, N, C) as a (B, C, h, w) map (stacked)."""
        if self.topology == "parallel":
            return self.vit.normalise(images)
        return token_map(targets, self.grid)

    def recover(self, inputs: torch.Tensor, mask_ratio: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked forward of the transformer branch on ``transformer_input``.

        Returns predictions (B, N, C_target) at every token and the (B, N) bool mask (True:
        masked, hidden from the transformer encoder)."""
        b = inputs.shape[0]
        n = self.masked_vit.sequence_length  # tokens + class token
        idx_keep, idx_mask = random_token_mask((b, n), mask_ratio, device=inputs.device)
        encoded = self.masked_vit.encode(inputs, idx_keep=idx_keep)
        embedded = self.decoder_embed(encoded)
        full = embedded.new_zeros(b, n, embedded.shape[-1])
        full = set_at_index(full, idx_keep, embedded)
        decoded = self.decoder(full, idx_mask=idx_mask)
        prefix = self.masked_vit.vit.num_prefix_tokens
        pred = self.predictor(decoded[:, prefix:])
        mask = torch.zeros(b, n, dtype=torch.bool, device=inputs.device)
        mask.scatter_(1, idx_mask, True)
        return pred, mask[:, prefix:]


class RepRec(Method):
    meta = REPREC_META
    Config = RepRecConfig
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 2, "batch_size": 4, "image_size": 32,
                  "vit_size": "vit-micro", "patch_size": 8, "decoder_dim": 32,
                  "decoder_depth": 1, "decoder_heads": 2, "proj_hidden_dim": 32, "proj_dim": 16},
        "cpu": {"epochs": 1, "max_steps": 20, "batch_size": 32, "image_size": 64,
                "vit_size": "vit-micro", "patch_size": 8, "decoder_dim": 64, "decoder_depth": 1,
                "decoder_heads": 2, "proj_hidden_dim": 256, "proj_dim": 64, "lr": 1e-3,
                "weight_decay": 0.05, "optimizer": "adamw"},
        # paper values not retrieved: ViT-B widths + MAE recipe (see Choices)
        "paper": {"epochs": 100, "batch_size": 256, "image_size": 224, "vit_size": "vit-base",
                  "patch_size": 16, "decoder_dim": 512, "decoder_depth": 8, "decoder_heads": 16,
                  "proj_hidden_dim": 2048, "proj_dim": 128, "lr": 1.5e-4, "weight_decay": 0.05,
                  "optimizer": "adamw", "warmup_epochs": 10.0, "num_workers": 8},
    }

    config: RepRecConfig

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        # global negatives under DDP; no gather in one process
        self.contrastive = NTXentLoss(temperature=self.config.temperature,
                                      gather_distributed=True)

    def build(self) -> nn.Module:
        cfg = self.config
        if cfg.image_size % cfg.patch_size:
            raise SSLBenchError(f"RepRec: image_size {cfg.image_size} is not a multiple of "
                                f"patch_size {cfg.patch_size}; change one of them")
        return RepRecModel(cfg)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        size = self.config.image_size
        view = ssl_augment(size, policy=pool.augment_policy)
        return FrameViews(pool, [view, view])

    def recovery_loss(self, model: RepRecModel, images: torch.Tensor,
                      cnn_maps: list[torch.Tensor]) -> torch.Tensor:
        """Recovery of the (detached) CNN features of ``images`` at masked tokens."""
        cfg = self.config
        target = cnn_patch_targets(cnn_maps, list(model.cnn.strides), cfg.patch_size, model.grid)
        pred, mask = model.recover(model.transformer_input(images, target), cfg.mask_ratio)
        return masked_recovery_loss(pred, target, mask)

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        assert isinstance(model, RepRecModel)
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
        assert isinstance(model, RepRecModel)
        if model.topology == "parallel":
            return ParallelRepRecEncoder(model.cnn, model.vit)
        return StackedRepRecEncoder(model.cnn, model.transformer, model.level)
