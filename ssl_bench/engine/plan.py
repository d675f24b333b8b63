"""Resolving a run: options, which benchmarks can run, data roots, and the list of cells.

A cell is (method, benchmark, label setting, seed); the label setting is a fraction of the
training units or a count of them. Cells whose method does not apply to the benchmark (by the
method's and task's metadata) are planned as ``n/a`` and recorded as such, never silently
dropped. Whether an existing record can be reused is decided by its cell identity
(:mod:`ssl_bench.engine.identity`).

Which benchmarks run: ``--benchmarks default`` (the default run) or ``all`` take every such
benchmark whose data can be had (on ``--data-root``: its dataset folder is there; without it:
its dataset can write a synthetic version) and name the others in one line each; a benchmark
named explicitly must have its data, or the run stops with one line saying what is missing. A
benchmark naming an unknown dataset or task stops the run at plan time either way.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch

from ssl_bench.api import Benchmark, Dataset
from ssl_bench.errors import SSLBenchError
from ssl_bench.plugins import Registries, resolved_registries
from ssl_bench.precision import resolve_precision
from ssl_bench.profiles import (
    IMAGE_SIZE,
    PRETRAINING_DEFAULT,
    PRETRAINING_MODES,
    SEEDS_DEFAULT,
    default_profile,
)
from ssl_bench.splits import parse_label_counts, parse_label_fracs


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SSLBenchError(f"--seeds: {text!r} is not a comma-separated list of integers, "
                            "e.g. --seeds 0,1,2") from None
    if not seeds:
        raise SSLBenchError("--seeds: no seed given, e.g. --seeds 0,1,2")
    return seeds


#: memory one CPU worker of ``--jobs auto`` is allowed (the default run's single process
#: peaked at 2.5 GiB)
WORKER_MEMORY_BYTES = 3 * 2**30


def resolve_jobs(text: str | int, device: str) -> int:
    """``--jobs``: a positive number, or ``auto``: on a CPU one worker per core, at most one
    per :data:`WORKER_MEMORY_BYTES` of memory (the cores are shared out among the workers as
    torch threads); on a GPU 1 (one process drives the device)."""
    from ssl_bench.environment import available_cores, memory_bytes

    value = str(text).strip().lower()
    if value == "auto":
        if device != "cpu":
            return 1
        memory = memory_bytes()
        cap = max(1, memory // WORKER_MEMORY_BYTES) if memory else 1
        return max(1, min(available_cores(), cap))
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise SSLBenchError(f"--jobs {text}: give a positive number of worker processes, or auto")
    return jobs


def resolve_device(text: str) -> str:
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise SSLBenchError("--device cuda: no CUDA device is available; use --device cpu")
    if text != "cpu" and not text.startswith("cuda"):
        raise SSLBenchError(f"--device {text!r}: use auto, cpu or cuda[:N]")
    return text


@dataclass
class RunOptions:
    methods: list[str]
    benchmarks: list[str]
    label_fracs: list[float] | None
    seeds: list[int]
    profile: str
    data_root: Path | None
    synthetic_size: str
    results: Path
    device: str
    jobs: int = 1
    dry_run: bool = False
    quiet: bool = False
    #: ``per-seed``: a cell of seed s uses the pretraining run of seed s; ``shared``: every
    #: cell uses the run of :attr:`pretrain_seed` (see :data:`ssl_bench.profiles.
    #: PRETRAINING_DEFAULT`)
    pretraining: str = "per-seed"
    pretrain_seed: int = 0
    #: "none": one process; "pytorch"/"slurm": this process is one rank of a distributed
    #: pretraining (torchrun / srun), see ssl_bench.engine.distributed
    launcher: str = "none"
    label_counts: list[int] | None = None
    #: benchmarks named one by one (True) or through ``default`` / ``all`` (False)
    benchmarks_explicit: bool = False
    #: config values over the profile: method id -> {key: value}, task id -> {key: value}
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: print failed cells' tracebacks on the console
    debug: bool = False
    #: ``--precision``: fp32, bf16 or fp16 (:mod:`ssl_bench.precision`)
    precision: str = "fp32"
    #: ``--compile``: torch.compile of the pretraining model
    compile: bool = False
    #: ``--pool-with``: benchmarks whose datasets shape the pretraining pools (pooled train
    #: units, held-out recordings) like the run's own, but that get no cells
    pool_benchmarks: list[str] = field(default_factory=list)

    @property
    def pool_benchmark_ids(self) -> list[str]:
        """The benchmarks whose datasets make the pretraining pools: the run's, then
        :attr:`pool_benchmarks` not among them."""
        return [*self.benchmarks, *(b for b in self.pool_benchmarks if b not in self.benchmarks)]

    @classmethod
    def from_cli(cls, *, methods: str, benchmarks: str, label_frac: str | None,
                 seeds: str | None,
                 profile: str | None, data_root: Path | None, synthetic_size: str,
                 results: Path, device: str, jobs: int | str, dry_run: bool, quiet: bool,
                 launcher: str = "none", label_count: str | None = None,
                 method_overrides: dict[str, dict[str, Any]] | None = None,
                 task_overrides: dict[str, dict[str, Any]] | None = None,
                 debug: bool = False, pretraining: str | None = None,
                 precision: str | None = None, compile: bool = False,
                 pool_with: str | None = None) -> "RunOptions":
        regs = resolved_registries()  # `all` leaves out a class that fails to import
        fracs = parse_label_fracs(label_frac) if label_frac is not None else None
        counts = parse_label_counts(label_count) if label_count is not None else None
        method_ids = regs.methods.resolve(methods)
        spec = benchmarks.strip()
        if spec == "default":
            regs.benchmarks.resolve("all")  # a duplicated benchmark id fails here, as with all
            bench_ids = [e.id for e in regs.benchmarks if e.obj.default]
        else:
            bench_ids = regs.benchmarks.resolve(benchmarks)
        pool_ids = regs.benchmarks.resolve(pool_with) if pool_with else []
        dev = resolve_device(device)
        if data_root is not None and not Path(data_root).is_dir():
            raise SSLBenchError(
                f"--data-root {data_root} is not a folder; pass the folder that "
                "holds <dataset-id>/ subfolders, or omit it for the synthetic suite"
            )
        chosen_profile = profile or default_profile(dev, data_root)
        mode = pretraining or PRETRAINING_DEFAULT.get(chosen_profile, "per-seed")
        if mode not in PRETRAINING_MODES:
            raise SSLBenchError(f"--pretraining {mode!r}: use {' or '.join(PRETRAINING_MODES)}")
        return cls(methods=method_ids, benchmarks=bench_ids, label_fracs=fracs,
                   seeds=(parse_seeds(seeds) if seeds is not None
                          else list(SEEDS_DEFAULT.get(chosen_profile, (0, 1, 2)))),
                   profile=chosen_profile, pretraining=mode,
                   data_root=Path(data_root) if data_root else None,
                   synthetic_size=synthetic_size, results=Path(results), device=dev,
                   jobs=resolve_jobs(jobs, dev),
                   dry_run=dry_run, quiet=quiet, launcher=launcher, label_counts=counts,
                   benchmarks_explicit=spec not in ("default", "all"),
                   method_overrides=dict(method_overrides or {}),
                   task_overrides=dict(task_overrides or {}), debug=debug,
                   precision=resolve_precision(precision, dev), compile=compile,
                   pool_benchmarks=pool_ids)


@dataclass(frozen=True)
class Cell:
    """One (method, benchmark, label setting, seed); the label setting is ``label_frac`` or,
    when ``label_count`` is set, that many labelled units (``label_frac`` is then None)."""

    method: str
    benchmark: str
    label_frac: float | None
    seed: int
    applicable: bool = True
    reason: str = ""
    label_count: int | None = None

    @property
    def label(self) -> str:
        """``0.01`` for a fraction, ``n4`` for a count (fraction keys keep their old form, so
        per-cell seeds do not change)."""
        return f"n{self.label_count}" if self.label_count is not None else f"{self.label_frac:g}"

    @property
    def key(self) -> str:
        return f"{self.method}|{self.benchmark}|{self.label}|{self.seed}"


@dataclass(frozen=True, order=True)
class Pretraining:
    """One pretraining run: a method on one domain's pool with one seed. Every cell of that
    method, domain and pretraining seed reads its checkpoint."""

    method: str
    domain: str
    seed: int
    kind: ClassVar[str] = "pretrain"

    @property
    def key(self) -> str:
        """``method|domain|seed``: the run's name in the display, the ETA and the schedule."""
        return f"{self.method}|{self.domain}|{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.method} ({self.domain}, seed {self.seed})"


