"""The console of ``ssl-bench run``: what is running, how far it has got, and the run's ETA.

* On a terminal: one live rich display, a bar of the cells with the run's ETA and a bar of
  the running stage (pretraining steps with loss, img/s and ETA; a cell's feature extraction
  and training epochs).
* In a log (not a terminal): plain lines, one per finished cell and one every ``every_s``
  seconds during a long stage.
* ``--quiet``: nothing but failures. Failures are always printed, with their one-line reason
  (``--debug`` adds the traceback).

The run's ETA comes from the plan's per-item estimates, never from elapsed time over cells
done: the run hands its tracker (:class:`ssl_bench.engine.eta.EtaTracker`) to the display as
an :class:`~ssl_bench.engine.eta.Eta`, and the display feeds it the items' events (whether or
not it prints anything). With ``--jobs N`` pretrainings and cells
run in worker processes (:mod:`ssl_bench.engine.workers`), whose events arrive here: every
running item has its own stage bar (its own status lines in a log). rich is imported only
here, and only for a terminal.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, TextIO

from ssl_bench.engine.cost import ItemKey
from ssl_bench.engine.estimate import clock_text

if TYPE_CHECKING:
    from ssl_bench.engine.cells import CellOutcome
    from ssl_bench.engine.eta import Eta
    from ssl_bench.engine.plan import Cell, Pretraining

#: statuses whose seconds say how long a cell takes (the others computed nothing)
_TIMED = ("ok",)

@dataclass
class _Item:
    """A running pretraining (``("pretrain", "method|domain|seed")``) or cell
    (``("cell", key)``)."""

    label: str
    start: float
    #: the running stage: (name, done, total, extras), and its first report (done, time)
    stage: tuple[str, int, int, Mapping[str, Any]] | None = None
    stage_first: tuple[int, float] | None = None
    #: the last status line of this item in a log
    last_line: float = 0.0
    #: its rich task (terminal display)
    bar: Any = None


class Display:
    """rich progress on a terminal, plain lines otherwise, nothing with ``quiet`` (failures are
    always printed). ``live`` forces the terminal display on or off (default: whether
    ``stream`` is a terminal); ``clock`` and ``every_s`` are there for tests."""

    def __init__(self, quiet: bool, debug: bool = False, *, stream: TextIO | None = None,
                 live: bool | None = None, every_s: float = 30.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.quiet = quiet
        self.debug = debug
        self.stream = stream if stream is not None else sys.stderr
        self.live = not quiet and (live if live is not None else _isatty(self.stream))
        self.every_s = every_s
        self.clock = clock
        self.total = 0
        self.counts: dict[str, int] = defaultdict(int)
        self.start = clock()
        #: the run's ETA (None: no estimate), fed with every item's events
        self.run_eta: Eta | None = None
        #: the items running now, in the order they started
        self.items: dict[ItemKey, _Item] = {}
        self.last_line = self.start
        self._last_eta = -1.0
        self._eta_text = ""
        self.progress_bars: Any = None
        self._run_task: Any = None

    # ---- life cycle ---------------------------------------------------------------------
    def begin(self, total: int, eta: Eta | None = None, pretraining_runs: int = 0) -> None:
        """Start counting ``total`` cells; ``eta``: the run's ETA (None: no estimate);
        ``pretraining_runs``: how many pretrainings the run computes (cached ones not)."""
        self.total = total
        self.start = self.last_line = self.clock()
        self.run_eta = eta
        if self.quiet:
            return
        if eta is not None:
            self.print(f"run: {total} cells and {pretraining_runs} pretraining runs to compute; "
                       f"estimated {clock_text(eta.remaining())} ({self._basis()})")
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress_bars = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=28), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), console=Console(file=self.stream),
                refresh_per_second=4, transient=False)
            self._run_task = self.progress_bars.add_task("cells", total=max(1, total),
                                                         info=self._run_info())
            self.progress_bars.start()

    def stop(self) -> None:
        if self.progress_bars is not None:
            self.progress_bars.stop()
            self.progress_bars = None

    # ---- messages -------------------------------------------------------------------------
    def print(self, message: str, always: bool = False) -> None:
        if self.quiet and not always:
            return
        if self.progress_bars is not None:
            self.progress_bars.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=self.stream, flush=True)
        self.last_line = self.clock()

    def log(self, message: str) -> None:
        self.print(message)

    # ---- items ----------------------------------------------------------------------------
    def pretraining(self, run: "Pretraining") -> None:
        """A pretraining starts (in this process or a worker)."""
        self._begin_item(("pretrain", run.key), f"pretraining {run.label}")

    def pretrained(self, run: "Pretraining", ok: bool, steps: int | None = None,
                   seconds: float | None = None) -> None:
        """A pretraining ended; ``steps``: how many it ran (default: its last report),
        ``seconds``: how long it took where it ran (default: since it started here)."""
        key = ("pretrain", run.key)
        item = self.items.get(key)
        if self.run_eta is not None:
            self.run_eta.finish("pretrain", key[1], learn=ok)
        if item is not None:
            if steps is None and item.stage is not None and item.stage[0] == "pretrain":
                steps = item.stage[1]
            if seconds is None:
                seconds = self.clock() - item.start
            if ok and steps:
                self.print(f"{item.label}: {steps} steps in {seconds:.0f} s"
                           f"{self._eta_suffix(force=True)}")
        self._end_item(key)

    def running(self, cell: "Cell") -> None:
        """A cell starts (in this process or a worker)."""
        self.running_key(cell.key)

    def running_key(self, key: str) -> None:
        self._begin_item(("cell", key), key)

    def done(self, cell: "Cell", outcome: "CellOutcome") -> None:
        self.counts[outcome.status] += 1
        if self.run_eta is not None:
            self.run_eta.finish("cell", cell.key, outcome.seconds,
                                learn=outcome.status in _TIMED)
        self._end_item(("cell", cell.key))
        if outcome.status == "failed":
            self.print(f"failed  {cell.key}: {outcome.error}", always=True)
            if self.debug and outcome.traceback:
                self.print(outcome.traceback.rstrip(), always=True)
        if self.quiet:
            return
        n = sum(self.counts.values())
        if self.progress_bars is not None:
            self.progress_bars.update(self._run_task, completed=n, info=self._run_info(True))
        else:
            print(f"[{n}/{self.total}] {outcome.status:7s} {cell.key}  "
                  f"({outcome.seconds:.1f} s{self._eta_suffix(force=True)})",
                  file=self.stream, flush=True)
            self.last_line = self.clock()

    # ---- the progress channel (ssl_bench.api.Progress) ------------------------------------
    def progress(self, stage: str, done: int, total: int, extras: Mapping[str, Any],
                 item: ItemKey | None = None) -> None:
        """Pretraining steps and a cell's stages, reported from inside them; ``item``: which
        running item reports (default: the one started last, i.e. the only one in a run
        without workers)."""
        key = item if item is not None else self._latest()
        running = self.items.get(key) if key is not None else None
        if running is None or key is None:
            return
        now = self.clock()
        if running.stage is None or running.stage[0] != stage or done < running.stage[1]:
            running.stage_first = (done, now)
        running.stage = (stage, done, total, dict(extras))
        if self.run_eta is not None and stage == "pretrain":
            self.run_eta.step(key[0], key[1], done, total)
        if self.quiet:
            return
        if self.progress_bars is not None:
            self.progress_bars.update(running.bar, description=f"{_short(running.label)} {stage}",
                                      total=max(1, total), completed=done,
                                      info=self._stage_info(item=key), visible=True)
            self.progress_bars.update(self._run_task, info=self._run_info())
        elif now - running.last_line >= self.every_s:
            running.last_line = now
            self.print(f"{running.label}: {stage} {done}/{total}"
                       f"{self._stage_info(', ', item=key)}{self._eta_suffix(force=True)}")

    # ---- text -------------------------------------------------------------------------------
    def _latest(self) -> ItemKey | None:
        return next(reversed(self.items), None) if self.items else None

    def _begin_item(self, key: ItemKey, label: str) -> None:
        now = self.clock()
        running = _Item(label, now, last_line=now)
        self.items[key] = running
        if self.run_eta is not None:
            self.run_eta.start(*key)
        if self.progress_bars is not None:
            running.bar = self.progress_bars.add_task(_short(label), total=1, info="")
            self.progress_bars.update(self._run_task, info=self._run_info(True))

    def _end_item(self, key: ItemKey) -> None:
        running = self.items.pop(key, None)
        if self.progress_bars is not None:
            if running is not None and running.bar is not None:
                self.progress_bars.remove_task(running.bar)
            self.progress_bars.update(self._run_task, info=self._run_info(True))

    def _item(self, item: ItemKey | None) -> _Item | None:
        key = item if item is not None else self._latest()
        return self.items.get(key) if key is not None else None

    def images_per_s(self, item: ItemKey | None = None) -> float | None:
        """Pretraining samples per second since the stage's first report (default item: the
        one started last)."""
        running = self._item(item)
        if running is None or running.stage is None or running.stage_first is None \
                or "batch" not in running.stage[3]:
            return None
        steps = running.stage[1] - running.stage_first[0]
        elapsed = self.clock() - running.stage_first[1]
        return steps * float(running.stage[3]["batch"]) / elapsed if steps > 0 and elapsed > 0 \
            else None

    def stage_eta(self, item: ItemKey | None = None) -> float | None:
        """Seconds left of an item's running stage, at its own pace so far."""
        running = self._item(item)
        if running is None or running.stage is None or running.stage_first is None:
            return None
        _name, done, total, _extras = running.stage
        steps = done - running.stage_first[0]
        elapsed = self.clock() - running.stage_first[1]
        return elapsed / steps * max(0, total - done) if steps > 0 else None

    def _stage_info(self, lead: str = "", item: ItemKey | None = None) -> str:
        running = self._item(item)
        if running is None or running.stage is None:
            return ""
        parts = []
        loss = running.stage[3].get("loss")
        if isinstance(loss, (int, float)):
            parts.append(f"loss {loss:.4g}")
        rate = self.images_per_s(item)
        if rate is not None:
            parts.append(f"{rate:,.0f} img/s")
        eta = self.stage_eta(item)
        if eta is not None:
            parts.append(f"ETA {clock_text(eta)}")
        return (lead + ", ".join(parts)) if parts else ""

    def _basis(self) -> str:
        return self.run_eta.basis() if self.run_eta is not None else ""

    def eta(self) -> float | None:
        """Seconds left of the run (None without an estimate)."""
        return self.run_eta.remaining() if self.run_eta is not None else None

    def _eta_suffix(self, force: bool = False) -> str:
        if self.run_eta is None:
            return ""
        now = self.clock()
        if force or now - self._last_eta >= 0.5:
            self._last_eta = now
            self._eta_text = f"run ETA {clock_text(self.run_eta.remaining())}"
        return f"; {self._eta_text}"

    def _run_info(self, force: bool = False) -> str:
        counts = [f"{status} {self.counts[status]}" for status in ("ok", "n/a", "failed",
                                                                    "skipped")
                  if self.counts[status] or status == "ok"]
        eta = self._eta_suffix(force)
        return "  ".join(counts) + (f"  {eta[2:]}" if eta else "")


def _short(text: str, width: int = 36) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


__all__ = ["Display"]
