"""The sweep engine behind ``ssl-bench run``.

1. plan cells (method x benchmark x label fraction x seed); n/a cells are recorded, finished
   cells skipped (resume);
2. pretrain each (method, domain pool) once, content-addressed and cached
   (:mod:`ssl_bench.engine.pretrain`); the pool holds only train units whose source recording
   is not in a val/test split of any dataset of the run;
3. evaluate each cell (in-process, or ``--jobs N`` worker processes) and write one record,
   atomically; a failing cell becomes a failed record and the run goes on;
4. print and write the leaderboard of what ran.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from filelock import FileLock, Timeout

from ssl_bench import __version__
from ssl_bench.api import CellInputs, Dataset, MethodContext, PretrainPool, Unit
from ssl_bench.cache import ArrayCache
from ssl_bench.engine.plan import (
    Cell,
    DataSources,
    RunOptions,
    cell_seed,
    git_hash,
    image_size,
    is_done,
    plan_cells,
    resolve_data,
)
from ssl_bench.engine.pretrain import (
    PretrainResult,
    config_hash,
    load_pretrained,
    pretrain_cached,
)
from ssl_bench.errors import CellFailure, SSLBenchError
from ssl_bench.plugins import Registries, get_registries
from ssl_bench.records import (
    CellRecord,
    Component,
    DatasetRef,
    TaskRef,
    Timings,
    record_path,
    write_record,
)
from ssl_bench.splits import select_label_units


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class SweepContext:
    """Per-process state of a sweep: opened datasets, pools and pretraining results."""

    options: RunOptions
    regs: Registries
    sources: DataSources
    log: Callable[[str], None]
    datasets: dict[str, Dataset] = field(default_factory=dict)
    units: dict[str, list[Unit]] = field(default_factory=dict)
    pools: dict[tuple[str, int, float], PretrainPool] = field(default_factory=dict)
    pretrained: dict[tuple[str, str], PretrainResult] = field(default_factory=dict)
    pretrain_errors: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def cache_root(self) -> Path:
        return self.options.results / "cache"

    def dataset(self, dataset_id: str) -> Dataset:
        if dataset_id not in self.datasets:
            ds = self.sources.open(self.regs, dataset_id)
            self.datasets[dataset_id] = ds
            self.units[dataset_id] = ds.units()
        return self.datasets[dataset_id]

    def run_dataset_ids(self) -> list[str]:
        return sorted({self.regs.benchmarks.get(b).dataset for b in self.options.benchmarks})

    def held_out_sources(self) -> set[str]:
        """Recordings in a val/test split of any dataset of the run: never pretrained on."""
        held = set()
        for dataset_id in self.run_dataset_ids():
            self.dataset(dataset_id)
            held |= {u.source for u in self.units[dataset_id] if u.split != "train"}
        return held

    def _pool_units(self, domain: str) -> list[tuple[Dataset, list[Unit]]]:
        held = self.held_out_sources()
        out = []
        for dataset_id in self.run_dataset_ids():
            ds = self.dataset(dataset_id)
            if ds.meta.domain == domain:
                out.append((ds, [u for u in self.units[dataset_id]
                                 if u.split == "train" and u.source not in held]))
        return out

    def pool_fingerprint(self, domain: str, size: int, fps: float) -> str:
        h = hashlib.sha256(f"{domain}|{size}|{fps}".encode())
        for ds, chosen in self._pool_units(domain):
            h.update(f"{ds.meta.id}:{ds.meta.version}:{ds.fingerprint()}".encode())
            h.update(",".join(u.id for u in chosen).encode())
        return h.hexdigest()[:16]

    def pool(self, domain: str, size: int, fps: float) -> PretrainPool:
        key = (domain, size, fps)
        if key not in self.pools:
            sequences = []
            for ds, chosen in self._pool_units(domain):
                self.log(f"loading the {domain} pretraining pool: {ds.meta.id} "
                         f"({len(chosen)} train units)")
                sequences.extend(ds.load(u, size=size, fps=fps) for u in chosen)
            if not sequences:
                raise SSLBenchError(f"the {domain} pretraining pool is empty: no train units "
                                    "outside val/test recordings")
            self.pools[key] = PretrainPool(domain, sequences,
                                           self.pool_fingerprint(domain, size, fps))
        return self.pools[key]

    def method_context(self, method_id: str) -> MethodContext:
        return MethodContext(profile=self.options.profile,
                             device=torch.device(self.options.device),
                             seed=self.options.pretrain_seed,
                             cache_dir=self.cache_root / "methods" / method_id, log=self.log)

    def pretrain(self, method_id: str, domain: str) -> PretrainResult:
        """Pretrain (or reuse) once per process; a failure is remembered, not retried per cell."""
        key = (method_id, domain)
        if key in self.pretrain_errors:
            raise CellFailure(f"pretraining failed: {self.pretrain_errors[key]}")
        if key not in self.pretrained:
            cls = self.regs.methods.get(method_id)
            method = cls(cls.make_config(self.options.profile), self.method_context(method_id))
            try:
                size, fps = method.config.image_size, method.config.fps
                self.pretrained[key] = pretrain_cached(
                    method, self.pool_fingerprint(domain, size, fps),
                    lambda: self.pool(domain, size, fps), self.cache_root,
                    self.options.pretrain_seed, self.log)
            except (KeyboardInterrupt, SSLBenchError):
                raise
            except Exception as exc:
                self.pretrain_errors[key] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                raise
        return self.pretrained[key]


def needs_pretraining(regs: Registries, method_id: str) -> bool:
    meta = regs.methods.get(method_id).meta
    return meta.kind == "pretrain" and meta.pretrain_input != "none"


def _base_record(ctx: SweepContext, cell: Cell) -> dict[str, Any]:
    regs = ctx.regs
    bench = regs.benchmarks.get(cell.benchmark)
    m_entry = regs.methods.entry(cell.method)
    t_entry = regs.tasks.entry(bench.task)
    d_entry = regs.datasets.entry(bench.dataset)
    return dict(
        ssl_bench_version=__version__, git_hash=git_hash(),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        benchmark=cell.benchmark,
        method=Component(id=cell.method, version=m_entry.obj.meta.version, plugin=m_entry.plugin),
        method_kind=m_entry.obj.meta.kind,
        dataset=DatasetRef(id=bench.dataset, version=d_entry.obj.meta.version,
                           plugin=d_entry.plugin,
                           options=bench.options_for(ctx.options.profile)),
        task=TaskRef(id=bench.task, version=t_entry.obj.meta.version, plugin=t_entry.plugin,
                     main_score=t_entry.obj.meta.main_score,
                     higher_is_better=dict(t_entry.obj.meta.higher_is_better)),
        protocol=bench.protocol, profile=ctx.options.profile, label_frac=cell.label_frac,
        seed=cell.seed, cell_seed=cell_seed(cell.seed, cell), device=ctx.options.device,
        synthetic=ctx.sources.synthetic.get(bench.dataset, False),
    )


def na_record(ctx: SweepContext, cell: Cell) -> CellRecord:
    return CellRecord(**_base_record(ctx, cell), status="n/a", error=cell.reason)


def evaluate_cell(ctx: SweepContext, cell: Cell) -> CellRecord:
    """Evaluate one applicable cell and return its record (ok or failed)."""
    start = time.perf_counter()
    base = _base_record(ctx, cell)
    regs = ctx.regs
    bench = regs.benchmarks.get(cell.benchmark)
    method_cls = regs.methods.get(cell.method)
    task_cls = regs.tasks.get(bench.task)
    timings = Timings()
    label_ids: list[str] = []
    method_config: dict[str, Any] = {}
    task_config: dict[str, Any] = {}
    checkpoint_id = ""
    try:
        dataset = ctx.dataset(bench.dataset)
        base["dataset"].fingerprint = dataset.fingerprint()
        method = method_cls(method_cls.make_config(ctx.options.profile),
                            ctx.method_context(cell.method))
        method_config = method.config.model_dump(mode="json")
        pretrain_seed = ctx.options.pretrain_seed
        if needs_pretraining(regs, cell.method):
            pre = ctx.pretrain(cell.method, dataset.meta.domain)
            timings.pretrain_s, timings.pretrain_cached = pre.seconds, pre.cached
            checkpoint_id = pre.key

            def make_encoder() -> Any:
                return method.encoder(load_pretrained(method, pre.checkpoint))
        elif method.meta.kind == "pretrain":
            checkpoint_id = "init-" + config_hash({"m": cell.method, "v": method.meta.version,
                                                   "c": method_config, "s": pretrain_seed})

            def make_encoder() -> Any:
                torch.manual_seed(pretrain_seed)
                return method.encoder(method.build())
        else:
            def make_encoder() -> Any:
                raise SSLBenchError(f"{cell.method} is semi-supervised and has no encoder")

        units = ctx.units[bench.dataset]
        label_units = select_label_units(units, dataset.meta.id, cell.label_frac, cell.seed)
        label_ids = [u.id for u in label_units]
        task = task_cls(task_cls.make_config(ctx.options.profile,
                                             bench.task_options_for(ctx.options.profile)))
        task_config = task.config.model_dump(mode="json")
        by_split: dict[str, list[Unit]] = defaultdict(list)
        for u in units:
            by_split[u.split].append(u)
        seed_everything(base["cell_seed"])
        inputs = CellInputs(
            benchmark=bench, dataset=dataset, protocol=bench.protocol,
            label_frac=cell.label_frac, seed=base["cell_seed"], units=dict(by_split),
            label_units=label_units, method=method, make_encoder=make_encoder,
            checkpoint_id=checkpoint_id or "none",
            cache=ArrayCache(ctx.cache_root / "features"), image_size=image_size(ctx.options.profile),
            device=torch.device(ctx.options.device), profile=ctx.options.profile, log=ctx.log,
        )
        result = task.evaluate(inputs)
        main = task_cls.meta.main_score
        if main not in result.metrics:
            raise SSLBenchError(f"task {task_cls.meta.id} did not report its main score {main!r}")
        timings.features_s = float(result.timings.get("features", 0.0))
        timings.downstream_s = float(result.timings.get("downstream", 0.0))
        timings.total_s = time.perf_counter() - start
        return CellRecord(
            **base, label_units=label_ids, metrics=dict(result.metrics),
            main_score=result.metrics[main], per_class=result.per_class,
            details=result.details, checkpoint=checkpoint_id,
            config_hash=config_hash({"method": method_config, "task": task_config,
                                     "protocol": bench.protocol}),
            method_config=method_config, task_config=task_config, timings=timings, status="ok",
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # any plugin error, NaN loss, OOM: a failed cell, not a failed run
        timings.total_s = time.perf_counter() - start
        return CellRecord(
            **base, label_units=label_ids, checkpoint=checkpoint_id,
            method_config=method_config, task_config=task_config, timings=timings,
            status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
            traceback=traceback.format_exc()[-4000:],
        )


def process_cell(ctx: SweepContext, cell: Cell) -> str:
    """Evaluate and record one cell under a per-cell lock; returns its status or "skipped"
    when another process holds it or already finished it."""
    path = record_path(ctx.options.results, cell.benchmark, cell.method, cell.label_frac, cell.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return "skipped"
    try:
        if is_done(ctx.options.results, cell):
            return "skipped"
        record = na_record(ctx, cell) if not cell.applicable else evaluate_cell(ctx, cell)
        write_record(ctx.options.results, record)
        return record.status
    finally:
        lock.release()


# ---- worker processes (--jobs N) ----------------------------------------------------------

_WORKER_CTX: SweepContext | None = None


def _plugin_setup() -> tuple[list[str], list[tuple[str, str, Any]]]:
    """What a spawned worker needs to see this process's plugins: the entry points loaded here
    and the plugins registered by hand (``register_plugin``: tests, ``--plugins-dir``), which
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


