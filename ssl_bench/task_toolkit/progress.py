"""Reporting a cell's progress (:attr:`ssl_bench.api.CellInputs.progress`) and its timings.

The live display and the run's ETA read what a task reports; nothing here changes a score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, TypeVar

import torch

from ssl_bench.api import CellInputs, Unit


class EpochLoss:
    """The mean training loss of an epoch. Losses are summed on their device and read once,
    at the end of the epoch (one device synchronisation per epoch, not per step)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.steps = 0

    def add(self, loss: torch.Tensor) -> None:
        value = loss.detach()
        self.total = value if self.total is None else self.total + value
        self.steps += 1

    def extras(self) -> dict[str, float]:
        """``{"loss": mean}`` for :data:`ssl_bench.api.Progress` (``{}`` after no step)."""
        return {"loss": float(self.total) / self.steps} if self.total is not None else {}


_T = TypeVar("_T")


class UnitProgress:
    """Counts the units of ``groups`` (e.g. train, val, test) through ``stage`` and reports
    each one done to :attr:`CellInputs.progress` (0 of all of them when created)."""

    def __init__(self, cell: CellInputs, stage: str, groups: Sequence[Sequence[Unit]]) -> None:
        self.cell, self.stage = cell, stage
        self.total = sum(len(group) for group in groups)
        self.count = 0
        cell.progress(stage, 0, self.total, {})

    def done(self, value: _T) -> _T:
        """Count one unit more; returns ``value`` (so it wraps an expression)."""
        self.count += 1
        self.cell.progress(self.stage, min(self.count, self.total), self.total, {})
        return value


@dataclass
class Timer:
    """Seconds a cell spent computing features (the frozen or fine-tuned encoder's outputs)
    and downstream (training the head, selecting, scoring): a record's ``timings``."""

    features: float = 0.0
    downstream: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"features": round(self.features, 4), "downstream": round(self.downstream, 4)}


__all__ = ["EpochLoss", "UnitProgress", "Timer"]
