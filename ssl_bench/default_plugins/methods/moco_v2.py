"""``moco-v2``: Momentum Contrast v2, InfoNCE against a queue of momentum-encoded keys.

Papers: Kaiming He, Haoqi Fan, Yuxin Wu, Saining Xie, Ross Girshick, "Momentum Contrast for
Unsupervised Visual Representation Learning", CVPR 2020, arXiv:1911.05722 (MoCo); Xinlei Chen,
Haoqi Fan, Ross Girshick, Kaiming He, "Improved Baselines with Momentum Contrastive Learning",
arXiv:2003.04297, 2020 (MoCo v2). Official code: https://github.com/facebookresearch/moco
(``main_moco.py``, ``moco/builder.py``).
Built on lightly: ``NTXentLoss`` with a memory bank (exactly MoCo's InfoNCE: logits
``[q.k+, q.queue] / T`` with the positive at index 0, then the keys are enqueued),
``MoCoProjectionHead``, ``update_momentum`` and ``deactivate_requires_grad``.

The queue under DDP: the loss is built with ``gather_distributed=True``, so with N > 1 ranks the
keys of every rank are all-gathered (in rank order, without gradient) before they are enqueued,
as the official code's ``_dequeue_and_enqueue`` does with ``concat_all_gather``
(``moco/builder.py``). Every rank's queue then holds the same keys in the same order, the queue
turns over once per K / (global batch) steps as in one process, and each rank scores its own
queries against that shared queue. In one process nothing is gathered.

Facts used (MoCo v2 paper and official code, ``--mlp --moco-t 0.2 --aug-plus --cos``):
* query encoder f_q (backbone + 2-layer MLP head, hidden 2048, ReLU, 128-d output, no BN);
  key encoder f_k = momentum copy, ``theta_k <- m theta_k + (1 - m) theta_q``, m = 0.999;
* queue of K = 65536 normalised keys, initialised with random unit vectors, FIFO;
* temperature 0.2; the loss is asymmetric: one InfoNCE term per pair, queries from the first
  view and keys from the second (``builder.py``), which we follow;
* "aug-plus": random resized crop (0.2-1), colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale
  p 0.2, Gaussian blur p 0.5, horizontal flip (``main_moco.py``);
* SGD lr 0.03, momentum 0.9, weight decay 1e-4, batch 256, 200 epochs, cosine schedule.

Departures:
* CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`): the views drop
  colour jitter, grayscale and horizontal flips, keeping crop and blur.
* backbone ``efficientnet_lite0`` instead of ResNet-50 in every profile, so rows are
  comparable; ``backbone="resnet50"`` (with ``imagenet_init=False``) gives the paper's net;
* initialisation: the ImageNet weights of ``efficientnet_lite0`` (``imagenet_init=True``, every
  profile), not random init: surgical SSL starts from ImageNet (SelfSupSurg, Ramesh et al.
  2023), and from random init the ``cpu`` budget lowers the score below random init
  (``benchmarks/validity/README.md``);
* no shuffling BN: it only matters with per-GPU BN over sub-batches; on one device BN sees the
  whole batch in both encoders; under DDP a rank's query and key encoders both normalise over
  its own sub-batch (no cross-rank shuffle, unlike the official code);
* the key encoder is updated after each optimiser step (``after_step``) rather than at the
  start of the next forward: the same sequence of updates;
* ``smoke``/``cpu``: queue scaled down (16 / 512 keys, so the queue turns over within the run)
  and m 0.99 (the run has tens of steps, so m 0.999 would leave the keys at initialisation);
  AdamW instead of SGD for stability over a few steps.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import CNNEncoder, CNNMethodConfig
from ssl_bench.default_plugins.methods.metas import MOCO_V2_META
from ssl_bench.transforms import FrameViews, ssl_augment


class MoCoV2Config(CNNMethodConfig):
    temperature: float = 0.2
    queue_size: int = 65536
    key_momentum: float = 0.999  # m of the key encoder (``momentum`` is the SGD momentum)
    proj_hidden_dim: int = 2048
    proj_output_dim: int = 128


def moco_infonce(queue_size: int, dim: int, temperature: float) -> NTXentLoss:
    """MoCo's InfoNCE with a FIFO queue of ``queue_size`` keys of ``dim`` dimensions.

    ``loss(q, k)`` normalises both, scores ``q`` against its key and the queue, and (when ``q``
    requires grad) enqueues ``k``; under DDP the keys of every rank, gathered in rank order
    (``gather_distributed``), so the queues of all ranks stay identical. The queue buffers are
    made persistent so that they are part of the checkpoint (lightly registers them as
    non-persistent)."""
    loss = NTXentLoss(temperature=temperature, memory_bank_size=(queue_size, dim),
                      gather_distributed=True)
    bank = loss.memory_bank
    bank.register_buffer("bank", bank.bank, persistent=True)
    bank.register_buffer("bank_ptr", bank.bank_ptr, persistent=True)
    return loss


class MoCoV2Model(nn.Module):
    def __init__(self, config: MoCoV2Config) -> None:
        super().__init__()
        self.backbone = CNNEncoder(config.backbone, imagenet=config.imagenet_init)
        self.projection_head = MoCoProjectionHead(
            input_dim=self.backbone.embed_dim, hidden_dim=config.proj_hidden_dim,
            output_dim=config.proj_output_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = moco_infonce(config.queue_size, config.proj_output_dim,
                                      config.temperature)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone.embed(x))

    @torch.no_grad()
    def key(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum.embed(x))


class MoCoV2(Method):
    """MoCo v2 (Chen et al. 2020) on the default CNN."""

    meta = MOCO_V2_META
    Config = MoCoV2Config
    # cpu: max_steps sized to ~25 CPU-seconds of pretraining (step time measured on 1 thread)
    profiles = {
        "smoke": {"image_size": 32, "batch_size": 8, "max_steps": 3, "lr": 1e-3,
                  "queue_size": 16, "key_momentum": 0.99, "proj_hidden_dim": 64,
                  "proj_output_dim": 32},
        "cpu": {"image_size": 64, "batch_size": 32, "max_steps": 30, "lr": 1e-3,
                "weight_decay": 1e-4, "queue_size": 512, "key_momentum": 0.99,
                "proj_hidden_dim": 512},
        "paper": {"image_size": 224, "batch_size": 256, "epochs": 200, "num_workers": 8,
                  "optimizer": "sgd",
                  "lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4},
    }

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        self.config: MoCoV2Config

    def build(self) -> nn.Module:
        return MoCoV2Model(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        view = ssl_augment(self.config.image_size,  # MoCo v2 "aug-plus"
                           policy=pool.augment_policy)
        return FrameViews(pool, [view, view])

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        assert isinstance(model, MoCoV2Model)
        view_q, view_k = batch
        return {"loss": model.criterion(model.query(view_q), model.key(view_k))}

    def after_step(self, model: nn.Module, progress: float) -> None:
        assert isinstance(model, MoCoV2Model)
        m = self.config.key_momentum
        update_momentum(model.backbone, model.backbone_momentum, m=m)
        update_momentum(model.projection_head, model.projection_head_momentum, m=m)

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, MoCoV2Model)
        return model.backbone
