"""Worker processes of ``ssl-bench run --jobs N``: pretrainings and cells spread over N
processes, each cell after the pretraining it needs.

What runs where:

* the parent carries out the run's plan (:class:`ssl_bench.engine.work.WorkPlan`), keeps the
  order, and shows the live display; every pretraining and every cell of the plan runs in one
  of ``N`` worker processes (``spawn``), each with ``cores // N`` torch threads;
* the order is list scheduling on the estimates: the pretrainings first (they unblock
  cells), then the cells whose pretraining is done (or that need none), longest first, so
  that a long cell does not start alone at the end; at most ``N`` items are handed out at a
  time, so the order holds. The estimates are the run's live ETA's (handed in as an
  :class:`~ssl_bench.engine.eta.Eta`, with or without ``--quiet``), re-read at every hand-out:
  they learn from the items finished, which matters on a machine that has measured nothing
  yet, where every cell starts as the same guess; there, one cell of each task goes before
  the pretrainings (the first of its cells that is ready: :func:`scout_cells`), so the
  estimate has each task's own cell time within minutes rather than after the pretraining
  phase;
* a cell does not start beside a running cell of the same method and benchmark while another
  ready item can (:func:`next_item`): the first of them computes the frozen encoder's
  features that the others then read from the cache, and two at once would both compute them
  (in the default run seeds 0 and 1 of every checkpoint did: 380 s of feature extraction
  in all, 264 s since);
* a pretraining's result (its checkpoint in the cache, its seconds, its health figures) goes
  with each of its cells, so the cells' records say what an in-process run's say; a failed
  pretraining is run once and its cells become failed records with its reason and traceback;
* workers report the start of an item, pretraining steps, a cell's stages and log lines on a
  queue; the parent feeds them to :class:`~ssl_bench.engine.display.Display`;
* a worker ends itself when its parent is gone (:func:`exit_with_parent`): a parent killed by
  a signal (``kill``, a scheduler's time limit) runs no clean-up, and its workers would
  otherwise go on computing items nobody collects. What they had not finished is not read
  back: records and caches are written atomically.

Records do not depend on which worker ran what, nor on the order: a cell seeds itself, feature
caches are content-addressed and written atomically. One exception is known: a mask-task cell
that reads some of its frozen maps from the cache (a checkpoint with several label settings, a
resumed run) can differ in the last digits from the same cell computing them, although the maps
are the same bits; in the default run every cell computes its own. Records may differ in the
last bits from an in-process run with another number of torch threads (the environment in each
record says how many threads computed it).
"""

from __future__ import annotations

import importlib
import os
import queue
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ssl_bench.engine.cells import CellOutcome, process_cell
from ssl_bench.engine.context import PretrainFailure, SweepContext, error_line
from ssl_bench.engine.cost import ItemKey
from ssl_bench.engine.plan import Pretraining, RunOptions, resolve_data
from ssl_bench.engine.pretrain import PretrainResult
from ssl_bench.engine.work import CellItem, PretrainItem, WorkItem, WorkPlan
from ssl_bench.environment import available_cores
from ssl_bench.errors import SSLBenchError
from ssl_bench.plugins import get_registries

if TYPE_CHECKING:
    from ssl_bench.engine.display import Display
    from ssl_bench.engine.eta import Eta

PluginSetup = tuple[list[str], list[tuple[str, str, Any]]]


# ---- a worker's view of the run ----------------------------------------------------------


def plugin_setup() -> PluginSetup:
    """What another process needs to see this process's plugins: the entry points loaded here
    and the plugins registered by hand (``register_plugin``: tests, ``--checkpoint``), which
    entry points cannot find. Modules travel by name, other plugin objects by pickle."""
    from ssl_bench.plugins import get_plugin_manager, loaded_plugins

    pm = get_plugin_manager()
    entry_points, by_hand = [], []
    for info in loaded_plugins():
        if info.version != "local":
            entry_points.append(info.name)
            continue
        plugin = pm.get_plugin(info.name)
        by_hand.append((info.name, info.distribution,
                        plugin.__name__ if isinstance(plugin, type(sys)) else plugin))
    return entry_points, by_hand


def worker_context(options: RunOptions, threads: int, setup: PluginSetup = ([], []),
                   log: Callable[[str], None] = lambda _m: None) -> SweepContext:
    """A sweep context in another process, with the same plugins as the parent and the data
    the parent resolved (the synthetic suite is not written again)."""
    from ssl_bench import plugins

    torch.set_num_threads(threads)
    entry_points, by_hand = setup
    if entry_points or by_hand:  # the same registries as the parent process
        os.environ["SSL_BENCH_LOAD_PLUGINS"] = ",".join(entry_points)
        plugins.reset()
        for name, distribution, plugin in by_hand:
            plugins.register_plugin(importlib.import_module(plugin) if isinstance(plugin, str)
                                    else plugin, name, distribution)
    regs = get_registries()
    benchmarks = [regs.benchmarks.get(b) for b in options.pool_benchmark_ids]
    sources = resolve_data(options, benchmarks, regs, write_synthetic=False)
    return SweepContext(options, regs, sources, log=log)


