"""The console of ``ssl-bench run``: what is running, how far it has got, and the run's ETA.

* On a terminal: one live rich display, a bar of the cells with the run's ETA and a bar of
  the running stage (pretraining steps with loss, img/s and ETA; a cell's feature extraction
  and training epochs).
* In a log (not a terminal): plain lines, one per finished cell and one every ``every_s``
  seconds during a long stage.
* ``--quiet``: nothing but failures. Failures are always printed, with their one-line reason
  (``--debug`` adds the traceback).

The run's ETA comes from the plan's per-item estimates (:class:`ssl_bench.engine.eta.
EtaTracker`), never from elapsed time over cells done. With ``--jobs N`` the cells run in
worker processes, which report only their completion. rich is imported only here, and only
for a terminal.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Callable, Mapping, TextIO

from ssl_bench.engine.estimate import RunEstimate, clock_text
from ssl_bench.engine.eta import EtaTracker

if TYPE_CHECKING:
    from ssl_bench.engine.cells import CellOutcome
    from ssl_bench.engine.plan import Cell

#: statuses whose seconds say how long a cell takes (the others computed nothing)
_TIMED = ("ok",)


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
        self.tracker: EtaTracker | None = None
        #: the item running now: ("pretrain", "method|domain") or ("cell", key), and its label
        self.current: tuple[str, str] | None = None
        self.label = ""
        #: the running stage: (name, done, total, extras), and when/where it started
        self.stage: tuple[str, int, int, Mapping[str, Any]] | None = None
        self.stage_first: tuple[int, float] | None = None
        self.last_line = self.start
        self.item_start = self.start
        self._last_eta = -1.0
        self._eta_text = ""
        self.progress_bars: Any = None
        self._run_task: Any = None
        self._stage_task: Any = None

    # ---- life cycle ---------------------------------------------------------------------
    def begin(self, total: int, estimate: RunEstimate | None = None) -> None:
        """Start counting ``total`` cells; ``estimate`` (the plan's) drives the ETA."""
        self.total = total
        self.start = self.last_line = self.clock()
        self.tracker = EtaTracker(estimate, self.clock) if estimate is not None else None
        if self.quiet:
            return
        if estimate is not None:
            runs = sum(1 for i in estimate.items if i.kind == "pretrain")
            self.print(f"run: {total} cells and {runs} pretraining runs to compute; estimated "
                       f"{clock_text(estimate.seconds)} ({self._basis()})")
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress_bars = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=28), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), console=Console(file=self.stream),
                refresh_per_second=4, transient=False)
            self._run_task = self.progress_bars.add_task("cells", total=max(1, total),
                                                         info=self._run_info())
            self._stage_task = self.progress_bars.add_task("", total=1, info="", visible=False)
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
    def pretraining(self, method: str, domain: str) -> None:
        """A pretraining starts (in this process)."""
        self._begin_item("pretrain", f"{method}|{domain}", f"pretraining {method} ({domain})")

    def pretrained(self, method: str, domain: str, ok: bool) -> None:
        key = f"{method}|{domain}"
        seconds = self.clock() - self.item_start
        if self.tracker is not None:
            self.tracker.finish("pretrain", key, learn=ok)
        if ok and self.stage is not None and self.stage[0] == "pretrain":
            self.print(f"{self.label}: {self.stage[1]} steps in {seconds:.0f} s"
                       f"{self._eta_suffix(force=True)}")
        self._end_item()

    def running(self, cell: "Cell") -> None:
        """A cell starts in this process (worker processes report only :meth:`done`)."""
        self._begin_item("cell", cell.key, cell.key)

    def done(self, cell: "Cell", outcome: "CellOutcome") -> None:
        self.counts[outcome.status] += 1
        if self.tracker is not None:
            self.tracker.finish("cell", cell.key, outcome.seconds,
                                learn=outcome.status in _TIMED)
        if self.current == ("cell", cell.key):
            self._end_item()
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
    def progress(self, stage: str, done: int, total: int, extras: Mapping[str, Any]) -> None:
        """Pretraining steps and a cell's stages, reported from inside them."""
        now = self.clock()
        if self.stage is None or self.stage[0] != stage or done < self.stage[1]:
            self.stage_first = (done, now)
        self.stage = (stage, done, total, dict(extras))
        if self.tracker is not None and self.current is not None and stage == "pretrain":
            self.tracker.step(self.current[0], self.current[1], done, total)
        if self.quiet:
            return
        if self.progress_bars is not None:
            self.progress_bars.update(self._stage_task, description=f"{_short(self.label)} {stage}",
                                      total=max(1, total), completed=done,
                                      info=self._stage_info(), visible=True)
            self.progress_bars.update(self._run_task, info=self._run_info())
        elif now - self.last_line >= self.every_s:
            self.print(f"{self.label}: {stage} {done}/{total}{self._stage_info(', ')}"
                       f"{self._eta_suffix(force=True)}")

    # ---- text -------------------------------------------------------------------------------
    def _begin_item(self, kind: str, key: str, label: str) -> None:
        self.current, self.label = (kind, key), label
        self.stage, self.stage_first = None, None
        self.item_start = self.clock()
        if self.tracker is not None:
            self.tracker.start(kind, key)
        if self.progress_bars is not None:
            self.progress_bars.update(self._stage_task, description=_short(label), completed=0,
                                      total=1, info="", visible=True)
            self.progress_bars.update(self._run_task, info=self._run_info(True))

    def _end_item(self) -> None:
        self.current, self.stage, self.stage_first = None, None, None
        if self.progress_bars is not None:
            self.progress_bars.update(self._stage_task, visible=False)
            self.progress_bars.update(self._run_task, info=self._run_info(True))

    def images_per_s(self) -> float | None:
        """Pretraining samples per second since the stage's first report in this process."""
        if self.stage is None or self.stage_first is None or "batch" not in self.stage[3]:
            return None
        steps = self.stage[1] - self.stage_first[0]
        elapsed = self.clock() - self.stage_first[1]
        return steps * float(self.stage[3]["batch"]) / elapsed if steps > 0 and elapsed > 0 \
            else None

    def stage_eta(self) -> float | None:
        """Seconds left of the running stage, at its own pace so far."""
        if self.stage is None or self.stage_first is None:
            return None
        _name, done, total, _extras = self.stage
        steps = done - self.stage_first[0]
        elapsed = self.clock() - self.stage_first[1]
        return elapsed / steps * max(0, total - done) if steps > 0 else None

    def _stage_info(self, lead: str = "") -> str:
        if self.stage is None:
            return ""
        parts = []
        loss = self.stage[3].get("loss")
        if isinstance(loss, (int, float)):
            parts.append(f"loss {loss:.4g}")
        rate = self.images_per_s()
        if rate is not None:
            parts.append(f"{rate:,.0f} img/s")
        eta = self.stage_eta()
        if eta is not None:
            parts.append(f"ETA {clock_text(eta)}")
        return (lead + ", ".join(parts)) if parts else ""

    def _basis(self) -> str:
        return self.tracker.basis() if self.tracker is not None else ""

    def eta(self) -> float | None:
        """Seconds left of the run (None without an estimate)."""
        return self.tracker.remaining() if self.tracker is not None else None

    def _eta_suffix(self, force: bool = False) -> str:
        if self.tracker is None:
            return ""
        now = self.clock()
        if force or now - self._last_eta >= 0.5:
            self._last_eta = now
            self._eta_text = f"run ETA {clock_text(self.tracker.remaining())}"
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
