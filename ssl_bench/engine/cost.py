"""What one item of a run's work is estimated to cost: seconds, how good the rate behind them
is, and what the rate is looked up by.

These are plain values: :mod:`ssl_bench.engine.estimate` computes them, the plan's items carry
them (:mod:`ssl_bench.engine.work`) and the live ETA refines them as items finish
(:mod:`ssl_bench.engine.eta`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Quality = Literal["measured", "related", "guess"]


@dataclass(frozen=True)
class Estimate:
    """Seconds of one item, how good the rate behind it is, and what that rate is."""

    seconds: float
    quality: Quality
    basis: str
    #: the rate was measured by this run (not by an earlier one)
    from_run: bool = False


def planned_steps(epochs: int, batch_size: int, max_steps: int | None, n_items: int) -> int:
    """The optimiser steps of a pretraining over ``n_items`` items: ``epochs`` passes of
    ``n_items // batch_size`` full batches (one step when the pool is smaller than a batch),
    capped by ``max_steps``; at least one."""
    steps = epochs * max(1, n_items // batch_size)
    if max_steps is not None:
        steps = min(steps, max_steps)
    return max(1, steps)


@dataclass(frozen=True)
class PretrainSpec:
    """What decides a pretraining's cost: the method, its domain, the profile and device, the
    config hash and pool fingerprint (equal to an earlier one: same steps), ``max_steps``, and
    what plans its steps before any run measured them: the config's epochs and batch and the
    frames of its pool (None: not counted, e.g. before the data is written)."""

    method: str
    domain: str
    profile: str
    device: str
    config: str
    pool: str
    max_steps: int | None
    epochs: int = 1
    batch_size: int = 1
    pool_frames: int | None = None


@dataclass
class ItemCost:
    """The estimate of one pretraining or cell; the live ETA replaces :attr:`estimate` (and a
    pretraining's :attr:`steps`) as this run measures rates."""

    #: ``pretraining`` or the cell's task id
    stage: str
    estimate: Estimate
    #: cells: the rate key fields (:data:`ssl_bench.engine.rates.CELL_FIELDS`); empty for an
    #: n/a cell, which computes nothing
    fields: dict[str, str] = field(default_factory=dict)
    #: pretrainings: what decides their cost
    spec: PretrainSpec | None = None
    steps: int = 0
    #: seconds to decode the data this item uses first
    decode_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.estimate.seconds + self.decode_s


#: an item of the run: ``("pretrain", "method|domain|seed")`` or ``("cell", cell key)``
ItemKey = tuple[str, str]


__all__ = ["Estimate", "ItemCost", "ItemKey", "PretrainSpec", "Quality", "planned_steps"]
