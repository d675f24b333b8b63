"""Pretraining health: did the encoder learn anything, or collapse?

Computed after every pretraining (and for the weights of methods without one) on a fixed,
seeded batch of **val-split** frames of the domain's datasets (never test frames):

* ``embedding_std``: the mean over dimensions of the per-dimension standard deviation of the
  L2-normalised embeddings. SimSiam's collapse criterion (Chen & He, "Exploring Simple Siamese
  Representation Learning", CVPR 2021, Sec. 4.1 / Fig. 2): a collapsed encoder gives 0, a
  healthy one about ``1 / sqrt(d)``; ``embedding_std_ratio`` is the std times ``sqrt(d)`` (about 1
  when healthy, 0 when collapsed).
* ``rankme``: the effective rank of the embedding matrix, ``exp(-sum p_k log p_k)`` with
  ``p_k = s_k / ||s||_1 + eps`` over its singular values (RankMe; Garrido, Balestriero, Najman,
  LeCun, "RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised
  Representations by Their Rank", ICML 2023, eq. 1, eps = 1e-7).
* the loss trajectory of the pretraining: the mean loss over the first and the last 10% of its
  steps (at least one step each), per stage for a multi-stage method.

Stages: a method that trains in stages (e.g. DistillSelf: a teacher head, then a student) puts
each step's stage (1, 2, ...) under :data:`STAGE_KEY` in the loss dict ``training_step``
returns; :func:`step_stage` reads it (1 when absent). Given the stage of every step, the
trajectory is taken within each stage: the losses of two stages are different objectives, so
stage 1's first steps against stage 2's last would say nothing about either. The figures then
hold ``loss_stages`` (one ``{"stage", "loss_first", "loss_last", "loss_steps"}`` per stage, in
the order the stages ran), and ``loss_first`` / ``loss_last`` / ``loss_steps`` are those of the
last stage (DistillSelf's student stage, which trains the encoder its rows report), so a
one-line summary such as the leaderboard's health text stays within one stage.

An encoder is flagged **collapsed** when its embeddings barely vary between frames
(``embedding_std_ratio`` below :data:`COLLAPSE_STD_RATIO`: a hundredth of a healthy spread) or
span a single direction (``rankme`` below :data:`COLLAPSE_RANKME`). Both thresholds are this
project's choice: an encoder whose output is a constant plus a little of its input (the broken
control of :mod:`ssl_bench.testing`) has a ratio near 1e-4 and a RankMe near 1, while
mean-pooled ViT tokens of a briefly trained MAE, which carry a large shared offset, measure
about 0.02 and 1.4 and are not collapsed (their variation is small but real).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ssl_bench.api import Encoder

#: embeddings whose normalised std is below this share of the healthy 1/sqrt(d) are collapsed
COLLAPSE_STD_RATIO = 0.01
#: an effective rank below this means one direction: collapsed
COLLAPSE_RANKME = 1.1
#: frames in the health batch
HEALTH_FRAMES = 256
RANKME_EPS = 1e-7
#: the key of a training step's loss dict that holds the step's stage (1, 2, ...)
STAGE_KEY = "stage"


def rankme(embeddings: torch.Tensor) -> float:
    """RankMe effective rank of (N, D) embeddings (Garrido et al., ICML 2023, eq. 1)."""
    s = torch.linalg.svdvals(embeddings.double())
    if float(s.sum()) == 0.0:
        return 0.0
    p = s / s.sum() + RANKME_EPS
    return float(torch.exp(-(p * torch.log(p)).sum()))


def embedding_std(embeddings: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised (N, D) embeddings (SimSiam, Sec. 4.1)."""
    z = F.normalize(embeddings.double(), dim=1)
    return float(z.std(dim=0, unbiased=True).mean())