def threads_per_worker(jobs: int) -> int:
    """Torch threads of each of ``jobs`` workers: the cores shared out, at least 1."""
    return max(1, available_cores() // max(1, jobs))


# ---- what comes back ----------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainOutcome:
    result: PretrainResult | None
    failure: PretrainFailure | None
    #: the worker's wall seconds for it (pool loading and health included)
    seconds: float = 0.0


# ---- inside a worker -----------------------------------------------------------------------

_CTX: SweepContext | None = None
_EVENTS: Any = None
_ITEM: ItemKey | None = None


def exit_with_parent(parent_pid: int, interval: float = 1.0) -> threading.Thread:
    """Start a daemon thread that ends this process (exit status 1) once ``parent_pid`` is no
    longer its parent, checked at once and then every ``interval`` seconds: an orphan is
    re-parented, so ``os.getppid()`` changes when the parent dies, however it died. The parent
    hands its pid over, so a parent that died before the worker started is noticed too."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="ssl-bench-exit-with-parent", daemon=True)
    thread.start()
    return thread


def _init(options: RunOptions, threads: int, setup: PluginSetup, events: Any,
          parent_pid: int) -> None:
    global _CTX, _EVENTS
    exit_with_parent(parent_pid)
    _EVENTS = events
    _CTX = worker_context(options, threads, setup, _send_log)
    _CTX.progress = _send_progress


def _send_log(message: str) -> None:
    _EVENTS.put(("log", _ITEM, message))


def _send_progress(stage: str, done: int, total: int, extras: Any) -> None:
    plain = {k: v for k, v in dict(extras).items() if isinstance(v, (int, float, str))}
    _EVENTS.put(("progress", _ITEM, (stage, int(done), int(total), plain)))


def _begin(kind: str, key: str) -> SweepContext:
    global _ITEM
    assert _CTX is not None, "worker not initialised"
    _ITEM = (kind, key)
    _EVENTS.put(("start", _ITEM, None))
    return _CTX


def _pretrain_in_worker(item: PretrainItem) -> PretrainOutcome:
    ctx = _begin("pretrain", item.key)
    start = time.perf_counter()
    try:
        result = ctx.pretrain(item.run)
        return PretrainOutcome(result, None, time.perf_counter() - start)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        failure = ctx.pretrain_errors.get(item.run)
        return PretrainOutcome(None, failure or PretrainFailure(error_line(exc),
                                                                traceback.format_exc()),
                               time.perf_counter() - start)


def _cell_in_worker(item: CellItem, pretraining: PretrainOutcome | None) -> CellOutcome:
    ctx = _begin("cell", item.key)
    if item.needs is not None and pretraining is not None:
        # what the parent learnt from the pretraining's worker: the same record fields as
        # an in-process run (its seconds and health), and a failure is not run again here
        if pretraining.result is not None:
            ctx.pretrained[item.needs] = pretraining.result
        elif pretraining.failure is not None:
            ctx.pretrain_errors[item.needs] = pretraining.failure
    return process_cell(ctx, item.cell)


# ---- the parent ------------------------------------------------------------------------------


def schedule_order(pretrainings: list[PretrainItem], cells: list[CellItem],
                   seconds: dict[ItemKey, float]) -> list[WorkItem]:
    """The order items are handed out when ready: pretrainings, then cells, each longest
    first by the estimate (ties and unknowns keep the plan's order)."""
    def by_cost(items: list[Any]) -> list[Any]:
        return sorted(items, key=lambda i: -seconds.get((i.kind, i.key), 0.0))

    return [*by_cost(pretrainings), *by_cost(cells)]


def scout_cells(waiting: list[WorkItem], eta: Eta, running: Sequence[WorkItem] = ()
                ) -> list[CellItem]:
    """The cells of every task that no cell has timed yet (:meth:`Eta.task_timed`) and that
    has no cell running, in the plan's order. They go before the pretrainings, so that the
    first ready one of each such task runs early and its time replaces the guess every cell
    of its task starts with (on a machine without kept rates the estimate of a default run
    rests on that guess until a cell finishes, i.e. for the whole of the pretraining phase)."""
    busy = {eta.cell_task(i.key) for i in running if isinstance(i, CellItem)}
    return [i for i in waiting if isinstance(i, CellItem)
            and eta.task_timed(i.key) is False and eta.cell_task(i.key) not in busy]


def live_order(waiting: list[WorkItem], eta: Eta, running: Sequence[WorkItem] = ()
               ) -> list[WorkItem]:
    """:func:`schedule_order` of the items waiting by the live ETA's estimates, which learn
    from the items finished (on a machine without measured rates every cell starts as the
    same guess, and the plan's order would stand), after the :func:`scout_cells` of the tasks
    no cell has timed yet."""
    now: dict[ItemKey, float] = {(i.kind, i.key): eta.item_remaining(i.kind, i.key) or 0.0
                                 for i in waiting}
    scouts = scout_cells(waiting, eta, running)
    rest = schedule_order([i for i in waiting if isinstance(i, PretrainItem)],
                          [i for i in waiting if isinstance(i, CellItem)], now)
    chosen = {i.key for i in scouts}
    return [*scouts, *[i for i in rest if not (isinstance(i, CellItem) and i.key in chosen)]]


def next_item(waiting: list[WorkItem], ready: Callable[[WorkItem], bool],
              running: list[WorkItem]) -> WorkItem | None:
    """The first ready item of ``waiting`` (in schedule order) that is not a cell of a
    feature group already running; when every ready item is, the first ready one (a worker
    is not left idle). None when nothing is ready."""
    busy = {i.feature_group for i in running if isinstance(i, CellItem)}
    first = None
    for item in waiting:
        if not ready(item):
            continue
        if not (isinstance(item, CellItem) and item.feature_group in busy):
            return item
        first = first or item
    return first


def run_in_workers(plan: WorkPlan, display: Display, eta: Eta | None, jobs: int,
                   setup: PluginSetup) -> list[str]:
    """Carry out the plan's pretrainings and cells over ``jobs`` worker processes; returns the
    failed cells' lines (``key: reason``). The order is :func:`live_order` by the run's ETA
    (the plan's estimate until items finish); without one, the plan's order."""
    waiting: list[WorkItem] = plan.items
    by_key: dict[ItemKey, WorkItem] = {(i.kind, i.key): i for i in waiting}
    outcomes: dict[Pretraining, PretrainOutcome] = {}
    failures: list[str] = []
    spawn = get_context("spawn")
    events = spawn.Queue()
    in_flight: dict[Future[Any], WorkItem] = {}
    pool = ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_init,
                               initargs=(plan.options, threads_per_worker(jobs), setup, events,
                                         os.getpid()))

    def ready(item: WorkItem) -> bool:
        return isinstance(item, PretrainItem) or item.needs is None or item.needs in outcomes

    def hand_out() -> None:
        while len(in_flight) < jobs:
            if eta is not None:
                waiting[:] = live_order(waiting, eta, list(in_flight.values()))
            item = next_item(waiting, ready, list(in_flight.values()))
            if item is None:
                return
            waiting.remove(item)
            if isinstance(item, PretrainItem):
                in_flight[pool.submit(_pretrain_in_worker, item)] = item
            else:
                dep = outcomes.get(item.needs) if item.needs is not None else None
                in_flight[pool.submit(_cell_in_worker, item, dep)] = item

    def drain() -> None:
        while True:
            try:
                kind, item, payload = events.get_nowait()
            except queue.Empty:
                return
            forward_event(display, kind, by_key.get(item) if item is not None else None,
                          payload)

    try:
        hand_out()
        while in_flight:
            done, _ = wait(list(in_flight), timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                item = in_flight.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    raise SSLBenchError(
                        f"a worker process died while running {item.key} (out of memory?); "
                        "the records written so far stand: run again to resume, with "
                        "--jobs 1 for a single process") from None
                if isinstance(item, PretrainItem):
                    outcomes[item.run] = outcome
                    display.pretrained(item.run, outcome.failure is None,
                                       steps=outcome.result.steps if outcome.result else None,
                                       seconds=outcome.seconds)
                    if outcome.failure is not None:
                        display.print(f"pretraining {item.label} failed: "
                                      f"{outcome.failure.reason}", always=True)
                        if display.debug:
                            display.print(outcome.failure.traceback, always=True)
                else:
                    display.done(item.cell, outcome)
                    if outcome.status == "failed":
                        failures.append(f"{item.key}: {outcome.error}")
            hand_out()
        drain()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return failures


def forward_event(display: Display, kind: str, item: WorkItem | None, payload: Any) -> None:
    """One worker event on the parent's display; ``item``: the plan's item it is about."""
    if kind == "log":
        display.log(payload)
    elif kind == "start" and item is not None:
        if isinstance(item, PretrainItem):
            display.pretraining(item.run)
        else:
            display.running(item.cell)
    elif kind == "progress" and item is not None:
        stage, done, total, extras = payload
        display.progress(stage, done, total, extras, item=(item.kind, item.key))


__all__ = ["PluginSetup", "PretrainOutcome", "exit_with_parent", "forward_event", "live_order",
           "next_item", "plugin_setup", "run_in_workers", "schedule_order", "scout_cells",
           "threads_per_worker", "worker_context"]
