"""``ssl-bench data``: write the synthetic suite, check, prepare and describe datasets.

``data prepare`` fills the caches of every unit for every requested (size, fps) pair
(:meth:`ssl_bench.api.Dataset.prepare`: a video is decoded once for all of them), ``--jobs``
units at a time in worker processes (see :func:`worker_context`), longest first so that the last
video does not start alone at the end. Workers report the
frames they decode through a queue; one progress display shows units done, frames/s and the
ETA (a rich bar on a terminal, a plain line every 30 s in a log, nothing with ``--quiet``).
The seconds per frame it measured are kept for the estimates of ``ssl-bench run --dry-run``.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import queue as queue_module
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import click

from ssl_bench.engine.estimate import clock_text
from ssl_bench.errors import SSLBenchError

if TYPE_CHECKING:
    from ssl_bench.api import Dataset, Unit


def _dataset(name: str, root: Path, options: tuple[str, ...] = ()) -> Dataset:
    from ssl_bench.plugins import get_registries, load_failure_lines

    for line in load_failure_lines():
        click.echo(f"warning: {line}", err=True)
    cls = get_registries().datasets.get(name)
    if not root.exists():
        raise SSLBenchError(f"dataset root {root} does not exist; pass the folder that holds "
                            f"the {name} files")
    opts = {}
    for item in options:
        if "=" not in item:
            raise SSLBenchError(f"--option {item!r}: use KEY=VALUE, e.g. --option split=40/40")
        key, value = item.split("=", 1)
        opts[key] = value
    return cls(root, opts)


@click.group(name="data")
def data_group() -> None:
    """Write the embedded synthetic suite; check, prepare and describe real datasets.

    \b
    Examples:
      ssl-bench data synth
      ssl-bench data check cholec80 /data/cholec80
      ssl-bench data prepare cholecseg8k /data/cholecseg8k --size 224
      ssl-bench data info btcv /data/btcv
    """


@data_group.command(name="synth")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to write into (default: the user cache dir, printed).")
@click.option("--size", type=click.Choice(["small", "default"]), default="default",
              show_default=True,
              help="small: seconds to write (tests); default: the make-run suite.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth_command(out: Path | None, size: str, seed: int) -> None:
    """Write the synthetic datasets in their real layouts (deterministic in --seed)."""
    from ssl_bench.paths import synthetic_root
    from ssl_bench.synthetic_suite import ensure_synthetic

    root = out or synthetic_root(size)
    written = ensure_synthetic(root, size, seed, log=lambda m: click.echo(m, err=True))
    for name, path in written.items():
        click.echo(f"{name}\t{path}")


@data_group.command(name="check")
@click.argument("name")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--option", "options", multiple=True, help="Reader option KEY=VALUE.")
def check_command(name: str, root: Path, options: tuple[str, ...]) -> None:
    """Validate a dataset layout; every problem is reported with its file (and line)."""
    dataset = _dataset(name, root, options)
    problems = dataset.check()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SSLBenchError(f"{name} at {root}: {len(problems)} problem(s) found (listed above); "
                            "fix them and run `ssl-bench data check` again")
    click.echo(f"{name} at {root}: OK")


class PrepareProgress:
    """What ``data prepare`` shows while it works: units done, work done (frames for videos),
    work/s and the ETA. ``mode``: ``bar`` (a rich bar, for a terminal), ``lines`` (a plain line
    every ``every_s`` seconds and at the end, for logs) or ``quiet`` (nothing)."""

    def __init__(self, label: str, units: int, work: int, unit_word: str, work_word: str,
                 mode: Literal["bar", "lines", "quiet"], every_s: float = 30.0,
                 echo: Callable[[str], None] | None = None) -> None:
        self.label, self.units, self.work = label, units, work
        self.unit_word, self.work_word = unit_word, work_word
        self.mode, self.every_s = mode, every_s
        self.echo = echo or (lambda line: click.echo(line, err=True))
        self.units_done = 0
        self.work_done = 0
        self.start = time.perf_counter()
        self._last_line = self.start
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "PrepareProgress":
        self.start = self._last_line = time.perf_counter()
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[units]}"), _rate_column(self.work_word),
                                 TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=max(1, self.work),
                                            units=self._units_text())
        elif self.mode == "lines":
            self.echo(f"{self.label}: {self.units} {self.unit_word}, {self.work:,} "
                      f"{self.work_word} to do")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self.mode == "lines" and exc[0] is None:
            self.echo(self.line())

    def _units_text(self) -> str:
        return f"{self.units_done}/{self.units} {self.unit_word}"

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.work_done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        left = max(0, self.work - self.work_done)
        eta = clock_text(left / rate) if rate > 0 else "unknown"
        work = ("" if self.work_word == self.unit_word else
                f", {self.work_done:,}/{self.work:,} {self.work_word}")
        return (f"{self.label}: {self._units_text()}{work}, {_rate_text(rate)} "
                f"{self.work_word}/s, ETA {eta}")

    def advance(self, work: int) -> None:
        self.work_done += work
        if self._bar is not None:
            self._bar.update(self._task, advance=work)
        elif self.mode == "lines" and time.perf_counter() - self._last_line >= self.every_s:
            self._last_line = time.perf_counter()
            self.echo(self.line())

    def unit_done(self) -> None:
        self.units_done += 1
        if self._bar is not None:
            self._bar.update(self._task, units=self._units_text())


def _rate_text(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


def _rate_column(word: str) -> Any:
    """A rich progress column: the task's recent speed in ``word``/s."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:,.0f} {word}/s")

    return RateColumn()


