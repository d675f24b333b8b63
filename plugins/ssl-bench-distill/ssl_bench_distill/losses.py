"""MoCo logits and DistillSelf's distillation term.

Facts (xmed-lab/DistillingSelf, ``moco/builder.py`` and ``main_moco.py``):

* MoCo logits are ``[q.k, q.queue] / T`` for L2-normalised ``q``, ``k`` and queue entries;
  the InfoNCE target is column 0 (He et al., CVPR 2020, arXiv 1911.05722).
* The distillation term is ``F.kl_div(log_softmax(student_logits), softmax(teacher_logits),
  reduction="batchmean")`` on logits already divided by ``T``, i.e.
  ``KL(p_teacher || p_student)`` summed over the (1 + K) columns and averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def moco_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                temperature: float) -> torch.Tensor:
    """(B, D) queries, (B, D) positive keys, (K, D) negatives -> (B, 1 + K) logits / T.

    Inputs must be L2-normalised; ``queue`` is cloned so a later in-place enqueue does not
    invalidate the autograd graph."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negatives = q @ queue.clone().t()
    return torch.cat([positive, negatives], dim=1) / temperature


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the positive in column 0."""
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long,
                                               device=logits.device))


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student)), summed over columns, mean over the batch.

    Both inputs are logits already divided by the temperature; no gradient reaches the
    teacher."""
    return F.kl_div(F.log_softmax(student_logits, dim=1),
                    F.softmax(teacher_logits.detach(), dim=1), reduction="batchmean")
