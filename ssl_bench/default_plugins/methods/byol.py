"""``byol``: Bootstrap Your Own Latent, an online network predicts an EMA target's projection.

Paper: Jean-Bastien Grill, Florian Strub, Florent Altche, Corentin Tallec, Pierre H. Richemond,
Elena Buchatskaya, Carl Doersch, Bernardo Avila Pires, Zhaohan Daniel Guo, Mohammad Gheshlaghi
Azar, Bilal Piot, Koray Kavukcuoglu, Remi Munos, Michal Valko, "Bootstrap Your Own Latent: A
New Approach to Self-Supervised Learning", NeurIPS 2020, arXiv:2006.07733.
Official code: https://github.com/deepmind/deepmind-research/tree/master/byol (JAX).
Built on lightly: ``NegativeCosineSimilarity``, ``BYOLProjectionHead``, ``BYOLPredictionHead``,
``update_momentum``, ``deactivate_requires_grad`` and ``lightly.utils.scheduler.cosine_schedule``.

Facts used (paper Sec. 3 and Appendix B/C):
* online = backbone + projector + predictor, target = backbone + projector (no predictor),
  projector and predictor are MLPs 4096 (BN, ReLU) -> 256;
* loss per pair: ``2 - 2 cos(q_theta(z_theta), z'_xi)`` (Eq. 2) with a stop-gradient on the
  target, symmetrised by swapping the views and summing, ``L + L~`` (Eq. 2-3);
* target EMA ``xi <- tau xi + (1 - tau) theta`` with
  ``tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2``, tau_base 0.996 (Sec. 3.2);
* asymmetric augmentations (Table 6): crop 0.08-1, flip, colour jitter (0.4, 0.4, 0.2, 0.1)
  p 0.8, grayscale p 0.2, blur p 1.0 / 0.1, solarisation p 0.0 / 0.2;
* LARS, lr 0.2 x B / 256, weight decay 1.5e-6, batch 4096, 10 warm-up epochs, cosine, 1000
  epochs (300 in the ablations).

Departures:
* CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`): the views drop
  colour jitter, grayscale, solarisation and horizontal flips, keeping crop and blur.
* backbone ``efficientnet_lite0`` instead of ResNet-50 in every profile, so rows are
  comparable; ``backbone="resnet50"`` (with ``imagenet_init=False``) gives the paper's net;
* initialisation: the ImageNet weights of ``efficientnet_lite0`` (``imagenet_init=True``, every
  profile), not random init: surgical SSL starts from ImageNet (SelfSupSurg, Ramesh et al.
  2023), and from random init the ``cpu`` budget lowers the score below random init
  (``benchmarks/validity/README.md``);
* colour jitter: saturation 0.4 instead of 0.2 (the shared ``ssl_augment`` uses one strength
  for brightness, contrast and saturation); solarisation is applied to the float view after
  blur rather than before it;
* paper profile: SGD with momentum 0.9 instead of LARS, batch 256 (one device) with lr
  0.2 x 256 / 256 = 0.2, 300 epochs (the paper's ablation length);
* BatchNorm under DDP: per device by default; the official code accumulates BN statistics
  across devices (``'cross_replica_axis': 'i'`` in ``bn_config``, ``byol/configs/byol.py``),
  which ``sync_bn=True`` gives on GPUs (every BatchNorm of both networks becomes
  ``torch.nn.SyncBatchNorm``, :func:`ssl_bench.engine.ddp.prepare_model`; torch's
  SyncBatchNorm does not run on CPU, where the option is skipped with a log line). Off by
  default; in one process the option does nothing;
* ``smoke``/``cpu``: narrower MLPs (64 / 1024 hidden) and AdamW for a short CPU run.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn
from torchvision.transforms import v2

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import CNNEncoder, CNNMethodConfig
from ssl_bench.default_plugins.methods.metas import BYOL_META
from ssl_bench.transforms import FrameViews, solarize, ssl_augment

#: resolution of ``progress`` handed to lightly's integer-step cosine schedule
SCHEDULE_STEPS = 10_000


def ema_momentum(progress: float, base: float, final: float = 1.0) -> float:
    """Cosine increase of the EMA momentum from ``base`` (progress 0) to ``final`` (1)
    (BYOL Sec. 3.2; DINO Sec. 3.1)."""
    step = int(round(min(max(progress, 0.0), 1.0) * SCHEDULE_STEPS))
    return cosine_schedule(step, SCHEDULE_STEPS + 1, base, final)


_NEGATIVE_COSINE = NegativeCosineSimilarity()


def byol_loss(online_prediction: torch.Tensor, target_projection: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos`` between prediction and (stop-gradient) target, averaged over the batch
    (BYOL Eq. 2: the squared distance of the l2-normalised vectors)."""
    return 2 + 2 * _NEGATIVE_COSINE(online_prediction, target_projection.detach())