def step_stage(step_losses: Mapping[str, Any]) -> int:
    """The stage of one training step: the :data:`STAGE_KEY` entry of the loss dict its
    ``training_step`` returned (a number or a one-element tensor), 1 when there is none."""
    value = step_losses.get(STAGE_KEY)
    return 1 if value is None else int(value)


def _first_last(losses: Sequence[float]) -> dict[str, float | int | None]:
    """Mean loss over the first and the last 10% of ``losses`` (at least one step each)."""
    if not losses:
        return {"loss_first": None, "loss_last": None, "loss_steps": 0}
    k = max(1, math.ceil(0.1 * len(losses)))
    return {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
            "loss_steps": len(losses)}


def loss_trajectory(losses: Sequence[float], stages: Sequence[int] | None = None
                    ) -> dict[str, Any]:
    """Mean loss over the first and the last 10% of the logged steps; with ``stages`` (the
    stage of each step, see the module docstring) and more than one stage, within each stage
    (``loss_stages``), the top-level figures being the last stage's."""
    if stages is not None and len(stages) != len(losses):
        raise ValueError(f"{len(stages)} stage indices for {len(losses)} losses; give one per step")
    if stages is None or len(set(stages)) < 2:
        return _first_last(losses)
    per_stage = [{"stage": stage, **_first_last([loss for loss, s in zip(losses, stages)
                                                 if s == stage])}
                 for stage in dict.fromkeys(stages)]
    last = per_stage[-1]
    return {"loss_first": last["loss_first"], "loss_last": last["loss_last"],
            "loss_steps": last["loss_steps"], "loss_stages": per_stage}


@torch.no_grad()
def embeddings_of(encoder: Encoder, frames: np.ndarray, device: torch.device,
                  batch_size: int = 64) -> torch.Tensor:
    """(N, D) embeddings of uint8 (N, H, W, 3) frames through ``encoder.embed`` (eval mode)."""
    encoder.eval()
    outs = []
    for i in range(0, len(frames), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch_size])).to(device)
        outs.append(encoder.embed(x.permute(0, 3, 1, 2).float().div_(255.0)).float().cpu())
    return torch.cat(outs)


def encoder_health(encoder: Encoder, frames: np.ndarray, device: torch.device,
                   losses: Sequence[float] = (), stages: Sequence[int] | None = None
                   ) -> dict[str, Any]:
    """The health figures of one encoder (see the module docstring); ``stages``: the stage of
    each of ``losses`` (:func:`step_stage`), None for a one-stage run."""
    emb = embeddings_of(encoder, frames, device)
    std = embedding_std(emb)
    rank = rankme(emb)
    ratio = std * math.sqrt(emb.shape[1])
    collapsed = (not math.isfinite(ratio)) or ratio < COLLAPSE_STD_RATIO or rank < COLLAPSE_RANKME
    return {"n_frames": int(emb.shape[0]), "embed_dim": int(emb.shape[1]),
            "embedding_std": std, "embedding_std_ratio": ratio, "rankme": rank,
            **loss_trajectory(list(losses), None if stages is None else list(stages)),
            "collapsed": bool(collapsed)}


def health_batch(sequences: Sequence[np.ndarray], n: int = HEALTH_FRAMES, seed: int = 0
                 ) -> np.ndarray:
    """A fixed, seeded sample of ``n`` frames (without replacement when there are enough) from
    the frame arrays of the domain's val units."""
    index = [(s, t) for s, seq in enumerate(sequences) for t in range(len(seq))]
    if not index:
        raise ValueError("no val frames for the health check")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(index), size=min(n, len(index)), replace=False)
    return np.stack([np.asarray(sequences[index[i][0]][index[i][1]]) for i in sorted(picks)])


__all__ = ["COLLAPSE_RANKME", "COLLAPSE_STD_RATIO", "HEALTH_FRAMES", "STAGE_KEY",
           "embedding_std", "embeddings_of", "encoder_health", "health_batch",
           "loss_trajectory", "rankme", "step_stage"]
