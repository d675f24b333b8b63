"""MMS: Min-Max Similarity semi-supervised segmentation (method id ``mms``).

Paper: Ange Lou, Kareem Tawfik, Xing Yao, Ziteng Liu, Jack Noble, "Min-Max Similarity: A
Contrastive Semi-Supervised Deep Learning Network for Surgical Tools Segmentation", IEEE
Transactions on Medical Imaging 42(10):2832-2841, 2023, arXiv 2203.15177.
Official code: https://github.com/AngeLouCN/Min_Max_Similarity (``train_mms.py``, ``loss.py``,
``contrastive_loss.py``, ``model/projector.py``, ``model/pretrained_unet.py``, ``data.py``,
``gridmask.py``), built on Duo-SegNet. Facts from it are used; the code here is our own.

Algorithm (as the code trains it, ``train_mms.py``): two segmentation networks; the labelled
set is split in half, one half per network (weakly augmented); one strongly augmented
unlabelled batch (+ GridMask) goes through both networks. Per step::

    L = 0.25 L_sup + 0.25 L_diff + 0.25 L_contrast + 0.25 L_all_negative

* ``L_sup``: weighted BCE + weighted IoU of each network on its labelled half, summed.
* ``L_diff``: the same loss between the two unlabelled predictions (see decisions).
* ``L_contrast``: PatchNCE between projector(net1 unlabelled logits) and the detached
  projector(net2 unlabelled logits), tau 0.07, L1-normalised features.
* ``L_all_negative``: the same on classifier(labelled logits) with the positive logit fixed at 0.
  Network 2's features are detached in both contrastive terms, so only network 1 (and its heads)
  receive their gradient — kept, as in the code (``ConLoss`` and ``contrastive_loss_sup`` both
  call ``feat_k.detach()`` on network 2's side).
* The projectors and classifiers read one logit channel, as the code's heads read its
  one-channel preUnet output (``input_nc=1``): with K = 2 classes that channel is the
  foreground logit ``z1 - z0`` (``networks.head_input``), the paper's logit, since
  ``softmax(z)[1] = sigmoid(z1 - z0)``.

So network 2 learns from its labelled half only (both contrastive terms detach it and
``L_diff`` carries no gradient, see below): it is a supervised network. The row reports
network 1, the one trained with the unlabelled terms; both networks are scored, as the code's
``test.py`` evaluates and logs ``Model 1`` and ``Model 2`` separately (see "Reported network").

Optimiser: Adam, lr 1e-4, poly decay (power 0.9); batch 1; 100 epochs; input 512x288.

Decisions on the code's quirks (each is a config field, default = our decision):

* ``L_diff`` goes through ``.item()`` in the code, so it carries no gradient. Kept
  (``diff_loss_grad=False``): the published numbers were trained that way, and the paper/abstract
  attribute the consistency of unlabelled predictions to the pixel-wise contrastive loss. The
  value is still computed and logged (``diff``) and enters the reported total as a constant.
  ``diff_loss_grad=True`` makes it a real consistency loss. The code also divides it by the batch
  size although it is already a mean; we do not (identical at the paper's batch 1).
* Projectors and classifiers are not in the code's optimiser, so they stay at their random
  initialisation. Kept (``train_heads=False``): with trainable heads the all-negative term can be
  minimised by the classifier alone, without changing the segmentation networks; frozen random
  heads make the two contrastive terms act on the predictions. Their BatchNorm layers still use
  batch statistics in training, as in the code.
* The all-negative term's position count is computed (the code hard-codes 2304 = 64x36).
* Model selection: the code picks each network's best epoch on the *test* folder
  (``val_loader`` reads ``test/``). Never here: after each epoch (every ``eval_every`` epochs,
  and after the last step) both networks are scored with ``data.validate`` (the val split) and
  each network keeps its own best-val weights.

Reported network (the leaderboard row):

* Always network 1: network 2 never learns from unlabelled data, so a row chosen by val score
  could report a supervised network. The predictor carries
  ``details`` (``row_note`` naming the network, each network's best val score and step) and
  ``extra_predictors = {"network-2": ...}``: the harness scores network 2 on val and on the
  same test units through the same metric as the row, into
  ``details["extra_predictors"]["network-2"]`` (``val_score``, ``test``). Network 1's test
  scores are the row's metrics.
* Loss fixes (double sigmoid, un-weighted BCE), the binary loss on the foreground logit for
  K = 2 (the paper's setting) and the multi-class generalisation for K > 2: see ``losses.py``.

Departures from the paper / code:

* Encoder: ImageNet ``efficientnet_lite0`` (the default CNN of ssl-bench, with real offline
  ImageNet weights) instead of ImageNet Res2Net-101-v1b; the decoder follows preUnet (see
  ``networks.py``). Smoke uses a random-init encoder to stay fast.
* K > 2 classes (the paper and code are binary): the heads read the K logit channels and the
  losses are the multi-class generalisation of ``losses.py``.
* Input size: the code passes ``(512, 288)`` to torchvision ``Resize``, which reads (h, w), so its
  images are 512 tall and 288 wide. Surgical frames are landscape and the README speaks of
  512x288 images, so we train at H=288, W=512 (``input_hw``; same pixel count, same 2304
  positions at 1/8). The harness hands square frames of ``image_size``; the predictor resizes
  them to ``input_hw`` and its logits back. The cpu/smoke profiles train at the frame size.
* An epoch is one pass over the larger labelled half (``ceil(max(n1, n2) / batch)`` steps); the
  other labelled half and the unlabelled stream are drawn from reshuffled cycles. The code zips
  the three loaders and stops at the shortest one. Poly decay runs per step over all steps
  (the code updates it per epoch, starting at epoch 1, and runs epochs 1..99).
* The labelled split into halves is a seeded random permutation (the code uses ``os.listdir``
  order). With one labelled frame both networks train on it.
* Weak view: resize only (as the code); strong view: see ``augment.py``.
* ``cpu`` profile: lr 1e-2, batch 4, a 96-step cap so training fits in about a minute on
  2 cores. With Adam a weight moves at most ~lr per step, so 32 steps of batch 8 at lr 1e-3
  barely move the randomly initialised decoder (on btcv-organ both networks then predict
  background + liver); at the same sample count, 96 smaller steps at 1e-2 train it.
  Loss weights: the weighting of the earlier official ``train_mms.py`` (commit 76fcc00, a
  commented-out line beside its ``sigmoid_rampup``): ``0.5 L_sup + w(t) (0.25 L_diff +
  0.125 L_contrast + 0.125 L_all_negative)`` with ``w`` rising over the whole training
  (``unlabelled_rampup=1``). The latest code's constant 0.25 x 4 (kept by ``paper``) lets
  the contrastive terms, at full weight from the first of 96 steps, pull network 1 towards
  network 2's untrained predictions: network 1 then ends below its labels-only twin (the
  sanity ordering of ``benchmarks/validity``; figures in this plugin's README).
* K > 2 loss: boundary-weighted softmax cross-entropy + weighted IoU of the classes present
  in each image (``losses.softmax_ce_iou``). The binary loss on every softmax channel
  (``multiclass_loss="per-channel"``) averages in an IoU of ~1 with ~0 gradient for every
  absent class, and its per-channel BCE pushes each rare class towards 0 everywhere.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ssl_bench.api import Encoder, Method, MethodConfig, SemiSupervisedData
from ssl_bench.backbones import DEFAULT_CNN
from ssl_bench.errors import SSLBenchError
from ssl_bench_mms.augment import StrongView
from ssl_bench_mms.losses import (
    all_negative_loss,
    difference_loss,
    patch_contrastive_loss,
    supervised_loss,
)
from ssl_bench_mms.meta import MMS_META
from ssl_bench_mms.networks import MMSModel, SegPredictor, head_input

#: the leaderboard's note beside an ``mms`` row (which of the two networks the row is)
ROW_NOTE = "network 1 of 2 (the one trained with unlabelled data); network 2 in details"


class MMSConfig(MethodConfig):
    """Every MMS hyperparameter (defaults: the official code where it has one)."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adam"
    lr: float = 1e-4
    batch_size: int = 1
    epochs: int = 100
    backbone: str = DEFAULT_CNN
    imagenet: bool = True
    #: U-Net decoder widths at strides 2, 4, 8 (preUnet: 64, 256, 512)
    decoder_widths: tuple[int, int, int] = (64, 256, 512)
    #: first width of the projector (w, 2w) and classifier (w, 2w, 4w) heads (code: 8)
    head_width: int = 8
    temperature: float = 0.07
    feature_norm: Literal["l1", "l2"] = "l1"
    weight_sup: float = 0.25
    weight_diff: float = 0.25
    weight_contrast: float = 0.25
    weight_all_negative: float = 0.25
    boundary_kernel: int = 31
    #: K > 2 loss: "softmax" (weighted softmax CE + IoU of the present classes) or
    #: "per-channel" (the binary loss on every softmax channel, averaged)
    multiclass_loss: Literal["softmax", "per-channel"] = "softmax"
    diff_loss_grad: bool = False
    #: share of the training steps over which the weight of every term but ``L_sup`` rises
    #: from ~0 to its value along exp(-5 (1 - t)^2) (the ``sigmoid_rampup`` of Laine & Aila,
    #: "Temporal ensembling for semi-supervised learning", ICLR 2017, which an earlier
    #: train_mms.py applies over all epochs in a commented-out loss); 0: full weight from the
    #: first step, as the code trains
    unlabelled_rampup: float = Field(default=0.0, ge=0.0, le=1.0)
    train_heads: bool = False
    poly_power: float = 0.9
    gridmask_prob: float = 0.8
    #: training / inference size (H, W); None: the frame size
    input_hw: tuple[int, int] | None = None
    eval_every: int = 1
    #: classes of the module ``build()`` returns (fit_segmentation uses the data's count)
    num_classes: int = 2


