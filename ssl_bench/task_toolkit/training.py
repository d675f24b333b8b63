"""Training a downstream head (or encoder and head) and selecting its epoch on val.

The protocol every built-in task follows: train for a fixed number of epochs on the labelled
training units, score the val units every ``eval_every`` epochs (and after the last one), keep
the weights of the epoch with the best val score, and only then score the test units, once.
:func:`train_and_select` is that loop; the task supplies one epoch of training
(usually :func:`optimise_epoch` over its batches) and the val score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from ssl_bench.api import CellInputs, Progress, no_progress
from ssl_bench.errors import CellFailure, SSLBenchError
from ssl_bench.precision import TrainingPrecision
from ssl_bench.task_toolkit.progress import EpochLoss


def resolve_protocol(cell: CellInputs) -> str:
    """The protocol actually run: the supervised row (``meta.protocol == "finetune"``) always
    fine-tunes; otherwise the benchmark's protocol (``linear`` or ``finetune``)."""
    if cell.method.meta.protocol == "finetune":
        return "finetune"
    if cell.protocol not in ("linear", "finetune"):
        raise SSLBenchError(
            f"benchmark {cell.benchmark.id!r}: unknown protocol {cell.protocol!r}; use "
            "'linear' or 'finetune'")
    return cell.protocol


def make_optimizer(params: Iterable[nn.Parameter] | Iterable[dict[str, Any]], name: str,
                   lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``adam``, ``adamw`` or ``sgd`` (momentum 0.9) over ``params`` (parameters or
    parameter groups)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise SSLBenchError(f"unknown optimizer {name!r}; use adam, adamw or sgd")


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``module``'s state dict (the weights of one epoch)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_finite(loss: torch.Tensor, where: str) -> None:
    """Fail the cell (:class:`~ssl_bench.errors.CellFailure`, not the run) on a NaN or
    infinite loss; ``where`` names the training in the message."""
    if not torch.isfinite(loss):
        raise CellFailure(f"non-finite loss in {where}")


def optimise_epoch(batches: Iterable[torch.Tensor], step: Callable[[torch.Tensor], torch.Tensor],
                   optimizer: torch.optim.Optimizer, precision: TrainingPrecision, where: str,
                   max_steps: int | None = None) -> EpochLoss:
    """One epoch of optimiser steps: for each index batch (at most ``max_steps``), the loss
    ``step(batch)`` under the precision's autocast, a finiteness check
    (:func:`check_finite`), backward and an optimiser step. Returns the epoch's loss."""
    epoch_loss = EpochLoss()
    for n_steps, idx in enumerate(batches):
        if max_steps is not None and n_steps >= max_steps:
            break
        with precision.autocast():
            loss = step(idx)
        check_finite(loss, where)
        optimizer.zero_grad(set_to_none=True)
        precision.backward_step(loss, optimizer)
        epoch_loss.add(loss)
    return epoch_loss


@dataclass
class Selection:
    """What :func:`train_and_select` kept: the epoch (1-based), its val score (None without
    val units, or when no val score was a finite number) and every val score computed, in
    order (None for a score that was not a finite number)."""

    best_epoch: int
    best_val_score: float | None
    #: the name of the val score (e.g. ``"miou"``), for the record
    val_metric: str
    #: False: there were no val units and the last epoch was kept
    validated: bool
    val_history: list[float | None] = field(default_factory=list)

    def details(self, prefix: str = "") -> dict[str, Any]:
        """The selection as record details, under the keys every built-in task writes:
        ``best_epoch``, ``best_val_score``, ``val_metric``, ``selection`` (in words) and
        ``val_history``, each after ``prefix`` (e.g. ``"finetune_"`` for a first training
        stage)."""
        selection = (f"best val {self.val_metric}" if self.validated
                     else "last epoch (no val units)")
        return {f"{prefix}best_epoch": self.best_epoch,
                f"{prefix}best_val_score": self.best_val_score,
                f"{prefix}val_metric": self.val_metric,
                f"{prefix}selection": selection,
                f"{prefix}val_history": self.val_history}


def train_and_select(modules: Sequence[nn.Module], epochs: int,
                     train_epoch: Callable[[int], EpochLoss],
                     validate: Callable[[], float] | None, *, val_metric: str,
                     eval_every: int = 1, progress: Progress = no_progress,
                     stage: str = "downstream") -> Selection:
    """Train for ``epochs`` and keep the weights of the epoch with the best val score.

    Each epoch puts ``modules`` in train mode and calls ``train_epoch(epoch)`` (1-based; it
    runs the epoch's optimiser steps and any per-epoch schedule and returns the epoch's loss,
    reported to ``progress`` under ``stage``). Every ``eval_every`` epochs, and after the last
    one, the modules go to eval mode and ``validate()`` gives the val score, higher is better.

    Selection: the first epoch scored is kept, then any epoch whose score is strictly higher
    than the best so far; so ties keep the earlier epoch, and a score that is not a finite
    number (e.g. NaN when no val unit holds a scored class) never beats a number. With
    ``validate=None`` (no val units) the last epoch is kept. At the end every module holds the
    kept epoch's weights and is in eval mode.
    """
    best_epoch = 0
    best_score: float | None = None
    best_state = [snapshot(m) for m in modules] if validate is not None else []
    history: list[float | None] = []
    for epoch in range(1, epochs + 1):
        for m in modules:
            m.train()
        epoch_loss = train_epoch(epoch)
        progress(stage, epoch, epochs, epoch_loss.extras())
        if validate is None:
            best_epoch = epoch  # the modules hold the last epoch's weights: nothing to copy
        elif epoch % eval_every == 0 or epoch == epochs:
            for m in modules:
                m.eval()
            score = float(validate())
            finite = math.isfinite(score)
            history.append(round(score, 4) if finite else None)
            if best_epoch == 0 or (finite and (best_score is None or score > best_score)):
                best_epoch, best_score = epoch, (score if finite else None)
                best_state = [snapshot(m) for m in modules]
    for m, state in zip(modules, best_state):
        m.load_state_dict(state)
    for m in modules:
        m.eval()
    return Selection(best_epoch, best_score if validate is not None else None, val_metric,
                     validate is not None, history)


__all__ = ["resolve_protocol", "make_optimizer", "snapshot", "check_finite", "optimise_epoch",
           "Selection", "train_and_select"]
