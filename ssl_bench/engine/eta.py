"""The live ETA of a running sweep: the sum of the estimates of the work left, never elapsed
time over cells done.

:class:`EtaTracker` follows the items of the plan's estimate (:mod:`ssl_bench.engine.estimate`):
the running pretraining goes at its live seconds per step; an item without a measured rate
takes the nearest rate this run has measured as items finish; cells measured by earlier runs
are scaled by how fast this run's cells go compared with them (a factor shrunk towards 1 by
:data:`PRIOR_ITEMS` cells' worth of the earlier prediction); pretrainings and cells spread over
``--jobs`` processes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from ssl_bench.engine.estimate import RunEstimate, WorkItem, spread

#: how many cells' worth of weight the earlier runs' speed keeps against this run's
PRIOR_ITEMS = 2.0


@dataclass
class _Running:
    start: float
    #: pretraining: (first step seen, its time), last (step, time), steps in all
    first: tuple[int, float] | None = None
    last: tuple[int, float] | None = None
    total: int = 0


class EtaTracker:
    """The run's remaining seconds, from the estimate of each item not finished yet.

    ``start``/``step``/``finish`` follow the items (pretrainings by ``method|domain|seed``,
    cells by key); ``remaining()`` adds up what is left: the running pretraining at its live
    seconds per step, every other item at its estimate, all spread over ``jobs`` processes."""

    def __init__(self, estimate: RunEstimate, clock: Callable[[], float] = time.perf_counter
                 ) -> None:
        self.clock = clock
        self.estimator = estimate.estimator
        self.jobs = estimate.jobs
        self.items: dict[tuple[str, str], WorkItem] = {(i.kind, i.key): i for i in estimate.items}
        self.pending: dict[tuple[str, str], WorkItem] = dict(self.items)
        self.running: dict[tuple[str, str], _Running] = {}
        #: earlier runs' predictions against this run's seconds, for the speed factor
        self.stored_predicted = 0.0
        self.stored_actual = 0.0
        stored = [i.seconds for i in estimate.items if i.kind == "cell"
                  and i.estimate.quality != "guess" and not i.estimate.from_run and i.seconds > 0]
        self.prior_s = PRIOR_ITEMS * (sum(stored) / len(stored)) if stored else 0.0

    # -- events -----------------------------------------------------------------------------
    def start(self, kind: str, key: str) -> None:
        if (kind, key) in self.pending:
            self.running[(kind, key)] = _Running(self.clock())

    def step(self, kind: str, key: str, done: int, total: int) -> None:
        """A pretraining reached step ``done`` of ``total``."""
        run = self.running.get((kind, key))
        if run is None:
            return
        now = self.clock()
        if run.first is None:
            run.first = (done, now)
        run.last, run.total = (done, now), total

    def finish(self, kind: str, key: str, seconds: float | None = None,
               learn: bool = True) -> float:
        """An item is done (``seconds``: its own time, else the time since ``start``); returns
        the seconds counted for it. ``learn=False`` (a failed or skipped item): its time says
        nothing about the others."""
        item = self.pending.pop((kind, key), None)
        run = self.running.pop((kind, key), None)
        if seconds is None or seconds <= 0:
            seconds = self.clock() - run.start if run is not None else 0.0
        if item is None or not learn:
            return seconds
        if item.kind == "cell" and item.estimate.quality != "guess" \
                and not item.estimate.from_run:
            self.stored_predicted += item.seconds
            self.stored_actual += seconds
        if item.kind == "cell" and item.fields:
            self.estimator.learn_cell(item.fields, seconds)
        elif item.kind == "pretrain" and item.spec is not None and run is not None \
                and run.first is not None and run.last is not None and run.last[0] > run.first[0]:
            per_step = (run.last[1] - run.first[1]) / (run.last[0] - run.first[0])
            self.estimator.learn_pretraining(item.spec, per_step)
        self._reestimate()
        return seconds

    # -- the estimate -----------------------------------------------------------------------
    def speed_factor(self) -> float:
        """This run's seconds over the earlier runs' predictions for the cells finished, shrunk
        towards 1 by :data:`PRIOR_ITEMS` cells' worth of prediction. (Pretrainings run at their
        live pace; their seconds outside the steps make them a poor gauge of speed.)"""
        if self.stored_predicted <= 0:
            return 1.0
        return (self.stored_actual + self.prior_s) / (self.stored_predicted + self.prior_s)

    def _reestimate(self) -> None:
        for item in self.pending.values():
            if item.estimate.quality == "measured" and not item.estimate.from_run:
                continue  # measured for exactly this item: kept (the speed factor scales it)
            if item.kind == "cell" and item.fields:
                item.estimate = self.estimator.cell(item.fields)
            elif item.kind == "pretrain" and item.spec is not None:
                item.estimate, item.steps = self.estimator.pretraining(item.spec)

    def item_seconds(self, item: WorkItem) -> float:
        """An item's estimate now (earlier runs' rates scaled by :meth:`speed_factor`)."""
        scale = (self.speed_factor() if item.estimate.quality != "guess"
                 and not item.estimate.from_run else 1.0)
        return item.estimate.seconds * scale + item.decode_s

    def item_remaining(self, kind: str, key: str) -> float | None:
        """Seconds left of a running or pending item (None when unknown to the plan)."""
        item = self.pending.get((kind, key))
        if item is None:
            return None
        run = self.running.get((kind, key))
        if run is None:
            return self.item_seconds(item)
        if run.first is not None and run.last is not None and run.last[0] > run.first[0]:
            per_step = (run.last[1] - run.first[1]) / (run.last[0] - run.first[0])
            return per_step * max(0, run.total - run.last[0])
        return max(0.0, self.item_seconds(item) - (self.clock() - run.start))

    def remaining(self) -> float:
        """Seconds left of the whole run: the work left shared over ``jobs`` processes, never
        less than the longest item left (see :func:`ssl_bench.engine.estimate.spread`)."""
        return spread([max(0.0, self.item_remaining(kind, key) or 0.0)
                       for (kind, key) in self.pending], self.jobs)

    def basis(self) -> str:
        """What the remaining time rests on, e.g. ``12 measured, 3 related, 1 guess``."""
        counts: dict[str, int] = defaultdict(int)
        for item in self.pending.values():
            if item.kind == "pretrain" or item.fields:  # n/a cells cost nothing
                counts[item.estimate.quality] += 1
        return ", ".join(f"{counts[q]} {q}" for q in ("measured", "related", "guess")
                         if counts[q]) or "nothing left"


__all__ = ["EtaTracker", "PRIOR_ITEMS"]