def _images(frames: np.ndarray, device: torch.device, hw: tuple[int, int] | None) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    if hw is not None and tuple(x.shape[-2:]) != tuple(hw):
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False)
    return x.to(device)


def _masks(masks: np.ndarray, device: torch.device, hw: tuple[int, int] | None) -> torch.Tensor:
    y = torch.from_numpy(np.ascontiguousarray(masks)).long()
    if hw is not None and tuple(y.shape[-2:]) != tuple(hw):
        y = F.interpolate(y[:, None].float(), size=hw, mode="nearest")[:, 0].long()
    return y.to(device)


class CycleSampler:
    """Endless batches of exactly ``batch_size`` indices from reshuffled passes over ``n``."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n = n
        self.batch_size = batch_size
        self.generator = generator
        self._order: list[int] = []

    def next(self) -> torch.Tensor:
        out: list[int] = []
        while len(out) < self.batch_size:
            if not self._order:
                self._order = torch.randperm(self.n, generator=self.generator).tolist()
            out.append(self._order.pop())
        return torch.tensor(out)


def rampup_weight(step: int, total: int, rampup: float) -> float:
    """The factor of the unlabelled terms at ``step`` of ``total``: exp(-5 (1 - t)^2) with
    t = step / (rampup * total) capped at 1; 1 throughout when ``rampup`` is 0."""
    if rampup <= 0.0:
        return 1.0
    t = min(1.0, step / max(1.0, rampup * total))
    return math.exp(-5.0 * (1.0 - t) ** 2)


def mms_losses(model: MMSModel, x1: torch.Tensor, y1: torch.Tensor, x2: torch.Tensor,
               y2: torch.Tensor, xu: torch.Tensor | None, config: MMSConfig,
               ignore_index: int, unlabelled_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """One MMS step's losses. ``x1, y1``/``x2, y2``: each network's labelled batch (images in
    [0, 1], class-id masks); ``xu``: the strongly augmented unlabelled batch fed to both
    networks (None or empty: no unlabelled terms, the total is the labelled part only);
    ``unlabelled_weight`` scales every term but ``L_sup`` (:func:`rampup_weight`)."""
    cfg = config
    logits1, logits2 = model.net1(x1), model.net2(x2)
    mc = cfg.multiclass_loss
    sup = (supervised_loss(logits1, y1, ignore_index, cfg.boundary_kernel, mc)
           + supervised_loss(logits2, y2, ignore_index, cfg.boundary_kernel, mc))
    # all-negative term on the labelled predictions (the two halves: compare equal counts)
    n = min(len(logits1), len(logits2))
    all_neg = all_negative_loss(model.classifier1(head_input(logits1[:n])),
                                model.classifier2(head_input(logits2[:n])),
                                cfg.temperature, cfg.feature_norm)
    zero = sup.new_zeros(())
    diff, contrast = zero, zero
    if xu is not None and len(xu) > 0:
        u1, u2 = model.net1(xu), model.net2(xu)
        diff = difference_loss(u1, u2, cfg.boundary_kernel, mc)
        if not cfg.diff_loss_grad:
            diff = diff.detach()  # the code's `.item()`
        contrast = patch_contrastive_loss(model.projector1(head_input(u1)),
                                          model.projector2(head_input(u2)),
                                          cfg.temperature, positive=True, norm=cfg.feature_norm)
    loss = (cfg.weight_sup * sup
            + unlabelled_weight * (cfg.weight_diff * diff + cfg.weight_contrast * contrast
                                   + cfg.weight_all_negative * all_neg))
    return {"loss": loss, "sup": sup.detach(), "diff": diff.detach(),
            "contrast": contrast.detach(), "all_negative": all_neg.detach()}


class MMSMethod(Method):
    """Min-Max Similarity: dual-network contrastive semi-supervised segmentation."""

    meta = MMS_META
    Config = MMSConfig
    profiles = {
        "smoke": {"image_size": 32, "epochs": 1, "max_steps": 2, "batch_size": 2, "lr": 1e-3,
                  "imagenet": False, "decoder_widths": (8, 8, 16), "head_width": 4},
        # 96 steps of batch 4 per stream (64x64), lr 1e-2: enough parameter updates for the
        # randomly initialised decoder (32 steps of batch 8 at lr 1e-3 are not: see README);
        # the earlier official weighting with its ramp-up (see "cpu profile" above)
        "cpu": {"image_size": 64, "epochs": 20, "max_steps": 96, "batch_size": 4, "lr": 1e-2,
                "imagenet": True, "decoder_widths": (16, 32, 64), "eval_every": 4,
                "weight_sup": 0.5, "weight_diff": 0.25, "weight_contrast": 0.125,
                "weight_all_negative": 0.125, "unlabelled_rampup": 1.0},
        "paper": {"image_size": 512, "input_hw": (288, 512), "epochs": 100, "batch_size": 1,
                  "optimizer": "adam", "lr": 1e-4, "imagenet": True,
                  "decoder_widths": (64, 256, 512)},
    }

    config: MMSConfig

    # -- module ------------------------------------------------------------------------
    def build(self, num_classes: int | None = None) -> MMSModel:
        cfg = self.config
        return MMSModel(num_classes or cfg.num_classes, cfg.backbone, cfg.imagenet,
                        cfg.decoder_widths, cfg.head_width)

    def encoder(self, model: nn.Module) -> Encoder:
        """Network 1's encoder. Not used by the harness: MMS provides only a
        segmentation predictor (``fit_segmentation``), so it has no frame/spatial features."""
        if not isinstance(model, MMSModel):
            raise SSLBenchError("mms: encoder() expects the module built by MMSMethod.build()")
        return model.encoder()

    def parameters_to_optimize(self, model: nn.Module) -> list[nn.Parameter]:
        assert isinstance(model, MMSModel)
        modules: list[nn.Module] = [model.net1, model.net2]
        if self.config.train_heads:
            modules += model.heads()
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)

    # -- semi-supervised training ------------------------------------------------------
    def fit_segmentation(self, data: SemiSupervisedData) -> nn.Module:
        cfg = self.config
        log = self.context.log
        device = data.device
        n_lab = len(data.labelled_frames)
        if n_lab == 0:
            raise SSLBenchError("mms: no labelled frames were given; raise --label-frac or check "
                                "that the labelled units have masks")
        torch.manual_seed(data.seed)
        generator = torch.Generator().manual_seed(data.seed)
        hw: tuple[int, int] | None = None
        if cfg.input_hw is not None:
            height, width = cfg.input_hw
            hw = (height, width)

        model = self.build(data.num_classes).to(device)
        images = _images(data.labelled_frames, device, hw)
        masks = _masks(data.labelled_masks, device, hw)
        order = torch.randperm(n_lab, generator=generator)
        half = (n_lab + 1) // 2
        idx1 = order[:half]
        idx2 = order[half:] if n_lab > 1 else order
        sampler1 = CycleSampler(len(idx1), cfg.batch_size, generator)
        sampler2 = CycleSampler(len(idx2), cfg.batch_size, generator)
        n_unl = len(data.unlabelled_frames)
        sampler_u = CycleSampler(n_unl, cfg.batch_size, generator) if n_unl else None
        strong = StrongView(cfg.gridmask_prob)

        steps_per_epoch = max(1, math.ceil(max(len(idx1), len(idx2)) / cfg.batch_size))
        total = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        params = self.parameters_to_optimize(model)
        optimizer = self._optimizer(params)

        best: list[dict[str, Any]] = [{"score": -math.inf, "state": None, "step": 0}
                                      for _ in range(2)]
        t0 = time.perf_counter()
        model.train()
        for step in range(total):
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * (1.0 - step / total) ** cfg.poly_power
            b1 = idx1[sampler1.next()]
            b2 = idx2[sampler2.next()]
            xu = None
            if sampler_u is not None:
                picks = sampler_u.next().tolist()
                views = [strong(torch.from_numpy(np.ascontiguousarray(
                    data.unlabelled_frames[i])).permute(2, 0, 1)) for i in picks]
                xu = torch.stack(views)
                if hw is not None and tuple(xu.shape[-2:]) != hw:
                    xu = F.interpolate(xu, size=hw, mode="bilinear", align_corners=False)
                xu = xu.to(device)
            out = mms_losses(model, images[b1], masks[b1], images[b2], masks[b2], xu, cfg,
                             data.ignore_index,
                             rampup_weight(step, total, cfg.unlabelled_rampup))
            if not torch.isfinite(out["loss"]):
                raise SSLBenchError(f"mms: non-finite loss at step {step}; lower the lr "
                                    f"(now {cfg.lr}) in the method config")
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            done = step + 1
            epoch_end = done % steps_per_epoch == 0
            epoch = math.ceil(done / steps_per_epoch)
            if done == total or (epoch_end and epoch % cfg.eval_every == 0):
                scores = []
                for k, net in enumerate(model.nets):
                    score = float(data.validate(SegPredictor(net, hw)))
                    scores.append(score)
                    if score > best[k]["score"] or best[k]["state"] is None:
                        best[k] = {"score": score, "step": done,
                                   "state": copy.deepcopy(net.state_dict())}
                model.train()
                log(f"mms step {done}/{total} loss {float(out['loss'].detach()):.4f} "
                    f"sup {float(out['sup']):.4f} contrast {float(out['contrast']):.4f} "
                    f"all_neg {float(out['all_negative']):.4f} val {scores[0]:.4f}/{scores[1]:.4f} "
                    f"({time.perf_counter() - t0:.1f}s)")

        for net, kept in zip(model.nets, best):
            net.load_state_dict(kept["state"])
        log(f"mms: row = network 1 (val {best[0]['score']:.4f} at step {best[0]['step']}); "
            f"network 2 (labels only) val {best[1]['score']:.4f} at step {best[1]['step']}")
        predictor = SegPredictor(model.net1, hw).to(device).eval()
        network_2 = SegPredictor(model.net2, hw).to(device).eval()
        predictor.details = {
            "row_note": ROW_NOTE,
            "reported_network": "network-1",
            "networks": {
                "network-1": {"trained_on": "labelled half 1 + the unlabelled terms",
                              "best_val_score": best[0]["score"], "best_step": best[0]["step"]},
                "network-2": {"trained_on": "labelled half 2 only (no unlabelled gradient)",
                              "best_val_score": best[1]["score"], "best_step": best[1]["step"]},
            },
            "steps": total,
        }
        predictor.extra_predictors = {"network-2": network_2}
        return predictor


__all__ = ["ROW_NOTE", "MMSConfig", "MMSMethod", "mms_losses", "CycleSampler"]