def pretraining_seed(options: RunOptions, seed: int) -> int:
    """The seed of the pretraining run a cell of ``seed`` uses (``--pretraining``)."""
    return seed if options.pretraining == "per-seed" else options.pretrain_seed


def cell_seed(seed: int, cell: Cell) -> int:
    """A per-cell torch/numpy seed from (global seed, cell key), independent of run order."""
    digest = hashlib.sha256(f"{seed}|{cell.key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def data_key(dataset_id: str, options: dict[str, Any]) -> str:
    """The key of one opened dataset: its id, plus its reader options when it has any (two
    benchmarks may read one dataset with different options, e.g. another split)."""
    return dataset_id if not options else f"{dataset_id}{json.dumps(options, sort_keys=True)}"


@dataclass
class DataSources:
    """Where each dataset of the run is read from, whether it is synthetic, and the reader
    options of each opened dataset (by :func:`data_key`)."""

    roots: dict[str, Path] = field(default_factory=dict)
    synthetic: dict[str, bool] = field(default_factory=dict)
    #: data key -> (dataset id, reader options)
    instances: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def open(self, regs: Registries, key: str) -> Dataset:
        dataset_id, options = self.instances[key]
        cls = regs.datasets.get(dataset_id)
        ds = cls(self.roots[dataset_id], options)
        ds.synthetic = self.synthetic[dataset_id]
        return ds


def check_benchmarks(regs: Registries, benchmark_ids: list[str]) -> None:
    """Every benchmark must name a known dataset and task: one line listing each problem."""
    problems = []
    for bench_id in benchmark_ids:
        bench = regs.benchmarks.get(bench_id)
        for kind, registry, ref in (("dataset", regs.datasets, bench.dataset),
                                    ("task", regs.tasks, bench.task)):
            try:
                registry.entry(ref)
            except SSLBenchError as exc:
                problems.append(f"benchmark {bench_id!r} ({regs.benchmarks.entry(bench_id).plugin}"
                                f") names {kind} {ref!r}: {exc}")
    if problems:
        raise SSLBenchError("; ".join(problems))


@dataclass
class BenchmarkChoice:
    """The benchmarks that run and, one line each, those skipped and why."""

    run: list[str]
    skipped: list[str]


def choose_benchmarks(options: RunOptions, regs: Registries) -> BenchmarkChoice:
    """Which of the requested benchmarks have their data (see the module docstring)."""
    from ssl_bench.synthetic_suite import has_synthetic_writer

    check_benchmarks(regs, options.benchmarks)
    check_benchmarks(regs, options.pool_benchmarks)

    def missing_data(bench_id: str) -> str | None:
        bench = regs.benchmarks.get(bench_id)
        cls = regs.datasets.get(bench.dataset)
        if options.data_root is not None:
            root = options.data_root / bench.dataset
            return None if root.is_dir() else f"its dataset folder {root} is not there"
        return None if has_synthetic_writer(cls) else (
            f"dataset {bench.dataset!r} ({regs.datasets.entry(bench.dataset).plugin}) has no "
            "synthetic version; run it with --data-root holding the real data")

    run, skipped, missing = [], [], []
    for bench_id in options.benchmarks:
        why = missing_data(bench_id)
        if why is None:
            run.append(bench_id)
        elif options.benchmarks_explicit:
            missing.append(f"benchmark {bench_id!r}: {why}")
        else:
            skipped.append(f"skipped benchmark {bench_id}: {why}")
    for bench_id in options.pool_benchmarks:
        why = missing_data(bench_id)
        if why is not None:
            raise SSLBenchError(f"--pool-with benchmark {bench_id!r}: {why}; its data shapes "
                                "the pretraining pools, so put it there or drop it from "
                                "--pool-with")
    if missing:
        hint = ("put the data under --data-root (see `ssl-bench data check <dataset> DIR`)"
                if options.data_root is not None else "pass --data-root with the real data")
        raise SSLBenchError("; ".join(missing) + f"; {hint} or drop it from --benchmarks")
    if not run:
        raise SSLBenchError("no benchmark of the run has its data: " + "; ".join(skipped))
    return BenchmarkChoice(run, skipped)


def resolve_data(options: RunOptions, benchmarks: list[Benchmark], regs: Registries,
                 write_synthetic: bool = True,
                 log: Callable[[str], None] = lambda _m: None) -> DataSources:
    """Data roots of the run's datasets (``benchmarks`` already checked by
    :func:`choose_benchmarks`); writes the synthetic suite once unless ``write_synthetic`` is
    False (then only what is already written is used)."""
    from ssl_bench.paths import synthetic_root
    from ssl_bench.synthetic_suite import MARKER, ensure_synthetic

    sources = DataSources()
    needed = sorted({b.dataset for b in benchmarks})
    for b in benchmarks:
        wanted = b.options_for(options.profile)
        sources.instances[data_key(b.dataset, wanted)] = (b.dataset, wanted)
    if options.data_root is not None:
        for dataset_id in needed:
            root = options.data_root / dataset_id
            if not root.is_dir():
                raise SSLBenchError(
                    f"dataset {dataset_id!r} not found at {root}; put it there (see "
                    f"`ssl-bench data check {dataset_id} DIR`) or drop benchmarks that use it "
                    "with --benchmarks"
                )
            sources.roots[dataset_id] = root
            # a folder written by `ssl-bench data synth` stays labelled synthetic
            sources.synthetic[dataset_id] = (root / MARKER).exists()
        return sources
    root = synthetic_root(options.synthetic_size)
    if write_synthetic:
        written = ensure_synthetic(root, options.synthetic_size, ids=needed, log=log)
    else:
        written = {d: root / d for d in needed if (root / d / MARKER).exists()}
    for dataset_id in needed:
        sources.roots[dataset_id] = written.get(dataset_id, root / dataset_id)
        sources.synthetic[dataset_id] = True
    return sources


def data_ready(sources: DataSources, dataset_ids: list[str]) -> bool:
    """True when every dataset folder exists (a dry run does not write the synthetic suite)."""
    return all(sources.roots.get(d) is not None and sources.roots[d].is_dir()
               for d in dataset_ids)


def applicability(regs: Registries, method_id: str, benchmark: Benchmark) -> tuple[bool, str]:
    method = regs.methods.get(method_id)
    task = regs.tasks.get(benchmark.task)
    dataset = regs.datasets.get(benchmark.dataset)
    if dataset.meta.domain not in method.meta.domains:
        return False, f"{method_id} does not apply to {dataset.meta.domain} data"
    if not task.applies_to(method.meta, dataset.meta):
        return False, (f"{method_id} provides {', '.join(sorted(method.meta.provides))}; "
                       f"{task.meta.id} needs one of {', '.join(task.meta.requires)}")
    return True, ""


def label_settings(options: RunOptions, bench: Benchmark
                   ) -> list[tuple[float | None, int | None]]:
    """(fraction, count) pairs of the run for one benchmark: what the command line asks for,
    else the benchmark's default counts, else its default fractions."""
    if options.label_fracs is not None or options.label_counts is not None:
        return ([(f, None) for f in options.label_fracs or []]
                + [(None, n) for n in options.label_counts or []])
    if bench.label_counts:
        return [(None, n) for n in bench.label_counts]
    return [(f, None) for f in bench.label_fracs]


def plan_cells(options: RunOptions, regs: Registries) -> list[Cell]:
    cells = []
    for bench_id in options.benchmarks:
        bench = regs.benchmarks.get(bench_id)
        regs.tasks.get(bench.task)
        for method_id in options.methods:
            ok, reason = applicability(regs, method_id, bench)
            for frac, count in label_settings(options, bench):
                for seed in options.seeds:
                    cells.append(Cell(method_id, bench_id, frac, seed, ok, reason, count))
    return cells


def image_size(profile: str) -> int:
    return IMAGE_SIZE[profile]


def git_hash() -> str | None:
    here = Path(__file__).resolve().parents[2]
    head = here / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (here / ".git" / ref[5:]).read_text().strip()[:12]
        return ref[:12]
    except OSError:
        return os.environ.get("SSL_BENCH_GIT_HASH")
