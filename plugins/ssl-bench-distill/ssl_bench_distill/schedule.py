"""DistillSelf's learning rate: one cosine per stage, as the official code's two jobs.

xmed-lab/DistillingSelf runs stage 1 (teacher head, ``--onlyfc``) and stage 2 (student,
``--distill=1``) as two ``main_moco.py`` jobs, each with ``--cos``: ``adjust_learning_rate``
sets ``lr = lr0 * 0.5 * (1 + cos(pi * epoch / epochs))`` at the start of every epoch of that job,
so each stage starts at the peak ``lr0`` (0.01) and decays to (almost) 0.

The harness runs one cosine over the whole pretraining run and hands a method no optimiser, so a
single harness cosine over both stages would start stage 2 at half the peak. To give each stage
its own cosine, :class:`StageLearningRate` sets the learning rate of the optimiser that holds
the model's parameters just before each of its steps, through torch's global optimiser
step-pre-hook (``torch.optim.optimizer.register_optimizer_step_pre_hook``); optimisers holding
none of the model's parameters are left alone. The value is a function of the training progress
only, so it survives a resumed run. Departure: the decay is per step (the harness's unit), not
per epoch.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook


def stage_cosine_factor(progress: float, teacher_fraction: float) -> float:
    """Learning-rate factor at ``progress`` in [0, 1]: stage 1 is ``[0, f)`` and stage 2
    ``[f, 1]`` (``f = teacher_fraction``), each with its own cosine from 1 to 0:
    ``0.5 * (1 + cos(pi * s))`` with ``s`` the progress within the stage."""
    p = min(max(progress, 0.0), 1.0)
    f = teacher_fraction
    within = p / f if p < f else (p - f) / (1.0 - f)
    return 0.5 * (1.0 + math.cos(math.pi * min(within, 1.0)))


class StageLearningRate:
    """Before every step of an optimiser holding one of ``params``, set the ``lr`` of all its
    param groups to ``lr()``. Call :meth:`remove` when training ends."""

    def __init__(self, params: Iterable[nn.Parameter], lr: Callable[[], float]) -> None:
        # id -> weak reference: identity is checked against the live object, so a reused id
        # of a freed parameter never matches
        self._params = {id(p): weakref.ref(p) for p in params}
        self._lr = lr
        self._handle = register_optimizer_step_pre_hook(self._before_step)

    def holds_model_parameters(self, optimizer: torch.optim.Optimizer) -> bool:
        for group in optimizer.param_groups:
            for p in group["params"]:
                ref = self._params.get(id(p))
                if ref is not None and ref() is p:
                    return True
        return False

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.holds_model_parameters(optimizer):
            lr = self._lr()
            for group in optimizer.param_groups:
                group["lr"] = lr

    def remove(self) -> None:
        self._handle.remove()


__all__ = ["stage_cosine_factor", "StageLearningRate"]