@dataclass
class PrepareSummary:
    units: int
    cached_before: int
    work: int
    seconds: float
    jobs: int


_worker_queue: Any = None


def _init_worker(work_queue: Any) -> None:
    global _worker_queue
    _worker_queue = work_queue


def _prepare_in_worker(dataset: "Dataset", unit: "Unit", variants: list[tuple[int, float]],
                       index: int) -> None:
    dataset.prepare(unit, variants, lambda n: _worker_queue.put((index, n)))


def prepare_dataset(dataset: "Dataset", variants: Sequence[tuple[int, float]], jobs: int,
                    mode: Literal["bar", "lines", "quiet"] = "quiet",
                    every_s: float = 30.0) -> PrepareSummary:
    """Fill ``dataset``'s caches of every unit for every (size, fps) pair of ``variants``,
    ``jobs`` units at a time (1: in this process), showing progress as ``mode`` says."""
    started = time.perf_counter()
    variants = list(dict.fromkeys((int(size), float(fps)) for size, fps in variants))
    units = dataset.units()
    costs = [dataset.prepare_cost(u, variants) for u in units]
    todo = sorted((i for i, c in enumerate(costs) if c > 0), key=lambda i: -costs[i])
    jobs = max(1, min(jobs, len(todo)))
    video = dataset.meta.modality == "video"
    progress = PrepareProgress(
        f"preparing {dataset.meta.id}", len(todo), sum(costs[i] for i in todo),
        "videos" if video else "units", "frames" if video else "units", mode, every_s)
    reported = {i: 0 for i in todo}

    def report(index: int, n: int) -> None:
        if index in reported:  # late reports of a finished unit are dropped
            reported[index] += n
            progress.advance(n)

    def finished(index: int) -> None:
        progress.advance(costs[index] - reported.pop(index))  # the container's count was
        progress.unit_done()  # an estimate: settle the unit at exactly its cost

    if jobs == 1:
        with progress:
            for i in todo:
                dataset.prepare(units[i], variants, functools.partial(report, i))
                finished(i)
    else:
        context = worker_context()
        work_queue = context.Queue()
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                 initargs=(work_queue,)) as pool:
            # submitting starts the workers (with fork: all of them, now), before the
            # progress display starts a thread of its own
            futures = {pool.submit(_prepare_in_worker, dataset, units[i], variants, i): i
                       for i in todo}
            with progress:
                _collect(dataset.meta.id, futures, work_queue, report, finished)
    return PrepareSummary(units=len(units), cached_before=len(units) - len(todo),
                          work=sum(costs[i] for i in todo),
                          seconds=time.perf_counter() - started, jobs=jobs)


