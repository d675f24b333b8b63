"""``simclr``: SimCLR, contrastive learning of two augmented views with the NT-Xent loss.

Paper: Ting Chen, Simon Kornblith, Mohammad Norouzi, Geoffrey Hinton, "A Simple Framework for
Contrastive Learning of Visual Representations", ICML 2020, arXiv:2002.05709.
Official code: https://github.com/google-research/simclr (TensorFlow).
Built on lightly: ``lightly.loss.NTXentLoss`` (normalised-temperature cross entropy over the
2N views, in-batch negatives) and ``lightly.models.modules.SimCLRProjectionHead``.

Negatives under DDP: the loss is built with ``gather_distributed=True``, so with N > 1 ranks each
rank scores its own views against the views of the *global* batch, gathered with lightly's
gradient-preserving all-gather (``lightly.utils.dist.gather``); the mean over ranks is then the
one-process loss of the global batch. This is the paper's loss (Sec. 2.1: the other 2(N - 1)
views of the minibatch of N are the negatives, N being the global batch over all TPU cores) and
the official code's (``add_contrastive_loss`` in ``objective.py`` gathers both views across
replicas with ``tpu_cross_replica_concat``). In one process the option does nothing (no
gather, the same operations).

Facts used (paper, Sec. 2-4, Appendix B):
* two views per image: random resized crop (scale 0.08-1), horizontal flip, colour jitter of
  strength s = 1 (brightness/contrast/saturation 0.8, hue 0.2) with p 0.8, grayscale p 0.2,
  Gaussian blur p 0.5 (Appendix A);
* projection head: 2-layer MLP, hidden width = backbone width, 128-d output (Sec. 4.2, with
  batch norm as in the official code);
* temperature: 0.1 for the large-batch ImageNet runs (Table 5 and the official README's
  ImageNet command; SelfSupSurg, Ramesh et al. 2023, also uses 0.1), 0.5 for small batches
  (Appendix B.9, CIFAR-10 with batches of at most 512; the official README's CIFAR-10
  command also uses 0.5). We use
  0.5 in the small-batch ``smoke``/``cpu`` profiles and 0.1 in ``paper``;
* optimiser: LARS, lr = 0.3 x B / 256, weight decay 1e-6, 10 warm-up epochs, cosine decay,
  batch 4096, 100 epochs for the ablations (up to 800 for the best numbers).

Departures (paper profile):
* CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`): the views drop
  colour jitter, grayscale and horizontal flips, keeping crop and blur.
* backbone: ``efficientnet_lite0`` instead of ResNet-50, so the row is comparable with every
  other CNN method; set ``backbone="resnet50"`` (with ``imagenet_init=False``) for the paper's net;
* initialisation: the ImageNet weights of ``efficientnet_lite0`` (``imagenet_init=True``, every
  profile), not random init as in the paper, which pretrains on ImageNet itself: surgical SSL
  starts from ImageNet (SelfSupSurg, Ramesh et al. 2023: ResNet-50 initialised from ImageNet,
  then SimCLR / MoCo v2 / DINO on Cholec80), and from random init the ``cpu`` budget lowers the
  score below random init (``benchmarks/validity/README.md``);
* optimiser: SGD with momentum 0.9 instead of LARS (the harness has no LARS), lr 0.3 for
  batch 256 (the paper's linear scaling rule applied to 256);
* batch 256 instead of 4096; under DDP, BN statistics are per device (no global BN, which
  the paper uses); the negatives are global (see above).
"""

from __future__ import annotations

from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import CNNEncoder, CNNMethodConfig
from ssl_bench.default_plugins.methods.metas import SIMCLR_META
from ssl_bench.transforms import FrameViews, ssl_augment


class SimCLRConfig(CNNMethodConfig):
    temperature: float = 0.5
    proj_hidden_dim: int | None = None  # None: the backbone width (paper)
    proj_output_dim: int = 128
    min_crop_scale: float = 0.08
    jitter_strength: float = 1.0  # s in the paper: jitter (0.8 s, 0.8 s, 0.8 s, 0.2 s)
    blur_p: float = 0.5


class SimCLRModel(nn.Module):
    """Backbone + projection head; ``forward`` returns the projection z of a batch."""

    def __init__(self, config: SimCLRConfig) -> None:
        super().__init__()
        self.backbone = CNNEncoder(config.backbone, imagenet=config.imagenet_init)
        width = self.backbone.embed_dim
        self.projection_head = SimCLRProjectionHead(
            input_dim=width, hidden_dim=config.proj_hidden_dim or width,
            output_dim=config.proj_output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone.embed(x))


class SimCLR(Method):
    """SimCLR (Chen et al., ICML 2020) on the default CNN."""

    meta = SIMCLR_META
    Config = SimCLRConfig
    # cpu: max_steps sized to ~25 CPU-seconds of pretraining (step time measured on 1 thread)
    profiles = {
        "smoke": {"image_size": 32, "batch_size": 8, "max_steps": 3, "lr": 1e-3,
                  "proj_hidden_dim": 64, "proj_output_dim": 32},
        # small batch: T 0.5 (Appendix B.9); AdamW for a short, stable CPU run
        "cpu": {"image_size": 64, "batch_size": 32, "max_steps": 24, "lr": 1e-3,
                "weight_decay": 1e-6, "proj_hidden_dim": 512, "proj_output_dim": 128},
        "paper": {"image_size": 224, "batch_size": 256, "epochs": 100, "num_workers": 8,
                  "optimizer": "sgd",
                  "lr": 0.3, "momentum": 0.9, "weight_decay": 1e-6, "warmup_epochs": 10,
                  "temperature": 0.1},
    }

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        self.config: SimCLRConfig
        # global negatives under DDP; no gather in one process
        self.criterion = NTXentLoss(temperature=self.config.temperature,
                                    gather_distributed=True)

    def build(self) -> nn.Module:
        return SimCLRModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        c = self.config
        s = c.jitter_strength
        view = ssl_augment(c.image_size, scale=(c.min_crop_scale, 1.0), jitter=0.8 * s,
                           hue=min(0.2 * s, 0.5), blur_p=c.blur_p, policy=pool.augment_policy)
        return FrameViews(pool, [view, view])

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        view0, view1 = batch
        return {"loss": self.criterion(model(view0), model(view1))}

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, SimCLRModel)
        return model.backbone
