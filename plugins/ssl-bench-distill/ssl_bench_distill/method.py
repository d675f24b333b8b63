"""DistillSelf: MoCo v2 on surgical frames, distilled from a frozen semantic-preserving teacher.

Paper: Xinpeng Ding, Ziwei Liu, Xiaomeng Li, "Free Lunch for Surgical Video Understanding by
Distilling Self-Supervisions", MICCAI 2022, arXiv 2205.09292.
Official code: https://github.com/xmed-lab/DistillingSelf (``main_moco.py``,
``moco/builder.py``); facts below are from those files (read, not copied).

Algorithm, in one pretraining run of the harness:

1. Stage 1 (the first ``teacher_fraction`` of the step budget): the teacher = an ImageNet
   backbone (frozen, ``--onlyfc`` in the code) + a MoCo v2 MLP head trained with MoCo on the
   pool (query head by gradient, key head by momentum, its own queue). The head reads the
   backbone's pooled penultimate feature, as the code's MLP replaces ResNet-50's ``fc``
   (``teacher.py``).
2. Stage 2 (the rest): a randomly initialised student trained with MoCo v2; loss =
   InfoNCE + ``distill_weight`` * KL(softmax(teacher logits / T) || softmax(student logits / T))
   over the (1 + K) logits (batchmean). The frozen teacher sees the same two views and keeps its
   own queue, filled in step with the student's, so column j of both logit rows is the same image.
3. Downstream encoder: the student backbone.

Values from the code: T 0.2, K 2048, m 0.999, MLP head (hidden = backbone width, out 128),
``dis_weight`` 5, SGD (momentum 0.9, wd 1e-4), lr 0.01 with cosine decay, batch 128, 200
epochs per stage, ResNet-50 at 224 px, ``--aug-plus`` augmentations, 1 fps Cholec80 frames.

What the code does that the paper does not say (read in ``main_moco.py`` and
``moco/builder.py``):

* Teacher weights: stage 1 (``--imagenet 1``, branch ``args.imagenet==1``; the README's stage-1
  command omits that flag, but the stage-2 teacher path names ``INpre1_onlyfcTrue``) copies the
  *supervised* torchvision ResNet-50 ``resnet50-0676ba61.pth`` into both encoders. The paper's
  footnote 1 instead names "the released models trained on ImageNet by MoCo v2"
  (facebookresearch/moco) as its example of a public model; ``teacher_weights_format="moco-v2"``
  reads such a checkpoint (``teacher.py``).
* Teacher BatchNorm: stage 1 copies only ``named_parameters()`` from the ImageNet file, so the
  BN running buffers are never loaded (they start at mean 0 / var 1), and the frozen teacher
  is never put in eval mode (stage 1 calls ``model.train()``; the stage-2 ``model_t`` is built
  in train mode and never switched), so in both stages it normalises with the statistics of
  each *batch*, and its running buffers drift unused.
* Queues: stage 2 restores the teacher's ``queue`` *and* ``queue_ptr`` from the stage-1
  checkpoint, while the student starts a random queue at pointer 0; both advance by one global
  batch per step. The teacher's pointer is ``(stage-1 steps x 128) mod 2048``, i.e. 1024 when
  the steps per epoch are odd (200 epochs x S steps x 128 = 1024 mod 2048 for odd S); then
  column j of the two queues never holds the same image during the whole of stage 2. With an
  even S the pointer is 0 and the queues are misaligned only until the student's queue is
  full (the first K / B = 16 steps).
* Key head: the stage-2 teacher's forward still calls its momentum update, so its key encoder
  keeps moving towards its (frozen) query encoder.
* Loss: ``loss += loss + w * kd``, i.e. ``2 L_moco + w L_kd``.
* Schedule: two jobs, each ``--cos`` from lr 0.01 (``adjust_learning_rate`` per epoch).

Queues under DDP: each step's keys (stage 1 the teacher's, stage 2 the student's
and the teacher's) are all-gathered from every rank in rank order before the enqueue
(``ssl_bench.engine.ddp.all_gather_concat``, no gradient), as the code's
``_dequeue_and_enqueue`` does with ``concat_all_gather`` (``moco/builder.py``), so every rank's
two queues hold the same keys at the same columns and advance by one global batch per step, as
in one process. The stage-start fill needs no gather: every rank draws the same frames and
views (one seed) through the same (synced) key encoders. In one process nothing is gathered.

Departures (each also where it applies below):
* CT pools (calibrated, lateralized data; :class:`ssl_bench.api.AugmentPolicy`): the views drop
  colour jitter, grayscale and horizontal flips, keeping crop and blur.
* One harness run holds both stages (the paper profile sets ``teacher_fraction`` 0.5 of 400
  epochs, so each stage has 200 epochs) with one optimiser. ``lr_schedule="per-stage"`` (the
  default) gives each stage its own cosine from the peak ``lr`` to 0, as the code's two jobs
  (``schedule.py``; per step instead of per epoch); ``lr_schedule="single"`` keeps the
  harness's one cosine over both stages (version 1), which starts the student at half the peak.
* Teacher backbone: the offline ImageNet EfficientNet-Lite0 (supervised, like the code's
  ResNet-50), or a user file (``teacher_weights``): a timm state dict (give
  ``resnet50-0676ba61.pth`` with ``teacher_backbone="resnet50"`` to match the code) or a MoCo v2
  checkpoint (``teacher_weights_format="moco-v2"``, the paper's footnote). Its embedding is the
  classifier's pooled penultimate feature, as in the code: 1280-d (``conv_head`` + ``bn2`` +
  ReLU6, averaged) for Lite0, 2048-d for ResNet-50.
* The teacher backbone stays in eval mode with the ImageNet BN running statistics of its
  weights file (the code normalises with batch statistics, see above).
* In stage 2 the teacher's key head is frozen (the code lets it drift, see above).
* Both queues restart at stage 2, so column j is the same image in both logit rows (the code
  compares misaligned columns: for the first K / B steps, or the whole stage when the teacher's
  restored pointer is not 0).
* Queue filling (``refill_queues=True``): when a stage starts, its queues are filled at once,
  without gradient, with the keys of ``queue_len`` pool frames (a seeded draw, each frame one
  key view from the pretraining augmentation, encoded in batches of ``batch_size``): in stage 1
  the teacher's key head on the frozen backbone; in stage 2 the student's key encoder and the
  teacher's key head on the *same* views, so the two queues are aligned and the KD term covers
  all 1 + K columns from the first student step. Why: the code starts each queue with random
  unit vectors (the teacher's stage-2 queue with its stage-1 keys, misaligned with the
  student's) and lets training overwrite them, which costs it K / B = 16 of its ~10^5 steps
  per stage; at the ``cpu`` budget (31 student steps of 32 frames < K = 1024) the queue would
  never fill, so InfoNCE would keep random negatives and the KD term would never see the
  1 + K columns. A full queue of real keys is the regime the code trains in for almost all of
  each stage. Sizing K to the stage instead would change the number of negatives (the task
  InfoNCE and KD solve) and still leave the queue partly empty for most of the stage.
  ``refill_queues=False`` keeps the code's random start (stage 1; the student's queue in stage
  2), and then the KD term uses only the columns written since stage 2 began.
* Queue length is scaled to the pool (see :func:`effective_queue_length`); the code uses 2048
  for Cholec80 (~2% of its ~90k train frames at 1 fps).
* No shuffling BN: under DDP a rank's query and key encoders both normalise over its own
  sub-batch (MoCo's cross-GPU shuffle is not done).
* The student is ``efficientnet_lite0`` (random init) in smoke/cpu so leaderboard rows are
  comparable; the paper profile uses ResNet-50 (random init), as the code.
* cpu profile: AdamW lr 1e-3 and m 0.99 for a ~40-step budget (SGD 0.01 and m 0.999 barely move
  a random network in 40 steps).
* ``double_moco_term``: default False: the method as described (L_moco + w L_kd), so
  ``distill_weight`` means what it says; the paper profile sets True, because the published
  numbers came from the code's ``2 L_moco + w L_kd``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import update_momentum
from pydantic import Field
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, PretrainPool
from ssl_bench.backbones import DEFAULT_CNN, CNNEncoder
from ssl_bench.engine.ddp import all_gather_concat
from ssl_bench.errors import SSLBenchError
from ssl_bench.transforms import FrameViews, ssl_augment
from ssl_bench_distill.losses import distillation_kl, info_nce, moco_logits
from ssl_bench_distill.meta import DISTILL_SELF_META
from ssl_bench_distill.schedule import stage_cosine_factor
from ssl_bench_distill.teacher import WeightsFormat, load_teacher_backbone

STAGE_TEACHER = 1
STAGE_STUDENT = 2


class DistillSelfConfig(MethodConfig):
    backbone: str = DEFAULT_CNN  # student, random init
    teacher_backbone: str = DEFAULT_CNN
    #: local .pth/.pt/.safetensors file of ``teacher_backbone`` weights; None = offline ImageNet
    teacher_weights: str | None = None
    #: "state-dict": a timm state dict; "moco-v2": a MoCo v2 checkpoint (query encoder kept)
    teacher_weights_format: WeightsFormat = "state-dict"
    #: "per-stage": each stage its own cosine from ``lr`` (the code's two jobs); "single": the
    #: harness's one cosine over both stages (version 1)
    lr_schedule: Literal["per-stage", "single"] = "per-stage"
    #: fraction of the step budget spent on stage 1 (teacher head)
    teacher_fraction: float = Field(0.3, ge=0.0, lt=1.0)
    temperature: float = 0.2
    queue_size: int = Field(2048, ge=1)  # upper bound; see effective_queue_length
    #: the queue holds at most this fraction of the pool's frames
    queue_pool_fraction: float = Field(0.25, gt=0.0, le=1.0)
    key_momentum: float = 0.999
    distill_weight: float = 5.0
    double_moco_term: bool = False
    #: fill each stage's queues with keys of pool frames when the stage starts (no gradient)
    refill_queues: bool = True
    proj_dim: int = 128
    proj_hidden_dim: int | None = None  # None: the backbone's width (MoCo v2: 2048 for ResNet-50)
    crop_scale: tuple[float, float] = (0.2, 1.0)


def effective_queue_length(pool_frames: int, batch_size: int, queue_size: int,
                           pool_fraction: float) -> int:
    """Queue length for a pool: a multiple of the batch size, at most ``queue_size`` and at most
    ``pool_fraction`` of the pool's frames, at least one batch (and at least 1).

    Why: a key stays in the queue for K / B steps, so a frame meets a stale copy of itself among
    its negatives with probability about K / N per epoch; capping K at N / 4 bounds that at 25%
    on tiny pools while leaving the code's K = 2048 untouched on Cholec80 (N ~ 90k)."""
    cap = min(queue_size, int(pool_frames * pool_fraction))
    length = (cap // batch_size) * batch_size
    return max(length, min(batch_size, queue_size), 1)


class DistillSelfModel(nn.Module):
    """Every module of both stages; ``state_dict()`` is the checkpoint."""

    # buffers (registered in __init__)
    student_queue: torch.Tensor
    teacher_queue: torch.Tensor
    queue_ptr: torch.Tensor
    queue_len: torch.Tensor
    queue_filled: torch.Tensor
    stage: torch.Tensor

    def __init__(self, config: DistillSelfConfig) -> None:
        super().__init__()
        self.student = CNNEncoder(config.backbone, imagenet=False)
        width = self.student.embed_dim
        self.student_head = MoCoProjectionHead(width, config.proj_hidden_dim or width,
                                               config.proj_dim)
        self.student_key = copy.deepcopy(self.student).requires_grad_(False)
        self.student_key_head = copy.deepcopy(self.student_head).requires_grad_(False)

        self.teacher = load_teacher_backbone(config.teacher_backbone, config.teacher_weights,
                                             config.teacher_weights_format)
        t_width = self.teacher.embed_dim
        self.teacher_head = MoCoProjectionHead(t_width, config.proj_hidden_dim or t_width,
                                               config.proj_dim)
        self.teacher_key_head = copy.deepcopy(self.teacher_head).requires_grad_(False)

        def unit_rows(n: int) -> torch.Tensor:
            return nn.functional.normalize(torch.randn(n, config.proj_dim), dim=1)

        self.register_buffer("student_queue", unit_rows(config.queue_size))
        self.register_buffer("teacher_queue", unit_rows(config.queue_size))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        #: effective queue length (0: not set yet; set from the pool at the first step)
        self.register_buffer("queue_len", torch.zeros((), dtype=torch.long))
        #: queue entries written since the current stage began (KD uses only these columns;
        #: the whole queue once it is filled at the stage start)
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("stage", torch.full((), STAGE_TEACHER, dtype=torch.long))

    def train(self, mode: bool = True) -> "DistillSelfModel":
        super().train(mode)
        self.teacher.eval()  # frozen ImageNet statistics
        return self

    @torch.no_grad()
    def enqueue(self, student_keys: torch.Tensor | None, teacher_keys: torch.Tensor) -> None:
        """Write one batch of keys at the shared pointer (both queues stay aligned)."""
        length = int(self.queue_len)
        keys_t = teacher_keys[-length:]
        rows = (int(self.queue_ptr) + torch.arange(len(keys_t), device=keys_t.device)) % length
        # keys computed under autocast are bfloat16/float16; the queues stay float32
        self.teacher_queue[rows] = keys_t.to(self.teacher_queue.dtype)
        if student_keys is not None:
            self.student_queue[rows] = student_keys[-length:].to(self.student_queue.dtype)
        self.queue_ptr.fill_((int(self.queue_ptr) + len(keys_t)) % length)
        self.queue_filled.fill_(min(int(self.queue_filled) + len(keys_t), length))


class DistillSelf(Method):
    meta = DISTILL_SELF_META
    Config = DistillSelfConfig
    profiles = {
        "smoke": {"epochs": 1, "max_steps": 3, "batch_size": 8, "image_size": 32,
                  "queue_size": 64, "teacher_fraction": 0.34, "key_momentum": 0.99},
        # ~5000-frame pool: K = 1024 (cap 1250 -> 39 batches of 32 > 1024); 45 steps, so
        # 14 teacher and 31 student steps: fewer keys than K, hence refill_queues
        "cpu": {"epochs": 1, "max_steps": 45, "batch_size": 32, "image_size": 64,
                "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "queue_size": 1024,
                "teacher_fraction": 0.3, "key_momentum": 0.99},
        # official code: 200 epochs teacher (--onlyfc) + 200 epochs student, SGD lr 0.01
        # momentum 0.9 wd 1e-4 cosine, batch 128, T 0.2, K 2048, m 0.999, w 5, ResNet-50 224 px
        "paper": {"epochs": 400, "teacher_fraction": 0.5, "batch_size": 128, "image_size": 224,
                  "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                  "backbone": "resnet50", "queue_size": 2048, "key_momentum": 0.999,
                  "temperature": 0.2, "distill_weight": 5.0, "double_moco_term": True,
                  "num_workers": 8},
    }

    config: DistillSelfConfig

    def __init__(self, config: MethodConfig, context: Any) -> None:
        super().__init__(config, context)
        self._pool_queue_len: int | None = None
        #: one key view per pool frame, for filling the queues (set by ``pretrain_dataset``)
        self._key_views: FrameViews | None = None

    # -- pretraining --------------------------------------------------------------------
    def build(self) -> DistillSelfModel:
        return DistillSelfModel(self.config)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        c = self.config
        self._pool_queue_len = effective_queue_length(len(pool), c.batch_size, c.queue_size,
                                                      c.queue_pool_fraction)
        augment = ssl_augment(c.image_size, scale=c.crop_scale, policy=pool.augment_policy)
        self._key_views = FrameViews(pool, [augment])
        return FrameViews(pool, [augment, augment])

    def training_step(
        self, model: nn.Module, batch: Any, progress: float
    ) -> dict[str, torch.Tensor]:
        assert isinstance(model, DistillSelfModel)
        view_q, view_k = batch[0], batch[1]
        if int(model.queue_len) == 0:
            model.queue_len.fill_(self._pool_queue_len or self.config.queue_size)
        if progress >= self.config.teacher_fraction and int(model.stage) == STAGE_TEACHER:
            self._start_student_stage(model)
        if self.config.refill_queues and int(model.queue_filled) < int(model.queue_len):
            self.fill_queues(model, view_k.device)  # only at a stage start: then it stays full
        if int(model.stage) == STAGE_TEACHER:
            out = self._teacher_step(model, view_q, view_k)
        else:
            out = self._student_step(model, view_q, view_k)
        return out

    def after_step(self, model: nn.Module, progress: float) -> None:
        assert isinstance(model, DistillSelfModel)
        m = self.config.key_momentum
        if int(model.stage) == STAGE_TEACHER:
            update_momentum(model.teacher_head, model.teacher_key_head, m)
        else:
            update_momentum(model.student, model.student_key, m)
            update_momentum(model.student_head, model.student_key_head, m)

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, DistillSelfModel)
        return model.student

    # -- learning rate --------------------------------------------------------------------
    def learning_rate(self, progress: float) -> float:
        """``lr_schedule="per-stage"``: the peak ``lr`` times each stage's own cosine."""
        return self.config.lr * stage_cosine_factor(progress, self.config.teacher_fraction)

    def lr_factor(self, progress: float) -> float | None:
        """``lr_schedule="per-stage"``: each stage's own cosine (the harness applies it to the
        optimiser before every step, :meth:`ssl_bench.api.Method.lr_factor`); ``"single"``:
        the harness's one cosine over both stages."""
        if self.config.lr_schedule != "per-stage":
            return None
        return stage_cosine_factor(progress, self.config.teacher_fraction)

    # -- stages ---------------------------------------------------------------------------
    def _queue(self, model: DistillSelfModel, name: str) -> torch.Tensor:
        return getattr(model, name)[: int(model.queue_len)]

    @torch.no_grad()
    def _teacher_embed(self, model: DistillSelfModel, x: torch.Tensor) -> torch.Tensor:
        return model.teacher.embed(x)

    def _teacher_step(self, model: DistillSelfModel, view_q: torch.Tensor,
                      view_k: torch.Tensor) -> dict[str, torch.Tensor]:
        q = nn.functional.normalize(model.teacher_head(self._teacher_embed(model, view_q)), dim=1)
        with torch.no_grad():
            k = nn.functional.normalize(
                model.teacher_key_head(self._teacher_embed(model, view_k)), dim=1)
        logits = moco_logits(q, k, self._queue(model, "teacher_queue"), self.config.temperature)
        loss = info_nce(logits)
        model.enqueue(None, all_gather_concat(k))  # every rank's keys (identity in 1 process)
        return {"loss": loss, "teacher_moco": loss.detach(), "stage": model.stage.float()}

    def _student_step(self, model: DistillSelfModel, view_q: torch.Tensor,
                      view_k: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        q = nn.functional.normalize(model.student_head(model.student.embed(view_q)), dim=1)
        with torch.no_grad():
            k = nn.functional.normalize(model.student_key_head(model.student_key.embed(view_k)),
                                        dim=1)
            tq = nn.functional.normalize(model.teacher_head(self._teacher_embed(model, view_q)),
                                         dim=1)
            tk = nn.functional.normalize(
                model.teacher_key_head(self._teacher_embed(model, view_k)), dim=1)
            teacher_logits = moco_logits(tq, tk, self._queue(model, "teacher_queue"),
                                         c.temperature)
        logits = moco_logits(q, k, self._queue(model, "student_queue"), c.temperature)
        moco = info_nce(logits)
        # Departure: only the columns written in stage 2 hold the same image in both queues
        # (all of them once the queues are filled at the stage start).
        columns = 1 + int(model.queue_filled)
        kd = distillation_kl(logits[:, :columns], teacher_logits[:, :columns])
        loss = (2.0 if c.double_moco_term else 1.0) * moco + c.distill_weight * kd
        # every rank's keys, in the same rank order for both queues (identity in 1 process)
        model.enqueue(all_gather_concat(k), all_gather_concat(tk))
        return {"loss": loss, "moco": moco.detach(), "kd": kd.detach(),
                "stage": model.stage.float()}

    @torch.no_grad()
    def fill_queues(self, model: DistillSelfModel, device: torch.device) -> None:
        """Fill the current stage's queues with ``queue_len`` keys of pool frames, without
        gradient (see "Queue filling" in the module docstring): stage 1 the teacher's queue,
        stage 2 both queues from the same key views, so they stay aligned. The frames and their
        augmentations are drawn from ``seed + stage`` in a forked RNG, so training draws the
        same batches and views with or without this fill."""
        if self._key_views is None:
            raise SSLBenchError("distill-self: the queues are filled from the pool; call "
                                "pretrain_dataset(pool) before training_step")
        views = self._key_views
        length = int(model.queue_len)
        student = int(model.stage) == STAGE_STUDENT
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.context.seed + int(model.stage))
            passes = -(-length // len(views))  # a pool smaller than the queue repeats
            order = torch.cat([torch.randperm(len(views)) for _ in range(passes)])[:length]
            for start in range(0, length, self.config.batch_size):
                picks = order[start:start + self.config.batch_size].tolist()
                x = torch.stack([views[i][0] for i in picks]).to(device)
                teacher_keys = nn.functional.normalize(
                    model.teacher_key_head(self._teacher_embed(model, x)), dim=1)
                student_keys = None
                if student:
                    student_keys = nn.functional.normalize(
                        model.student_key_head(model.student_key.embed(x)), dim=1)
                model.enqueue(student_keys, teacher_keys)

    @torch.no_grad()
    def _start_student_stage(self, model: DistillSelfModel) -> None:
        """Freeze the teacher head (dropping any stale gradient, so no optimiser touches it) and
        restart both queues."""
        for head in (model.teacher_head, model.teacher_key_head):
            for p in head.parameters():
                p.requires_grad_(False)
                p.grad = None
        model.stage.fill_(STAGE_STUDENT)
        model.queue_ptr.zero_()
        model.queue_filled.zero_()
        refill = ", filled from the pool" if self.config.refill_queues else ""
        self.context.log(f"distill-self: teacher head trained; student stage begins "
                         f"(queue length {int(model.queue_len)}{refill})")
