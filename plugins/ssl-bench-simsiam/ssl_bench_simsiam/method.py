"""SimSiam: two augmented views, a predictor on one branch and a stop-gradient on the other.

Paper: Xinlei Chen, Kaiming He. Exploring Simple Siamese Representation Learning. CVPR 2021.
https://arxiv.org/abs/2011.10566

Departures from the paper:
* CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`): the views drop
  colour jitter, grayscale and horizontal flips, keeping crop and blur.
- backbone: ssl-bench's default CNN (EfficientNet-Lite0) instead of ResNet-50 so
  rows are comparable with the other methods; the paper profile keeps the paper's batch (512),
  lr (0.05 x batch/256, SGD, momentum 0.9, wd 1e-4) and 100 epochs at 224 px.
- initialisation: the ImageNet weights of the default CNN (``imagenet_init=True``, smoke and
  cpu profiles), not random init, as for the other CNN SSL rows (SelfSupSurg's protocol starts
  surgical SSL from ImageNet; from random init the ``cpu`` budget scores below random init).
  The paper profile's ResNet-50 starts from random init, as in the paper (offline ImageNet
  weights exist only for the default CNN).
- projector: lightly's SimSiamProjectionHead (3 layers) with a 512-d output instead of 2048-d
  on the cpu/smoke profiles (small data); predictor bottleneck keeps the paper's 1:4 ratio.
"""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from torch import nn

from ssl_bench.api import Encoder, Method, PretrainPool
from ssl_bench.backbones import CNNEncoder, CNNMethodConfig
from ssl_bench.transforms import FrameViews, ssl_augment
from ssl_bench_simsiam.meta import SIMSIAM_META


class SimSiamConfig(CNNMethodConfig):
    proj_dim: int = 512
    pred_hidden_dim: int = 128


class SimSiamModel(nn.Module):
    def __init__(self, config: SimSiamConfig) -> None:
        super().__init__()
        self.backbone = CNNEncoder(config.backbone, imagenet=config.imagenet_init)
        dim = self.backbone.embed_dim
        self.projector = SimSiamProjectionHead(dim, config.proj_dim, config.proj_dim)
        self.predictor = SimSiamPredictionHead(config.proj_dim, config.pred_hidden_dim,
                                               config.proj_dim)


class SimSiam(Method):
    meta = SIMSIAM_META
    Config = SimSiamConfig
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 2, "batch_size": 8, "image_size": 32, "lr": 0.05,
                  "optimizer": "sgd", "weight_decay": 1e-4},
        "cpu": {"epochs": 1, "max_steps": 40, "batch_size": 32, "image_size": 64, "lr": 0.05,
                "optimizer": "sgd", "weight_decay": 1e-4},
        "paper": {"epochs": 100, "batch_size": 512, "image_size": 224, "lr": 0.1,
                  "optimizer": "sgd", "weight_decay": 1e-4, "proj_dim": 2048,
                  "pred_hidden_dim": 512, "backbone": "resnet50", "imagenet_init": False},
    }
    config: SimSiamConfig

    def __init__(self, config: SimSiamConfig, context: Any) -> None:
        super().__init__(config, context)
        self.criterion = NegativeCosineSimilarity()

    def build(self) -> nn.Module:
        return SimSiamModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        view = ssl_augment(self.config.image_size, policy=pool.augment_policy)
        return FrameViews(pool, [view, view])

    def training_step(
        self, model: nn.Module, batch: Any, progress: float
    ) -> dict[str, torch.Tensor]:
        assert isinstance(model, SimSiamModel)
        x1, x2 = batch
        z1 = model.projector(model.backbone.embed(x1))
        z2 = model.projector(model.backbone.embed(x2))
        p1, p2 = model.predictor(z1), model.predictor(z2)
        loss = 0.5 * (self.criterion(p1, z2.detach()) + self.criterion(p2, z1.detach()))
        return {"loss": loss}

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, SimSiamModel)
        return model.backbone
