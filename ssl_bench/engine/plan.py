"""Resolving a run: options, data roots, and the list of cells.

A cell is (method, benchmark, label fraction, seed). Cells whose method does not apply to the
benchmark (by the method's and task's metadata) are planned as ``n/a`` and recorded as such,
never silently dropped. Cells whose record exists (ok or n/a) are skipped: that is resume.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ssl_bench.api import Benchmark, Dataset
from ssl_bench.errors import SSLBenchError
from ssl_bench.plugins import Registries, get_registries
from ssl_bench.profiles import IMAGE_SIZE, default_profile
from ssl_bench.records import read_record, record_path
from ssl_bench.splits import parse_label_fracs


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SSLBenchError(f"--seeds: {text!r} is not a comma-separated list of integers, "
                            "e.g. --seeds 0,1,2") from None
    if not seeds:
        raise SSLBenchError("--seeds: no seed given, e.g. --seeds 0,1,2")
    return seeds


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
    pretrain_seed: int = 0
    #: "none": one process; "pytorch"/"slurm": this process is one rank of a distributed
    #: pretraining (torchrun / srun), see ssl_bench.engine.distributed
    launcher: str = "none"

    @classmethod
    def from_cli(cls, *, methods: str, benchmarks: str, label_frac: str | None, seeds: str,
                 profile: str | None, data_root: Path | None, synthetic_size: str,
                 results: Path, device: str, jobs: int, dry_run: bool, quiet: bool,
                 launcher: str = "none") -> "RunOptions":
        regs = get_registries()
        fracs = parse_label_fracs(label_frac) if label_frac is not None else None
        method_ids = regs.methods.resolve(methods)
        bench_ids = ([e.id for e in regs.benchmarks if e.obj.default]
                     if benchmarks.strip() == "default" else regs.benchmarks.resolve(benchmarks))
        dev = resolve_device(device)
        if jobs < 1:
            raise SSLBenchError(f"--jobs {jobs}: give a positive number of parallel processes")
        if data_root is not None and not Path(data_root).is_dir():
            raise SSLBenchError(f"--data-root {data_root} is not a folder; pass the folder that "
                                "holds <dataset-id>/ subfolders, or omit it for the synthetic suite")
        return cls(methods=method_ids, benchmarks=bench_ids, label_fracs=fracs,
                   seeds=parse_seeds(seeds), profile=profile or default_profile(dev),
                   data_root=Path(data_root) if data_root else None,
                   synthetic_size=synthetic_size, results=Path(results), device=dev, jobs=jobs,
                   dry_run=dry_run, quiet=quiet, launcher=launcher)


@dataclass(frozen=True)
class Cell:
    method: str
    benchmark: str
    label_frac: float
    seed: int
    applicable: bool = True
    reason: str = ""

    @property
    def key(self) -> str:
        return f"{self.method}|{self.benchmark}|{self.label_frac:g}|{self.seed}"


def cell_seed(seed: int, cell: Cell) -> int:
    """A per-cell torch/numpy seed from (global seed, cell key), independent of run order."""
    digest = hashlib.sha256(f"{seed}|{cell.key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass
class DataSources:
    """Where each dataset of the run is read from and whether it is synthetic."""

    roots: dict[str, Path] = field(default_factory=dict)
    synthetic: dict[str, bool] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def open(self, regs: Registries, dataset_id: str) -> Dataset:
        cls = regs.datasets.get(dataset_id)
        ds = cls(self.roots[dataset_id], self.options.get(dataset_id, {}))
        ds.synthetic = self.synthetic[dataset_id]
        return ds


def resolve_data(options: RunOptions, benchmarks: list[Benchmark], regs: Registries,
                 write_synthetic: bool = True) -> DataSources:
    from ssl_bench.commands.data import ensure_synthetic
    from ssl_bench.paths import synthetic_root

    sources = DataSources()
    needed = sorted({b.dataset for b in benchmarks})
    for dataset_id in needed:
        regs.datasets.get(dataset_id)  # unknown dataset -> suggestions
    for b in benchmarks:
        wanted = b.options_for(options.profile)
        prev = sources.options.setdefault(b.dataset, wanted)
        if prev != wanted:
            raise SSLBenchError(f"benchmarks disagree on the options of dataset {b.dataset!r}; "
                                "run them separately")
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
            sources.synthetic[dataset_id] = (root / ".ssl-bench-synthetic.json").exists()
        return sources
    root = synthetic_root(options.synthetic_size)
    if write_synthetic:
        written = ensure_synthetic(root, options.synthetic_size, ids=needed, quiet=options.quiet)
    else:
        written = {d: root / d for d in needed if (root / d).exists()}
    for dataset_id in needed:
        if write_synthetic and dataset_id not in written:
            raise SSLBenchError(
                f"dataset {dataset_id!r} has no synthetic version; pass --data-root with the real "
                "data or choose other --benchmarks"
            )
        sources.roots[dataset_id] = written.get(dataset_id, root / dataset_id)
        sources.synthetic[dataset_id] = True
    return sources


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


def plan_cells(options: RunOptions, regs: Registries) -> list[Cell]:
    cells = []
    for bench_id in options.benchmarks:
        bench = regs.benchmarks.get(bench_id)
        regs.tasks.get(bench.task)
        fracs = options.label_fracs or list(bench.label_fracs)
        for method_id in options.methods:
            ok, reason = applicability(regs, method_id, bench)
            for frac in fracs:
                for seed in options.seeds:
                    cells.append(Cell(method_id, bench_id, frac, seed, ok, reason))
    return cells


def is_done(results: Path, cell: Cell) -> bool:
    path = record_path(results, cell.benchmark, cell.method, cell.label_frac, cell.seed)
    if not path.exists():
        return False
    try:
        return read_record(path).status in ("ok", "n/a")
    except SSLBenchError:
        return False


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
