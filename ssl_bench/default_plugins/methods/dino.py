"""``dino``: self-distillation with no labels; a student matches a centred, sharpened EMA teacher.

Paper: Mathilde Caron, Hugo Touvron, Ishan Misra, Herve Jegou, Julien Mairal, Piotr
Bojanowski, Armand Joulin, "Emerging Properties in Self-Supervised Vision Transformers", ICCV
2021, arXiv:2104.14294. Official code: https://github.com/facebookresearch/dino
(``main_dino.py``, ``vision_transformer.py`` DINOHead, ``utils.py``).
Built on lightly: ``DINOLoss`` (teacher softmax of centred logits at temperature tau_t, student
log-softmax at tau_s, cross entropy over every teacher/student pair of *different* views, EMA
centre update with momentum 0.9), ``DINOProjectionHead`` (3-layer MLP, l2-normalised
bottleneck, weight-normalised last layer), ``update_momentum``, ``deactivate_requires_grad``.

Facts used (paper Sec. 3 and Appendix, official ``main_dino.py`` defaults):
* teacher = EMA of the student, momentum cosine 0.996 -> 1; teacher gets the global crops
  only, the student every crop; the teacher runs without gradients;
* student temperature 0.1; teacher temperature linear warm-up 0.04 -> 0.07 over the first 30
  epochs (of 100) then constant; centre momentum 0.9;
* head: hidden 2048, bottleneck 256, K = 65536 outputs, last layer weight-normalised with its
  norm fixed (``norm_last_layer``), frozen during the first epoch (``freeze_last_layer=1``),
  no BN in the head (``use_bn_in_head=False``);
* multi-crop: 2 global crops (scale 0.4-1, 224 px) + 8 local crops (scale 0.05-0.4, 96 px);
  augmentations as BYOL: global 1 blur p 1.0, global 2 blur p 0.1 + solarise p 0.2, local
  blur p 0.5;
* the ResNet-50 recipe of the official README: SGD lr 0.03 (x B / 256), weight decay 1e-4,
  global crop scale 0.14-1, local crop scale 0.05-0.14.

Choices kept (multi-crop): the number of local crops is a config value (``num_local_crops``):
0 in ``smoke``, 2 in ``cpu`` (32 px locals for 64 px globals, close to 96/224), 8 in ``paper``.

Departures:
* CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`): the views drop
  colour jitter, grayscale, solarisation and horizontal flips, keeping crop and blur.
* initialisation: the ImageNet weights of ``efficientnet_lite0`` (``imagenet_init=True``, every
  profile), not random init: surgical SSL starts from ImageNet (SelfSupSurg, Ramesh et al.
  2023), and from random init the ``cpu`` budget lowers the score below random init
  (``benchmarks/validity/README.md``);
* backbone ``efficientnet_lite0`` instead of ViT-S/16 or ResNet-50, in every
  profile, so rows are comparable; the paper profile uses the official ResNet-50 recipe
  (SGD, lr 0.03, wd 1e-4, crop scales 0.14-1 / 0.05-0.14);
* no gradient clipping (official: 3.0) and no weight-decay schedule: the harness optimiser
  has a constant weight decay and no clipping hook;
* the first-epoch freeze of the last layer is a gradient hook that zeroes its gradient while
  ``progress < freeze_last_layer_frac``; with the norm of the weight-normalised layer fixed,
  weight decay on its direction has no effect, so the layer is effectively frozen;
* colour jitter saturation 0.4 instead of 0.2 (shared ``ssl_augment``);
* paper profile batch 256 on one device (the paper uses 1024 over 16 GPUs); 100 epochs;
* ``smoke``/``cpu``: smaller heads (K 256 / 4096) and AdamW for a short CPU run.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn
from torchvision.transforms import v2

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import CNNEncoder, CNNMethodConfig
from ssl_bench.default_plugins.methods.byol import ema_momentum
from ssl_bench.default_plugins.methods.metas import DINO_META
from ssl_bench.transforms import FrameViews, solarize, ssl_augment


class DINOConfig(CNNMethodConfig):
    momentum_teacher: float = 0.996
    student_temp: float = 0.1
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    #: fraction of training over which the teacher temperature warms up (30 of 100 epochs)
    warmup_teacher_temp_frac: float = 0.3
    center_momentum: float = 0.9
    head_hidden_dim: int = 2048
    head_bottleneck_dim: int = 256
    head_output_dim: int = 65536
    #: fraction of training during which the last head layer is frozen (1 of 100 epochs)
    freeze_last_layer_frac: float = 0.01
    global_crop_scale: tuple[float, float] = (0.4, 1.0)
    num_local_crops: int = 8
    local_crop_size: int = 96
    local_crop_scale: tuple[float, float] = (0.05, 0.4)


def teacher_temperature(progress: float, config: DINOConfig) -> float:
    """Linear warm-up from ``warmup_teacher_temp`` to ``teacher_temp``, then constant."""
    if config.warmup_teacher_temp_frac <= 0:
        return config.teacher_temp
    ramp = min(max(progress, 0.0) / config.warmup_teacher_temp_frac, 1.0)
    return config.warmup_teacher_temp + ramp * (config.teacher_temp - config.warmup_teacher_temp)


class DINOModel(nn.Module):
    def __init__(self, config: DINOConfig) -> None:
        super().__init__()

        def head() -> DINOProjectionHead:
            with warnings.catch_warnings():  # lightly uses the deprecated nn.utils.weight_norm
                warnings.simplefilter("ignore", FutureWarning)
                return DINOProjectionHead(
                    input_dim=self.student_backbone.embed_dim,
                    hidden_dim=config.head_hidden_dim, bottleneck_dim=config.head_bottleneck_dim,
                    output_dim=config.head_output_dim, batch_norm=False, norm_last_layer=True)

        self.student_backbone = CNNEncoder(config.backbone, imagenet=config.imagenet_init)
        self.student_head = head()
        # the teacher starts as a copy of the student; built fresh and loaded because the
        # weight-normalised last layer cannot be deep-copied
        self.teacher_backbone = CNNEncoder(config.backbone)
        self.teacher_head = head()
        self.teacher_backbone.load_state_dict(self.student_backbone.state_dict())
        self.teacher_head.load_state_dict(self.student_head.state_dict())
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(
            output_dim=config.head_output_dim, warmup_teacher_temp=config.warmup_teacher_temp,
            teacher_temp=config.teacher_temp, student_temp=config.student_temp,
            center_momentum=config.center_momentum)
        self.last_layer_frozen = False
        for param in self.student_head.last_layer.parameters():
            if param.requires_grad:  # weight_v; weight_g (the norm) is fixed
                param.register_hook(self._freeze_hook)

    def _freeze_hook(self, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad) if self.last_layer_frozen else grad

    def student(self, x: torch.Tensor) -> torch.Tensor:
        return self.student_head(self.student_backbone.embed(x))

    @torch.no_grad()
    def teacher(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher_head(self.teacher_backbone.embed(x))


class DINO(Method):
    """DINO (Caron et al., ICCV 2021) on the default CNN."""

    meta = DINO_META
    Config = DINOConfig
    # cpu: max_steps sized to ~25 CPU-seconds of pretraining (step time measured on 1 thread)
    profiles = {
        "smoke": {"image_size": 32, "batch_size": 8, "max_steps": 3, "lr": 1e-3,
                  "head_hidden_dim": 64, "head_bottleneck_dim": 32, "head_output_dim": 256,
                  "num_local_crops": 0, "local_crop_size": 16, "freeze_last_layer_frac": 0.0},
        "cpu": {"image_size": 64, "batch_size": 32, "max_steps": 14, "lr": 1e-3,
                "weight_decay": 1e-4, "head_hidden_dim": 512, "head_bottleneck_dim": 128,
                "head_output_dim": 4096, "num_local_crops": 2, "local_crop_size": 32},
        "paper": {"image_size": 224, "batch_size": 256, "epochs": 100, "num_workers": 8,
                  "optimizer": "sgd",
                  "lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4, "warmup_epochs": 10,
                  "global_crop_scale": (0.14, 1.0), "local_crop_scale": (0.05, 0.14),
                  "num_local_crops": 8, "local_crop_size": 96},
    }

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        self.config: DINOConfig

    def build(self) -> nn.Module:
        return DINOModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        c, policy = self.config, pool.augment_policy
        global1 = ssl_augment(c.image_size, scale=c.global_crop_scale, jitter=0.4, hue=0.1,
                              blur_p=1.0, policy=policy)
        global2 = v2.Compose([ssl_augment(c.image_size, scale=c.global_crop_scale, jitter=0.4,
                                          hue=0.1, blur_p=0.1, policy=policy)]
                             + solarize(policy))
        local = ssl_augment(c.local_crop_size, scale=c.local_crop_scale, jitter=0.4, hue=0.1,
                            blur_p=0.5, policy=policy)
        return FrameViews(pool, [global1, global2] + [local] * c.num_local_crops)

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        assert isinstance(model, DINOModel)
        views = list(batch)
        model.last_layer_frozen = progress < self.config.freeze_last_layer_frac
        teacher_out = [model.teacher(v) for v in views[:2]]
        student_out = [model.student(v) for v in views]
        temp = teacher_temperature(progress, self.config)
        loss = model.criterion(teacher_out, student_out, teacher_temp=temp)
        return {"loss": loss, "teacher_temp": torch.tensor(temp)}

    def after_step(self, model: nn.Module, progress: float) -> None:
        assert isinstance(model, DINOModel)
        m = ema_momentum(progress, self.config.momentum_teacher)
        update_momentum(model.student_backbone, model.teacher_backbone, m=m)
        update_momentum(model.student_head, model.teacher_head, m=m)

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, DINOModel)
        return model.student_backbone