class BYOLConfig(CNNMethodConfig):
    tau_base: float = 0.996
    proj_hidden_dim: int = 4096
    proj_output_dim: int = 256
    #: under DDP on GPUs: BatchNorm statistics over the global batch (official code); off by
    #: default, no effect in one process
    sync_bn: bool = False


class BYOLModel(nn.Module):
    def __init__(self, config: BYOLConfig) -> None:
        super().__init__()
        self.backbone = CNNEncoder(config.backbone, imagenet=config.imagenet_init)
        self.projection_head = BYOLProjectionHead(
            self.backbone.embed_dim, config.proj_hidden_dim, config.proj_output_dim)
        self.prediction_head = BYOLPredictionHead(
            config.proj_output_dim, config.proj_hidden_dim, config.proj_output_dim)
        self.backbone_target = copy.deepcopy(self.backbone)
        self.projection_head_target = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_target)
        deactivate_requires_grad(self.projection_head_target)

    def online(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone.embed(x)))

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_target(self.backbone_target.embed(x))


class BYOL(Method):
    """BYOL (Grill et al., NeurIPS 2020) on the default CNN."""

    meta = BYOL_META
    Config = BYOLConfig
    # cpu: max_steps sized to ~25 CPU-seconds of pretraining (step time measured on 1 thread)
    profiles = {
        "smoke": {"image_size": 32, "batch_size": 8, "max_steps": 3, "lr": 1e-3,
                  "proj_hidden_dim": 64, "proj_output_dim": 32},
        "cpu": {"image_size": 64, "batch_size": 32, "max_steps": 16, "lr": 1e-3,
                "weight_decay": 1.5e-6, "proj_hidden_dim": 1024},
        "paper": {"image_size": 224, "batch_size": 256, "epochs": 300, "num_workers": 8,
                  "optimizer": "sgd",
                  "lr": 0.2, "momentum": 0.9, "weight_decay": 1.5e-6, "warmup_epochs": 10},
    }

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        self.config: BYOLConfig

    def build(self) -> nn.Module:
        return BYOLModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        size, policy = self.config.image_size, pool.augment_policy
        view1 = ssl_augment(size, scale=(0.08, 1.0), jitter=0.4, hue=0.1, blur_p=1.0,
                            policy=policy)
        view2 = v2.Compose([ssl_augment(size, scale=(0.08, 1.0), jitter=0.4, hue=0.1,
                                        blur_p=0.1, policy=policy)]
                           + solarize(policy))
        return FrameViews(pool, [view1, view2])

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        assert isinstance(model, BYOLModel)
        view1, view2 = batch
        loss = (byol_loss(model.online(view1), model.target(view2))
                + byol_loss(model.online(view2), model.target(view1)))
        return {"loss": loss}

    def after_step(self, model: nn.Module, progress: float) -> None:
        assert isinstance(model, BYOLModel)
        tau = ema_momentum(progress, self.config.tau_base)
        update_momentum(model.backbone, model.backbone_target, m=tau)
        update_momentum(model.projection_head, model.projection_head_target, m=tau)

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, BYOLModel)
        return model.backbone
