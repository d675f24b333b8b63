"""Laparoflow-SSL: a ViT trained with an optical-flow-weighted pixel InfoNCE between two views.

Paper: Karel Moens, Jonas De Vylder, Matthew B. Blaschko, Tinne Tuytelaars, "Laparoflow-SSL:
Image Analysis From a Tiny Dataset Through Self-Supervised Transformers Leveraging Unlabeled
Surgical Video", MIDL 2024, PMLR 250:986-1010, https://proceedings.mlr.press/v250/moens24a.html.
Official code: none found. Only the abstract was
available to us; everything below that the abstract does not state is a choice.

From the abstract: a ViT backbone; an InfoNCE loss between the pixel representations of two
differently photometrically and geometrically transformed views; each contrasted pixel pair is
weighted by the difference of the two pixels' optical flows, so pixels that move together get
similar vectors; pretraining on unlabelled surgical video; downstream simple heads for
segmentation (m2caiSeg -> CholecSeg8k) and instrument keypoints.

Pipeline here: frame ``t`` and its neighbour ``t + pair_gap`` of a pool sequence (loaded at
``config.fps``) -> Farneback flow ``t -> t + gap`` (cached on disk, ``flow.py``) -> two tracked
views of frame ``t`` (``views.py``) -> ViT patch tokens of each view, bilinearly sampled at
``points_per_image`` common source locations -> per-pixel MLP projector -> flow-weighted pixel
InfoNCE (``loss.py``). Downstream encoder: the ViT (one map at stride ``patch_size``).

Choices (not stated in the abstract):
* Flow estimator: OpenCV Farneback (classical; learned estimators need weights we cannot
  fetch offline), OpenCV tutorial parameters with ``winsize`` scaled to the image size
  (``flow_winsize``); flow from frame ``t`` to ``t + pair_gap`` at ``config.fps`` (5 fps, gap 1:
  0.2 s apart); flow is computed on the pool's frames (``image_size``) and measured in units of
  the frame side.
* Which frame is viewed: both views come from frame ``t`` (the flow only supplies weights).
* Weight: ``w_ij = exp(-||f_i - f_j||^2 / sigma^2)``, ``sigma = flow_sigma`` (fraction of the
  frame side). Use of the weight: soft InfoNCE targets = identity + ``flow_mass`` spread over
  pixels in proportion to ``w_ij - min_k w_ik`` (``loss.py``); equal weights give plain
  pixel InfoNCE.
* Pixels: ``points_per_image`` uniform random source points in the overlap of the two crops
  (not every pixel), features sampled bilinearly from the patch-token map (patch embeddings
  "upsampled" by ``grid_sample``); negatives are the other sampled points of the same image.
* Symmetric loss (1 -> 2 and 2 -> 1), both branches receive gradients (SimCLR-style, no momentum
  encoder or predictor); projector = lightly's SimCLRProjectionHead (2 layers, BatchNorm) on
  each sampled pixel; temperature 0.2 (the DenseCL value).
* Augmentations: RandomResizedCrop (scale 0.2-1, torchvision ratio range) + horizontal flip as
  the geometric part; colour jitter 0.4/0.4/0.4/0.1 (p 0.8), grayscale (p 0.2), blur (p 0.5)
  as the photometric part (the SimCLR/MoCo v2 recipe); no rotation.
* ViT: ``vit-small`` patch 16 at 224 px for the paper profile (the abstract says only
  "transformers"); optimiser AdamW, lr 5e-4, weight decay 0.04, 10 warm-up epochs, 100 epochs,
  batch 64 (DINO-like ViT-S settings, Caron et al. 2021; the paper's values were not retrieved).
* Domains: surgical (the paper's) and CT, where the "flow" is between adjacent axial slices
  (anatomy that continues across slices moves coherently); single images (clip units shorter
  than ``pair_gap + 1`` frames) pair with themselves (zero flow: plain pixel InfoNCE).

On CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`) the views drop
colour jitter, grayscale and horizontal flips.
Departures: classical Farneback flow instead of whatever estimator the paper used (if it was a
learned one); the paper's keypoint head and its m2caiSeg/RARP-45 protocols are not part of this
method (the harness's tasks evaluate it).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import ViTEncoder, vit_encoder
from ssl_bench_laparoflow.flow import FarnebackParams, FlowCache
from ssl_bench_laparoflow.loss import flow_pair_weights, flow_weighted_pixel_infonce
from ssl_bench_laparoflow.meta import LAPAROFLOW_SSL_META
from ssl_bench_laparoflow.views import FlowPairViews


class LaparoflowConfig(MethodConfig):
    vit_size: str = "vit-micro"
    patch_size: int = 8
    proj_hidden_dim: int = 256
    proj_dim: int = 64
    temperature: float = 0.2
    points_per_image: int = 64
    flow_sigma: float = 0.02  # fraction of the frame side
    flow_mass: float = 0.5  # target mass spread over pixels that move with the anchor
    pair_gap: int = 1  # frames between the pair at config.fps
    flow_winsize: int = 9
    crop_scale_min: float = 0.2
    fps: float = 5.0


class LaparoflowModel(nn.Module):
    """ViT backbone + per-pixel projector (everything trained and checkpointed)."""

    def __init__(self, backbone: ViTEncoder, proj_hidden_dim: int, proj_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = SimCLRProjectionHead(backbone.embed_dim, proj_hidden_dim, proj_dim)

    def pixel_embeddings(self, images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) and ``grid_sample`` points (B, N, 2) -> L2-normalised projected
        embeddings (B, N, D) of the patch-token map sampled bilinearly at those points."""
        fmap = self.backbone(images)[0]
        sampled = F.grid_sample(fmap, grid.unsqueeze(2).to(fmap.dtype), mode="bilinear",
                                align_corners=False)  # (B, C, N, 1)
        feats = sampled.squeeze(3).transpose(1, 2)  # (B, N, C)
        b, n, c = feats.shape
        z = self.projector(feats.reshape(b * n, c)).reshape(b, n, -1)
        return F.normalize(z, dim=-1)


