"""``bn-adapt`` and ``bn-adapt-random``: batch-norm adaptation controls.

An SSL method that starts from ImageNet weights and trains on the surgical or CT pool changes
two things at once: its weights (by gradient steps on its objective) and its batch-norm
running statistics (re-estimated on the pool's frames by every forward pass in train mode).
The second needs no objective at all, and alone it moves downstream scores by several points
on the synthetic suite. These rows isolate it: the same backbone, the same pool and the same
input pipeline as ``simclr`` (two views per frame: random resized crop, flip, colour jitter,
grayscale and blur; CT pools keep intensities and laterality, :class:`ssl_bench.api.
AugmentPolicy`), the same number of steps, batches and forward passes of the ``cpu``
profile, but no gradient step: every weight of the checkpoint equals the starting weight,
only the BN buffers (``running_mean``, ``running_var``, ``num_batches_tracked``) differ.

* ``bn-adapt``: from the offline ImageNet weights of ``efficientnet_lite0``. An SSL row that
  starts from ImageNet is read against this row: its difference is what the SSL objective
  adds beyond exposure to the domain.
* ``bn-adapt-random``: from random weights (timm's initialisation, seeded by the harness as
  for ``random-init``). Re-estimating BN statistics of random weights moves the frozen
  protocols' scores by 3-9 points on the default benchmarks, up on the surgical frames and
  down on CT, so random-init alone does not say what "nothing learned" scores; this row
  says what it scores once the statistics match the domain.

Method (no paper): BN statistics adaptation as in AdaBN (Li, Wang, Shi, Liu, Hou, "Revisiting
Batch Normalization For Practical Domain Adaptation", ICLR workshop 2017, arXiv:1603.04779),
here with PyTorch's running averages (momentum 0.1) over SimCLR's augmented views rather than
exact population statistics of unaugmented target images, because the SSL rows it controls
for see exactly those views.

Departures: ``paper`` runs one epoch over the pool instead of SimCLR's 100: running
statistics with momentum 0.1 keep almost nothing from more than a few dozen batches back, so
more epochs of forward passes change nothing but the cost.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ssl_bench.api import Encoder, Method, PretrainPool
from ssl_bench.backbones import CNNEncoder, CNNMethodConfig
from ssl_bench.default_plugins.methods.metas import BN_ADAPT_META, BN_ADAPT_RANDOM_META
from ssl_bench.transforms import FrameViews, ssl_augment


class BNAdaptConfig(CNNMethodConfig):
    """SimCLR's view pipeline (:class:`ssl_bench.default_plugins.methods.simclr.
    SimCLRConfig` defaults) and its step budget; no optimiser setting has any effect."""

    min_crop_scale: float = 0.08
    jitter_strength: float = 1.0
    blur_p: float = 0.5


class BNAdapt(Method):
    """ImageNet weights, BN running statistics re-estimated on the pool; no gradient step."""

    meta = BN_ADAPT_META
    Config = BNAdaptConfig
    # the step budgets of simclr's profiles: the same number of BN updates as the SSL rows
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"image_size": 32, "batch_size": 8, "max_steps": 3},
        "cpu": {"image_size": 64, "batch_size": 32, "max_steps": 24},
        "paper": {"image_size": 224, "batch_size": 256, "epochs": 1, "num_workers": 8},
    }

    def build(self) -> nn.Module:
        c = self.config
        assert isinstance(c, BNAdaptConfig)
        return CNNEncoder(c.backbone, imagenet=c.imagenet_init)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        c = self.config
        assert isinstance(c, BNAdaptConfig)
        s = c.jitter_strength
        view = ssl_augment(c.image_size, scale=(c.min_crop_scale, 1.0), jitter=0.8 * s,
                           hue=min(0.2 * s, 0.5), blur_p=c.blur_p, policy=pool.augment_policy)
        return FrameViews(pool, [view, view])

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        """One forward pass per view in train mode, without autograd: the BN layers update
        their running statistics, nothing else changes. The loss is a constant zero leaf
        with no path to any weight, so the optimiser step finds no gradient and leaves
        every parameter as it is (weight decay included: torch's optimisers skip a
        parameter whose ``grad`` is None)."""
        assert isinstance(model, CNNEncoder)
        with torch.no_grad():
            for view in batch:
                model(view)
        return {"loss": torch.zeros((), requires_grad=True)}

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, CNNEncoder)
        return model


class BNAdaptRandom(BNAdapt):
    """Random weights (seeded), BN running statistics re-estimated on the pool."""

    meta = BN_ADAPT_RANDOM_META
    profiles: ClassVar[dict[str, dict[str, Any]]] = {
        name: {**budget, "imagenet_init": False} for name, budget in BNAdapt.profiles.items()}
