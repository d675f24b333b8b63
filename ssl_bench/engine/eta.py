"""The live ETA of a running sweep: the sum of the estimates of the work left, never elapsed
time over cells done.

:class:`EtaTracker` follows the items of the plan's estimate (:mod:`ssl_bench.engine.estimate`):
the running pretraining goes at its live seconds per step; an item without a measured rate
takes the nearest rate this run has measured as items finish; cells measured by earlier runs
are scaled by how fast this run's cells go compared with them (a factor shrunk towards 1 by
:data:`PRIOR_ITEMS` cells' worth of the earlier prediction); pretrainings and cells spread over
``--jobs`` processes.

The run owns its tracker; the display (which feeds it the items' events) and the workers
(which order their queue by it) see it through the :class:`Eta` interface. A run makes it
whatever the console shows: ``--quiet`` silences the display, not the schedule.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Protocol

from ssl_bench.engine.cost import ItemCost, ItemKey
from ssl_bench.engine.estimate import RunEstimate, spread

#: how many cells' worth of weight the earlier runs' speed keeps against this run's
PRIOR_ITEMS = 2.0


@dataclass
class _Running:
    start: float
    #: pretraining: (first step seen, its time), last (step, time), steps in all
    first: tuple[int, float] | None = None
    last: tuple[int, float] | None = None
    total: int = 0


class Eta(Protocol):
    """The run's ETA as the display and the workers use it: items start, step (pretraining) and
    finish; the seconds left of an item and of the run."""

    def start(self, kind: str, key: str) -> None: ...

    def step(self, kind: str, key: str, done: int, total: int) -> None: ...

    def finish(self, kind: str, key: str, seconds: float | None = None,
               learn: bool = True) -> float: ...

    def item_remaining(self, kind: str, key: str) -> float | None: ...

    def cell_task(self, key: str) -> str | None: ...

    def task_timed(self, key: str) -> bool | None: ...

    def remaining(self) -> float: ...

    def basis(self) -> str: ...


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
        #: every item's cost, by (kind, key); the costs are the plan items' own, re-estimated
        #: here as the run measures rates
        self.items: dict[ItemKey, ItemCost] = dict(estimate.costs)
        self.pending: dict[ItemKey, ItemCost] = dict(self.items)
        self.running: dict[ItemKey, _Running] = {}
        #: ``task|protocol`` of the cells finished in any status (a failed cell's time is not
        #: learned, but its task has had its early cell: :meth:`task_timed`)
        self.finished_tasks: set[str] = set()
        #: earlier runs' predictions against this run's seconds, for the speed factor
        self.stored_predicted = 0.0
        self.stored_actual = 0.0
        stored = [c.seconds for (kind, _key), c in estimate.costs.items() if kind == "cell"
                  and c.estimate.quality != "guess" and not c.estimate.from_run and c.seconds > 0]
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
        if kind == "cell" and item is not None and item.fields:
            self.finished_tasks.add(self._task(item))
        if seconds is None or seconds <= 0:
            seconds = self.clock() - run.start if run is not None else 0.0
        if item is None or not learn:
            return seconds
        if kind == "cell" and item.estimate.quality != "guess" \
                and not item.estimate.from_run:
            self.stored_predicted += item.seconds
            self.stored_actual += seconds
        if kind == "cell" and item.fields:
            self.estimator.learn_cell(item.fields, seconds)
        elif kind == "pretrain" and item.spec is not None and run is not None \
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
        for (kind, _key), item in self.pending.items():
            if item.estimate.quality == "measured" and not item.estimate.from_run:
                continue  # measured for exactly this item: kept (the speed factor scales it)
            if kind == "cell" and item.fields:
                item.estimate = self.estimator.cell(item.fields)
            elif kind == "pretrain" and item.spec is not None:
                item.estimate, item.steps = self.estimator.pretraining(item.spec)

    def item_seconds(self, item: ItemCost) -> float:
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

    def cell_task(self, key: str) -> str | None:
        """``task|protocol`` of cell ``key``, as its rate is keyed; None when ``key`` is not a
        cell of the plan that computes something."""
        item = self.items.get(("cell", key))
        if item is None or not item.fields:
            return None
        return self._task(item)

    @staticmethod
    def _task(item: ItemCost) -> str:
        return f"{item.fields.get('task', '')}|{item.fields.get('protocol', '')}"

    def task_timed(self, key: str) -> bool | None:
        """Whether a cell of the task of cell ``key`` has been timed, by an earlier run or by
        this one (:meth:`~ssl_bench.engine.estimate.Estimator.task_timed`), or has finished in
        this run in any status (a failed cell teaches no time, but its task has had its turn);
        None when ``key`` is not a cell of the plan that computes something."""
        item = self.items.get(("cell", key))
        if item is None or not item.fields:
            return None
        return self._task(item) in self.finished_tasks or self.estimator.task_timed(item.fields)

    def remaining(self) -> float:
        """Seconds left of the whole run: the work left shared over ``jobs`` processes, never
        less than the longest item left (see :func:`ssl_bench.engine.estimate.spread`)."""
        return spread([max(0.0, self.item_remaining(kind, key) or 0.0)
                       for (kind, key) in self.pending], self.jobs)

    def basis(self) -> str:
        """What the remaining time rests on, e.g. ``12 measured, 3 related, 1 guess``."""
        counts: dict[str, int] = defaultdict(int)
        for (kind, _key), item in self.pending.items():
            if kind == "pretrain" or item.fields:  # n/a cells cost nothing
                counts[item.estimate.quality] += 1
        return ", ".join(f"{counts[q]} {q}" for q in ("measured", "related", "guess")
                         if counts[q]) or "nothing left"


__all__ = ["Eta", "EtaTracker", "PRIOR_ITEMS"]
