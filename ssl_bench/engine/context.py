"""Per-process state of a sweep: opened datasets, their units and fingerprints, pretraining
pools and pretraining results.

Everything here is computed once per process and reused by every cell: a dataset is opened
once, its fingerprint (which may walk the disk) taken once, a pool loaded once per
(domain, image size, fps), a method pretrained (or found in the checkpoint cache) once per
domain and pretraining seed.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ssl_bench.api import (
    AugmentPolicy,
    Dataset,
    Method,
    MethodContext,
    PretrainPool,
    Progress,
    Unit,
    UnitData,
    no_progress,
)
from ssl_bench.engine.checkpoint_store import CheckpointStore
from ssl_bench.engine.plan import DataSources, Pretraining, RunOptions, data_key
from ssl_bench.engine.pretrain import PretrainResult, checkpoint_key, pretrain_cached
from ssl_bench.errors import CellFailure, SSLBenchError
from ssl_bench.plugins import Registries


@dataclass
class PretrainFailure:
    """Why a pretraining run failed: one line and the full traceback."""

    reason: str
    traceback: str


@dataclass
class PoolUnits:
    """The train units of one dataset that join a domain's pool, and the ones dropped
    because their recording is in a val/test split of some dataset of the run."""

    dataset: Dataset
    kept: list[Unit]
    dropped: list[Unit]
    key: str = ""


@dataclass
class SweepContext:
    """Per-process state of a sweep."""

    options: RunOptions
    regs: Registries
    sources: DataSources
    log: Callable[[str], None]
    datasets: dict[str, Dataset] = field(default_factory=dict)
    units: dict[str, list[Unit]] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    pools: dict[tuple[str, int, float], PretrainPool] = field(default_factory=dict)
    pool_fingerprints: dict[tuple[str, int, float], str] = field(default_factory=dict)
    #: (domain, fps) -> the pool's frames counted by the readers (None: not countable)
    pool_frame_counts: dict[tuple[str, float], int | None] = field(default_factory=dict)
    pretrained: dict[Pretraining, PretrainResult] = field(default_factory=dict)
    pretrain_errors: dict[Pretraining, PretrainFailure] = field(default_factory=dict)
    #: small per-process caches of the cell stage (health batches, probed checkpoints)
    extras: dict[Any, Any] = field(default_factory=dict)
    #: where pretraining steps and the cells' stages are reported (the live display)
    progress: Progress = no_progress

    @property
    def cache_root(self) -> Path:
        return self.options.results / "cache"

    @property
    def checkpoints(self) -> CheckpointStore:
        """The run's checkpoint store (under :attr:`cache_root`)."""
        return CheckpointStore(self.cache_root)

    # ---- datasets -----------------------------------------------------------------------
    def data_key(self, benchmark_id: str) -> str:
        """The key of the dataset (with the benchmark's reader options) a benchmark reads."""
        bench = self.regs.benchmarks.get(benchmark_id)
        return data_key(bench.dataset, bench.options_for(self.options.profile))

    def dataset(self, key: str) -> Dataset:
        """The opened dataset of a data key (:meth:`data_key`), with its units."""
        if key not in self.datasets:
            ds = self.sources.open(self.regs, key)
            self.datasets[key] = ds
            self.units[key] = ds.units()
        return self.datasets[key]

    def fingerprint(self, key: str) -> str:
        """The dataset's fingerprint, taken once per process."""
        if key not in self.fingerprints:
            self.fingerprints[key] = self.dataset(key).fingerprint()
        return self.fingerprints[key]

    def domain_of(self, benchmark_id: str) -> str:
        bench = self.regs.benchmarks.get(benchmark_id)
        return self.regs.datasets.get(bench.dataset).meta.domain

    def run_data_keys(self) -> list[str]:
        """The data keys of the run's benchmarks and of its ``--pool-with`` ones: every
        dataset that the pretraining pools and the held-out recordings come from."""
        return sorted({self.data_key(b) for b in self.options.pool_benchmark_ids})

    def held_out_sources(self) -> set[str]:
        """Recordings in a val/test split of any dataset of the run (under any of its reader
        options): never pretrained on."""
        held = set()
        for key in self.run_data_keys():
            self.dataset(key)
            held |= {u.source for u in self.units[key] if u.split != "train"}
        return held

    def pool_units(self, domain: str) -> list[PoolUnits]:
        """Per dataset of the domain (read once, whatever options the benchmarks give it), its
        train units outside every held-out recording, and those dropped."""
        held = self.held_out_sources()
        out, seen = [], set()
        for key in self.run_data_keys():
            ds = self.dataset(key)
            if ds.meta.domain != domain or ds.meta.id in seen:
                continue
            seen.add(ds.meta.id)
            train = [u for u in self.units[key] if u.split == "train"]
            out.append(PoolUnits(ds, [u for u in train if u.source not in held],
                                 [u for u in train if u.source in held], key))
        return out

    # ---- pretraining pools -------------------------------------------------------------
    def pool_fingerprint(self, domain: str, size: int, fps: float) -> str:
        key = (domain, size, fps)
        if key not in self.pool_fingerprints:
            parts = self.pool_units(domain)
            policy = AugmentPolicy.for_datasets([p.dataset.meta for p in parts])
            h = hashlib.sha256(f"{domain}|{size}|{fps}|{policy}".encode())
            for part in parts:
                ds = part.dataset
                h.update(f"{ds.meta.id}:{ds.meta.version}:{self.fingerprint(part.key)}"
                         .encode())
                h.update(",".join(u.id for u in part.kept).encode())
            self.pool_fingerprints[key] = h.hexdigest()[:16]
        return self.pool_fingerprints[key]

    def pool_frame_count(self, domain: str, fps: float) -> int | None:
        """The frames of the domain's pool at ``fps``, counted by the readers without decoding
        (:meth:`ssl_bench.api.Dataset.frame_count`); None when a reader cannot count them."""
        key = (domain, fps)
        if key not in self.pool_frame_counts:
            counts = [part.dataset.frame_count(unit, fps)
                      for part in self.pool_units(domain) for unit in part.kept]
            self.pool_frame_counts[key] = (None if any(n is None for n in counts)
                                           else sum(n or 0 for n in counts))
        return self.pool_frame_counts[key]

    def dropped_units(self, domain: str) -> dict[str, list[str]]:
        """dataset id -> train units left out of the domain's pool (held-out recordings)."""
        return {p.dataset.meta.id: [u.id for u in p.dropped] for p in self.pool_units(domain)
                if p.dropped}

    def pool(self, domain: str, size: int, fps: float) -> PretrainPool:
        key = (domain, size, fps)
        if key not in self.pools:
            sequences: list[UnitData] = []
            for part in self.pool_units(domain):
                ds = part.dataset
                dropped = (f"; {len(part.dropped)} dropped as their recording is in a val/test "
                           f"split of the run: {', '.join(u.id for u in part.dropped)}"
                           if part.dropped else "")
                self.log(f"loading the {domain} pretraining pool: {ds.meta.id} "
                         f"({len(part.kept)} train units{dropped})")
                sequences.extend(ds.load(u, size=size, fps=fps) for u in part.kept)
            if not sequences:
                raise SSLBenchError(f"the {domain} pretraining pool is empty: no train units "
                                    "outside val/test recordings")
            policy = AugmentPolicy.for_datasets([p.dataset.meta for p in self.pool_units(domain)])
            self.pools[key] = PretrainPool(domain, sequences,
                                           self.pool_fingerprint(domain, size, fps), policy)
        return self.pools[key]

    # ---- methods -----------------------------------------------------------------------
    def method_context(self, method_id: str, seed: int) -> MethodContext:
        return MethodContext(profile=self.options.profile,
                             device=torch.device(self.options.device), seed=seed,
                             cache_dir=self.cache_root / "methods" / method_id, log=self.log,
                             precision=self.options.precision, compile=self.options.compile)

    def method(self, method_id: str, seed: int | None = None) -> Method:
        """A fresh method instance with the run's config (profile plus overrides); ``seed``:
        the pretraining seed it runs with (default: the shared ``--pretrain-seed``)."""
        cls = self.regs.methods.get(method_id)
        config = cls.make_config(self.options.profile,
                                 self.options.method_overrides.get(method_id, {}))
        return cls(config, self.method_context(
            method_id, self.options.pretrain_seed if seed is None else seed))

    def checkpoint_key(self, method: Method, domain: str, seed: int) -> str:
        """The content address of ``method``'s pretraining on ``domain`` with ``seed``."""
        fingerprint = self.pool_fingerprint(domain, method.config.image_size, method.config.fps)
        return checkpoint_key(method, fingerprint, seed)

    def pretrain(self, run: Pretraining) -> PretrainResult:
        """Pretrain (or reuse) once per process; a failure is remembered, not retried per cell."""
        if run in self.pretrain_errors:
            raise CellFailure(f"pretraining failed: {self.pretrain_errors[run].reason}")
        if run not in self.pretrained:
            method = self.method(run.method, run.seed)
            domain = run.domain
            try:
                size, fps = method.config.image_size, method.config.fps
                self.pretrained[run] = pretrain_cached(
                    method, self.pool_fingerprint(domain, size, fps),
                    lambda: self.pool(domain, size, fps), self.cache_root,
                    run.seed, self.log, self.pretrain_extras(domain),
                    lambda net, losses, stages: self.health(domain, method.encoder(net), losses,
                                                            stages),
                    self.progress)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                self.pretrain_errors[run] = PretrainFailure(error_line(exc),
                                                            traceback.format_exc())
                raise
        return self.pretrained[run]

    def health(self, domain: str, encoder: Any, losses: list[float],
               stages: list[int] | None = None) -> dict[str, Any]:
        """Health figures of ``encoder`` on the domain's fixed val batch, with the loss
        trajectory of each stage when ``stages`` names more than one
        (:mod:`ssl_bench.engine.health`)."""
        from ssl_bench.engine.health import encoder_health

        return encoder_health(encoder.to(self.options.device), self.health_frames(domain),
                              torch.device(self.options.device), losses,
                              stages if stages else None)

    def health_frames(self, domain: str) -> Any:
        """The fixed health batch of a domain: seeded frames of the val units of the run's
        datasets of that domain at the downstream image size (train units only when no
        dataset has val units; never test units)."""
        from ssl_bench.engine.health import health_batch
        from ssl_bench.profiles import IMAGE_SIZE

        cache_key = ("health-frames", domain)
        if cache_key not in self.extras:
            size = IMAGE_SIZE[self.options.profile]
            sequences: list[Any] = []
            for split in ("val", "train"):
                for key in self.run_data_keys():
                    ds = self.dataset(key)
                    if ds.meta.domain == domain:
                        sequences += [ds.load(u, size=size, fps=1.0).frames
                                      for u in self.units[key] if u.split == split]
                if sequences:
                    break
            self.extras[cache_key] = health_batch(sequences)
        return self.extras[cache_key]

    def pretrain_extras(self, domain: str) -> dict[str, Any]:
        """What the checkpoint sidecar records besides the pretraining itself."""
        return {"pool_dropped_units": self.dropped_units(domain)}


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 500 characters); the harness's own errors
    (:class:`SSLBenchError`, :class:`CellFailure`) carry their message alone. An error whose
    message carries a Python traceback (submitit's ``FailedJobError``, which a job's
    ``result()`` raises when the job raised) gives the traceback's error line instead: the job's
    own ``Type: message``."""
    text = str(exc).strip().splitlines()
    raised = _traceback_error(text)
    if raised:
        return raised[:500]
    first = text[0] if text else ""
    if isinstance(exc, (SSLBenchError, CellFailure)) and first:
        return first[:500]
    return f"{type(exc).__name__}: {first}".rstrip(": ")[:500]


def _traceback_error(lines: list[str]) -> str | None:
    """The error line of the last traceback in ``lines`` (the first unindented line after its
    ``Traceback (most recent call last):`` header), or None without one."""
    starts = [i for i, line in enumerate(lines)
              if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return None
    for line in lines[starts[-1] + 1:]:
        if line.strip() and not line[0].isspace():
            return line.strip()
    return None


__all__ = ["SweepContext", "PretrainFailure", "PoolUnits", "error_line"]