def _worker_init(options: RunOptions, threads: int,
                 plugin_setup: tuple[list[str], list[tuple[str, str, Any]]] = ([], [])) -> None:
    global _WORKER_CTX
    import importlib

    from ssl_bench import plugins

    torch.set_num_threads(threads)
    entry_points, by_hand = plugin_setup
    if entry_points or by_hand:  # the same registries as the parent process
        os.environ["SSL_BENCH_LOAD_PLUGINS"] = ",".join(entry_points)
        plugins.reset()
        for name, distribution, plugin in by_hand:
            plugins.register_plugin(importlib.import_module(plugin) if isinstance(plugin, str)
                                    else plugin, name, distribution)
    regs = get_registries()
    benchmarks = [regs.benchmarks.get(b) for b in options.benchmarks]
    sources = resolve_data(options, benchmarks, regs, write_synthetic=False)
    _WORKER_CTX = SweepContext(options, regs, sources, log=lambda _m: None)


def _worker_run(cell: Cell) -> tuple[Cell, str]:
    assert _WORKER_CTX is not None
    return cell, process_cell(_WORKER_CTX, cell)


# ---- the sweep ----------------------------------------------------------------------------


class _Display:
    """rich progress on a terminal, plain lines otherwise, nothing with --quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.quiet = quiet
        self.counts: dict[str, int] = defaultdict(int)
        self.start = time.perf_counter()
        self.progress: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(), transient=False)
            self.task = self.progress.add_task("cells", total=total)
            self.progress.start()

    def log(self, message: str) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def running(self, cell: Cell) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=self._summary() + f"  running {cell.key}")

    def done(self, cell: Cell, status: str) -> None:
        self.counts[status] += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=self._summary())
        elif not self.quiet:
            n = sum(self.counts.values())
            elapsed = time.perf_counter() - self.start
            eta = elapsed / n * (self.total - n) if n else 0.0
            print(f"[{n}/{self.total}] {status:7s} {cell.key}  (eta {eta:.0f}s)", file=sys.stderr,
                  flush=True)

    def _summary(self) -> str:
        return (f"ok {self.counts['ok']}  n/a {self.counts['n/a']}  failed {self.counts['failed']}"
                f"  skipped {self.counts['skipped']}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_plan(options: RunOptions, cells: list[Cell], todo: list[Cell], regs: Registries) -> None:
    cached = {}
    for c in todo:
        if c.applicable and needs_pretraining(regs, c.method):
            cached.setdefault(c.method, "pretrain (cached if its checkpoint exists)")
    print(f"profile {options.profile}, device {options.device}, results {options.results}")
    print(f"{len(cells)} cells planned, {len(cells) - len(todo)} already recorded (skipped), "
          f"{len(todo)} to compute")
    for c in todo:
        state = "compute" if c.applicable else f"n/a ({c.reason})"
        print(f"  {c.key}: {state}")
    for method_id, what in sorted(cached.items()):
        print(f"  pretraining: {method_id}: {what}")


def run_sweep(options: RunOptions) -> int:
    regs = get_registries()
    cells = plan_cells(options, regs)
    todo = [c for c in cells if not is_done(options.results, c)]
    if options.dry_run:
        print_plan(options, cells, todo, regs)
        return 0
    if options.launcher != "none":  # one rank of torchrun / srun
        from ssl_bench.engine.distributed import run_distributed

        return run_distributed(options)
    try:
        options.results.mkdir(parents=True, exist_ok=True)
        probe = options.results / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SSLBenchError(f"results directory {options.results} is not writable ({exc}); "
                            "pass a writable --results DIR") from None
    benchmarks = [regs.benchmarks.get(b) for b in options.benchmarks]
    sources = resolve_data(options, benchmarks, regs)
    display = _Display(len(todo), options.quiet)
    ctx = SweepContext(options, regs, sources, log=display.log)
    failures: list[str] = []
    try:
        applicable = [c for c in todo if c.applicable]
        # pretraining first, once per (method, domain), in this process
        for method_id, domain in sorted({(c.method, ctx.dataset(regs.benchmarks.get(c.benchmark)
                                                               .dataset).meta.domain)
                                         for c in applicable
                                         if needs_pretraining(regs, c.method)}):
            try:
                ctx.pretrain(method_id, domain)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # its cells are recorded as failed below
                display.log(f"pretraining {method_id} ({domain}) failed: "
                            f"{type(exc).__name__}: {exc}")
                ctx.pretrain_errors.setdefault((method_id, domain),
                                               f"{type(exc).__name__}: {exc}".splitlines()[0])
        if options.jobs > 1 and len(todo) > 1:
            threads = max(1, (os.cpu_count() or 1) // options.jobs)
            with ProcessPoolExecutor(options.jobs, mp_context=get_context("spawn"),
                                     initializer=_worker_init,
                                     initargs=(options, threads, _plugin_setup())) as pool:
                futures = [pool.submit(_worker_run, c) for c in todo]
                for fut in as_completed(futures):
                    cell, status = fut.result()
                    display.done(cell, status)
                    if status == "failed":
                        failures.append(cell.key)
        else:
            for cell in todo:
                display.running(cell)
                status = process_cell(ctx, cell)
                display.done(cell, status)
                if status == "failed":
                    failures.append(cell.key)
    finally:
        display.stop()

    from ssl_bench.leaderboard import write_run_leaderboard

    print(write_run_leaderboard(options.results, options.benchmarks))
    if failures:
        print(f"{len(failures)} cell(s) failed (errors are in their records under "
              f"{options.results / 'records'}):", file=sys.stderr)
        for key in failures:
            print(f"  {key}", file=sys.stderr)
        return 1
    return 0