def worker_context() -> Any:
    """How ``data prepare`` starts its workers: ``fork`` on Linux (instant; the workers run
    only FFmpeg, OpenCV and numpy, and are forked before the parent starts any thread of
    its own), ``spawn`` elsewhere (fork is unsafe on macOS)."""
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def _collect(dataset_id: str, futures: dict[Future[None], int], work_queue: Any,
             report: Callable[[int, int], None], finished: Callable[[int], None]) -> None:
    """Wait for the workers' units, passing on their progress reports as they arrive."""

    def drain() -> None:
        while True:
            try:
                report(*work_queue.get_nowait())
            except queue_module.Empty:
                return

    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                future.result()  # a worker's DataError is raised here
                finished(futures[future])
    except BrokenProcessPool:
        raise SSLBenchError(f"a `data prepare` worker process of {dataset_id} died (out of "
                            "memory, or a crash in FFmpeg); run again with --jobs 1 to see "
                            "which unit fails") from None
    finally:
        for future in pending:  # units not started yet; running ones finish and keep
            future.cancel()  # their complete cache entries


@data_group.command(name="prepare")
@click.argument("name")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--size", "sizes", type=int, multiple=True, default=(64,), show_default=True,
              help="Square frame size; repeat for several.")
@click.option("--fps", "rates", type=float, multiple=True, default=(1.0,), show_default=True,
              help="Video sampling rate; repeat for several. Every --size x --fps pair is "
                   "filled from one decode pass per video.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Units prepared in parallel, one worker process each [default: all cores].")
@click.option("--option", "options", multiple=True, help="Reader option KEY=VALUE.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def prepare_command(name: str, root: Path, sizes: tuple[int, ...], rates: tuple[float, ...],
                    jobs: int | None, options: tuple[str, ...], quiet: bool) -> None:
    """Decode videos / resample volumes into the on-disk caches, in parallel.

    Progress (units, frames/s, ETA) goes to stderr: a bar on a terminal, a plain line every
    30 s otherwise.

    \b
    Examples:
      ssl-bench data prepare cholec80 /data/cholec80 --size 224 --fps 1 --fps 5
      ssl-bench data prepare btcv /data/btcv --jobs 4
    """
    from rich.console import Console

    dataset = _dataset(name, root, options)
    variants = [(size, fps) for size in sizes for fps in rates]
    mode: Literal["bar", "lines", "quiet"] = (
        "quiet" if quiet else "bar" if Console(stderr=True).is_terminal else "lines")
    from ssl_bench.environment import available_cores  # pydantic: not at --help time

    summary = prepare_dataset(dataset, variants, jobs or available_cores(), mode)
    _remember_decode_rate(dataset, summary)
    if not quiet:
        pairs = ", ".join(f"{size}px@{fps:g}fps" for size, fps in variants)
        click.echo(f"{name}: {summary.units} units cached under {dataset.cache_dir} ({pairs}; "
                   f"{summary.cached_before} were already cached; {summary.seconds:.1f} s with "
                   f"{summary.jobs} job{'s' if summary.jobs > 1 else ''})")


def _remember_decode_rate(dataset: "Dataset", summary: PrepareSummary) -> None:
    """Keep the seconds one process spent per unit of work (frames, for videos) for the
    estimates of ``ssl-bench run`` (:mod:`ssl_bench.engine.rates`); never fails."""
    from ssl_bench.engine.estimate import states_costs
    from ssl_bench.engine.rates import remember_decode_rate

    if summary.work > 0 and states_costs(dataset):
        try:
            remember_decode_rate(dataset.meta.id, summary.seconds * summary.jobs / summary.work)
        except OSError:
            pass


@data_group.command(name="info")
@click.argument("name")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--option", "options", multiple=True, help="Reader option KEY=VALUE.")
def info_command(name: str, root: Path, options: tuple[str, ...]) -> None:
    """Units per split, classes and frame counts."""
    click.echo(json.dumps(_dataset(name, root, options).info(), indent=2))
