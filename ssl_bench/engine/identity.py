"""A cell's identity: everything that can change its score (:class:`ssl_bench.records.
CellIdentity`). Resume reuses a record only when its stored identity equals the one computed
now; otherwise the cell is recomputed and ``--dry-run`` says why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ssl_bench import __version__
from ssl_bench.api import Method, Task, Unit
from ssl_bench.engine.context import SweepContext
from ssl_bench.engine.plan import Cell, Pretraining, pretraining_seed
from ssl_bench.engine.pretrain import config_hash
from ssl_bench.plugins import distribution_version, source_hash
from ssl_bench.records import (
    CellIdentity,
    CellRecord,
    DatasetIdentity,
    MethodIdentity,
    TaskIdentity,
    read_record,
    record_path,
)
from ssl_bench.splits import select_label_units


def needs_pretraining(method_cls: Any) -> bool:
    meta = method_cls.meta
    return meta.kind == "pretrain" and meta.pretrain_input != "none"


def cell_pretraining(ctx: SweepContext, cell: Cell) -> Pretraining | None:
    """The pretraining run an applicable cell needs; None when it needs none."""
    if cell.applicable and needs_pretraining(ctx.regs.methods.get(cell.method)):
        return Pretraining(cell.method, ctx.domain_of(cell.benchmark),
                           pretraining_seed(ctx.options, cell.seed))
    return None


def pretraining_runs(ctx: SweepContext, cells: list[Cell]) -> list[Pretraining]:
    """The pretraining runs ``cells`` need, once each, sorted."""
    return sorted({run for c in cells if (run := cell_pretraining(ctx, c)) is not None})


def init_checkpoint_id(method: Method, seed: int) -> str:
    """The id of the freshly built weights of a method without pretraining, built with
    ``seed`` (the cell's pretraining seed)."""
    return "init-" + config_hash({"m": method.meta.id, "v": method.meta.version,
                                  "c": method.config.model_dump(mode="json"), "s": seed})


def method_checkpoint(ctx: SweepContext, method: Method, domain: str, seed: int) -> str:
    """The checkpoint id a cell of ``method`` reads: its pretraining's content address, the
    freshly built weights' id, or "" for a semi-supervised method; ``seed``: the cell's
    pretraining seed."""
    if needs_pretraining(type(method)):
        return ctx.checkpoint_key(method, domain, seed)
    if method.meta.kind == "pretrain":
        return init_checkpoint_id(method, seed)
    return ""


def task_for(ctx: SweepContext, cell: Cell) -> Task:
    """The cell's task with the run's config: profile, the benchmark's task options, overrides."""
    bench = ctx.regs.benchmarks.get(cell.benchmark)
    cls = ctx.regs.tasks.get(bench.task)
    options = {**bench.task_options_for(ctx.options.profile),
               **ctx.options.task_overrides.get(bench.task, {})}
    return cls(cls.make_config(ctx.options.profile, options))


def label_units_for(ctx: SweepContext, cell: Cell) -> list[Unit]:
    key = ctx.data_key(cell.benchmark)
    dataset = ctx.dataset(key)
    return select_label_units(ctx.units[key], dataset.meta.id, cell.label_frac,
                              cell.seed, cell.label_count)


def subset_hash(unit_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(unit_ids)).encode()).hexdigest()[:16]


@dataclass
class CellSetup:
    """What a cell is computed from (built once, used by identity and evaluation alike)."""

    method: Method
    task: Task
    label_units: list[Unit]
    checkpoint: str
    identity: CellIdentity


def cell_setup(ctx: SweepContext, cell: Cell) -> CellSetup:
    """The cell's method, task, label subset and identity; raises what a broken plugin,
    config or dataset raises (the caller turns it into a failed cell)."""
    regs = ctx.regs
    bench = regs.benchmarks.get(cell.benchmark)
    m_entry = regs.methods.entry(cell.method)
    t_entry = regs.tasks.entry(bench.task)
    d_entry = regs.datasets.entry(bench.dataset)
    key = ctx.data_key(cell.benchmark)
    dataset = ctx.dataset(key)
    pretrain_seed = pretraining_seed(ctx.options, cell.seed)
    method = ctx.method(cell.method, pretrain_seed)
    task = task_for(ctx, cell)
    label_units = label_units_for(ctx, cell)
    checkpoint = method_checkpoint(ctx, method, dataset.meta.domain, pretrain_seed)
    identity = CellIdentity(
        benchmark=bench.id, benchmark_version=bench.version, protocol=bench.protocol,
        method=MethodIdentity(
            id=cell.method, version=method.meta.version,
            config_hash=config_hash(method.config.model_dump(mode="json")),
            distribution=m_entry.plugin, distribution_version=distribution_version(m_entry.plugin),
            source_hash=source_hash(m_entry.obj), checkpoint=checkpoint,
            pretrain_seed=pretrain_seed if method.meta.kind == "pretrain" else None),
        task=TaskIdentity(id=bench.task, version=t_entry.obj.meta.version,
                          config_hash=config_hash(task.config.model_dump(mode="json"))),
        dataset=DatasetIdentity(id=bench.dataset, version=d_entry.obj.meta.version,
                                fingerprint=ctx.fingerprint(key),
                                options=bench.options_for(ctx.options.profile)),
        profile=ctx.options.profile,
        label_subset=subset_hash([u.id for u in label_units]),
        ssl_bench_version=__version__, precision=ctx.options.precision,
    )
    return CellSetup(method, task, label_units, checkpoint, identity)


@dataclass
class Reuse:
    """Whether a cell's existing record can stand, and if not, why."""

    reusable: bool
    reason: str
    record: CellRecord | None = None


def existing_record(ctx: SweepContext, cell: Cell) -> CellRecord | None:
    path = record_path(ctx.options.results, cell.benchmark, cell.method, cell.label_frac,
                       cell.seed, cell.label_count)
    if not path.exists():
        return None
    try:
        return read_record(path)
    except Exception:  # an unreadable record is recomputed (and moved aside)
        return None


def check_reuse(ctx: SweepContext, cell: Cell, expected: CellIdentity | None) -> Reuse:
    """Compare the stored record of ``cell`` with what it would be computed from now."""
    path = record_path(ctx.options.results, cell.benchmark, cell.method, cell.label_frac,
                       cell.seed, cell.label_count)
    if not path.exists():
        return Reuse(False, "no record yet")
    record = existing_record(ctx, cell)
    if record is None:
        return Reuse(False, "its record is unreadable or of an unknown schema")
    if record.status == "failed":
        return Reuse(False, "its last attempt failed", record)
    if not cell.applicable:
        if record.status == "n/a" and record.profile == ctx.options.profile:
            return Reuse(True, "n/a, recorded", record)
        return Reuse(False, "the method did not apply before; re-checking", record)
    if record.status == "n/a":
        return Reuse(False, "it was n/a before and now applies", record)
    if record.identity is None:
        return Reuse(False, f"its record (schema {record.schema_version}) has no cell identity",
                     record)
    if expected is None:
        return Reuse(False, "its inputs cannot be checked (data not available)", record)
    differences = record.identity.differences(expected)
    if differences:
        return Reuse(False, "; ".join(differences), record)
    return Reuse(True, "recorded with the same identity", record)


__all__ = ["CellSetup", "Reuse", "cell_setup", "check_reuse", "existing_record",
           "cell_pretraining", "init_checkpoint_id", "label_units_for", "method_checkpoint",
           "needs_pretraining", "pretraining_runs",
           "subset_hash", "task_for"]