class LaparoflowSSL(Method):
    meta = LAPAROFLOW_SSL_META
    Config = LaparoflowConfig
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 2, "batch_size": 4, "image_size": 32,
                  "vit_size": "vit-micro", "patch_size": 8, "proj_hidden_dim": 32,
                  "proj_dim": 16, "points_per_image": 16, "flow_winsize": 5, "fps": 5.0},
        "cpu": {"epochs": 1, "max_steps": 30, "batch_size": 32, "image_size": 64,
                "vit_size": "vit-micro", "patch_size": 8, "proj_hidden_dim": 256,
                "proj_dim": 64, "points_per_image": 32, "flow_winsize": 9, "fps": 5.0,
                "lr": 1e-3, "weight_decay": 0.04, "optimizer": "adamw"},
        # paper values not retrieved: ViT-S/16 at 224 with DINO-like optimisation (see Choices)
        "paper": {"epochs": 100, "batch_size": 64, "image_size": 224, "vit_size": "vit-small",
                  "patch_size": 16, "proj_hidden_dim": 2048, "proj_dim": 128,
                  "points_per_image": 256, "flow_winsize": 15, "fps": 5.0, "lr": 5e-4,
                  "weight_decay": 0.04, "optimizer": "adamw", "warmup_epochs": 10.0,
                  "num_workers": 8},
    }

    config: LaparoflowConfig

    def build(self) -> nn.Module:
        cfg = self.config
        backbone = vit_encoder(cfg.vit_size, img_size=cfg.image_size, patch_size=cfg.patch_size)
        return LaparoflowModel(backbone, cfg.proj_hidden_dim, cfg.proj_dim)

    def flow_cache(self) -> FlowCache:
        return FlowCache(self.context.cache_dir / "flow",
                         FarnebackParams(winsize=self.config.flow_winsize))

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        cfg = self.config
        return FlowPairViews(pool, cfg.image_size, self.flow_cache(), gap=cfg.pair_gap,
                             points=cfg.points_per_image, scale=(cfg.crop_scale_min, 1.0))

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        assert isinstance(model, LaparoflowModel)
        cfg = self.config
        device = next(model.parameters()).device
        z1 = model.pixel_embeddings(batch["view1"].to(device), batch["grid1"].to(device))
        z2 = model.pixel_embeddings(batch["view2"].to(device), batch["grid2"].to(device))
        weights = flow_pair_weights(batch["flow"].to(device), cfg.flow_sigma)
        loss = flow_weighted_pixel_infonce(z1, z2, weights, cfg.temperature, cfg.flow_mass)
        n = weights.shape[-1]
        off_diag = (weights.sum(dim=(1, 2)) - n) / max(n * (n - 1), 1)
        return {"loss": loss, "mean_pair_weight": off_diag.mean().detach()}

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, LaparoflowModel)
        return model.backbone
