"""Evaluating one cell and writing its record.

:func:`process_cell` takes the cell's lock, reuses its record when the stored cell identity
equals the one computed now, and otherwise evaluates the cell and writes a new record (the
old one is moved aside). Any exception raised by plugin code (a method, task or dataset), a
NaN loss or an out-of-memory error fails the cell, not the run: its record keeps the
one-line reason and the full traceback, and the run goes on.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
from filelock import FileLock, Timeout

from ssl_bench import __version__
from ssl_bench.api import SPLITS, CellInputs, Unit
from ssl_bench.cache import ArrayCache
from ssl_bench.engine.checkpoint_store import load_pretrained
from ssl_bench.engine.context import SweepContext, error_line
from ssl_bench.engine.identity import (
    CellSetup,
    cell_setup,
    check_reuse,
    init_checkpoint_id,
    needs_pretraining,
)
from ssl_bench.engine.plan import (
    Cell,
    Pretraining,
    cell_seed,
    git_hash,
    image_size,
    pretraining_seed,
)
from ssl_bench.engine.probe import check_encoder
from ssl_bench.environment import current_environment
from ssl_bench.errors import CellFailure, SSLBenchError
from ssl_bench.plugins import plugin_home_page
from ssl_bench.precision import configure_device
from ssl_bench.records import (
    CellRecord,
    Component,
    DatasetRef,
    TaskRef,
    Timings,
    record_path,
    write_record,
)
from ssl_bench.seeding import seed_everything
from ssl_bench.unit_scores import check_parts

#: a traceback kept in a record is cut to its last this-many characters
TRACEBACK_CHARS = 20000


@dataclass(frozen=True)
class CellOutcome:
    """What happened to a cell: ``ok``, ``n/a``, ``failed`` or ``skipped`` (recorded already,
    or held by another process), with the failure's reason and traceback."""

    status: str
    error: str | None = None
    traceback: str | None = None
    #: the cell's own seconds (its record's ``timings.total_s``; 0 when nothing was computed)
    seconds: float = 0.0


def _optional_values(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """A task's per-class / per-unit values as a record holds them (where None is allowed)."""
    return {name: {key: value for key, value in values.items()} for name, values in table.items()}


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
        method=Component(id=cell.method, version=m_entry.obj.meta.version, plugin=m_entry.plugin,
                         paper=m_entry.obj.meta.paper, url=m_entry.obj.meta.url,
                         plugin_url=plugin_home_page(m_entry.plugin)),
        method_kind=m_entry.obj.meta.kind,
        dataset=DatasetRef(id=bench.dataset, version=d_entry.obj.meta.version,
                           plugin=d_entry.plugin,
                           options=bench.options_for(ctx.options.profile)),
        task=TaskRef(id=bench.task, version=t_entry.obj.meta.version, plugin=t_entry.plugin,
                     main_score=t_entry.obj.meta.main_score,
                     higher_is_better=dict(t_entry.obj.meta.higher_is_better)),
        protocol=bench.protocol, profile=ctx.options.profile, precision=ctx.options.precision,
        label_frac=cell.label_frac if cell.label_frac is not None else 0.0,
        label_count=cell.label_count,
        label_setting="count" if cell.label_count is not None else "frac",
        seed=cell.seed, cell_seed=cell_seed(cell.seed, cell), device=ctx.options.device,
        synthetic=ctx.sources.synthetic.get(bench.dataset, False),
        environment=current_environment(ctx.options.device, ctx.options.precision),
        references=[r.model_dump(mode="json") for r in bench.references],
    )


def na_record(ctx: SweepContext, cell: Cell) -> CellRecord:
    return CellRecord(**_base_record(ctx, cell), status="n/a", error=cell.reason)


# ---- health of the encoders a cell uses -----------------------------------------------------


def init_health(ctx: SweepContext, setup: CellSetup, domain: str, seed: int) -> dict[str, Any]:
    """Health of the freshly built weights (built with ``seed``) of a method without
    pretraining (cached per id)."""
    key = ("init-health", setup.checkpoint, domain)
    if key not in ctx.extras:
        torch.manual_seed(seed)
        ctx.extras[key] = ctx.health(domain, setup.method.encoder(setup.method.build()), [])
    return ctx.extras[key]


# ---- one cell ---------------------------------------------------------------------------------


def evaluate_cell(ctx: SweepContext, cell: Cell, setup: CellSetup | None = None) -> CellRecord:
    """Evaluate one applicable cell and return its record (ok or failed)."""
    start = time.perf_counter()
    base = _base_record(ctx, cell)
    regs = ctx.regs
    bench = regs.benchmarks.get(cell.benchmark)
    task_cls = regs.tasks.get(bench.task)
    timings = Timings()
    label_ids: list[str] = []
    method_config: dict[str, Any] = {}
    task_config: dict[str, Any] = {}
    checkpoint_id = ""
    health: dict[str, Any] | None = None
    try:
        setup = setup or cell_setup(ctx, cell)
        method, task = setup.method, setup.task
        method_config = method.config.model_dump(mode="json")
        task_config = task.config.model_dump(mode="json")
        key = ctx.data_key(cell.benchmark)
        dataset = ctx.dataset(key)
        domain = dataset.meta.domain
        base["dataset"].fingerprint = ctx.fingerprint(key)
        pretrain_seed = pretraining_seed(ctx.options, cell.seed)
        label_ids = [u.id for u in setup.label_units]
        if needs_pretraining(type(method)):
            pre = ctx.pretrain(Pretraining(cell.method, domain, pretrain_seed))
            timings.pretrain_s, timings.pretrain_cached = pre.seconds, pre.cached
            checkpoint_id, health = pre.key, pre.health

            def make_encoder() -> Any:
                return method.encoder(load_pretrained(method, pre.checkpoint))
        elif method.meta.kind == "pretrain":
            checkpoint_id = init_checkpoint_id(method, pretrain_seed)
            health = init_health(ctx, setup, domain, pretrain_seed)

            def make_encoder() -> Any:
                torch.manual_seed(pretrain_seed)
                return method.encoder(method.build())
        else:
            def make_encoder() -> Any:
                raise SSLBenchError(f"{cell.method} is semi-supervised and has no encoder")

        if method.meta.kind == "pretrain" and ("probe", checkpoint_id) not in ctx.extras:
            check_encoder(cell.method, make_encoder().to(ctx.options.device),
                          image_size(ctx.options.profile), torch.device(ctx.options.device))
            ctx.extras[("probe", checkpoint_id)] = True
        by_split: dict[str, list[Unit]] = {split: [] for split in SPLITS}
        for u in ctx.units[key]:
            by_split[u.split].append(u)
        seed_everything(base["cell_seed"])
        inputs = CellInputs(
            benchmark=bench, dataset=dataset, protocol=bench.protocol,
            label_frac=(cell.label_frac if cell.label_frac is not None
                        else len(setup.label_units) / max(1, len(by_split["train"]))),
            seed=base["cell_seed"], units=by_split,
            label_units=setup.label_units, method=method, make_encoder=make_encoder,
            checkpoint_id=checkpoint_id or "none",
            cache=ArrayCache(ctx.cache_root / "features"),
            image_size=image_size(ctx.options.profile),
            device=torch.device(ctx.options.device), profile=ctx.options.profile, log=ctx.log,
            progress=ctx.progress, precision=ctx.options.precision,
        )
        configure_device(ctx.options.device)
        base["label_frac"] = inputs.label_frac
        base["label_count"] = len(setup.label_units)
        result = task.evaluate(inputs)
        main = task_cls.meta.main_score
        if main not in result.metrics:
            raise SSLBenchError(f"task {task_cls.meta.id} did not report its main score {main!r}")
        if result.main_parts is not None:
            check_parts(result.main_parts, float(result.metrics[main]), main)
        timings.features_s = float(result.timings.get("features", 0.0))
        timings.downstream_s = float(result.timings.get("downstream", 0.0))
        timings.total_s = time.perf_counter() - start
        from ssl_bench.engine.pretrain import config_hash

        return CellRecord(
            **base, label_units=label_ids, metrics=dict(result.metrics),
            main_score=result.metrics[main], per_class=_optional_values(result.per_class),
            details=result.details, checkpoint=checkpoint_id,
            config_hash=config_hash({"method": method_config, "task": task_config,
                                     "protocol": bench.protocol}),
            method_config=method_config, task_config=task_config, timings=timings, status="ok",
            identity=setup.identity, per_unit=_optional_values(result.per_unit),
            main_parts=result.main_parts.to_json() if result.main_parts is not None else None,
            health=health,
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # any plugin error, NaN loss, OOM: a failed cell, not a failed run
        timings.total_s = time.perf_counter() - start
        trace = traceback.format_exc()
        failure = ctx.pretrain_errors.get(
            Pretraining(cell.method, ctx.domain_of(cell.benchmark),
                        pretraining_seed(ctx.options, cell.seed)))
        if failure is not None and isinstance(exc, CellFailure) and \
                str(exc).startswith("pretraining failed"):
            trace = failure.traceback  # the pretraining's own traceback, not this re-raise
        return CellRecord(
            **base, label_units=label_ids, checkpoint=checkpoint_id,
            method_config=method_config, task_config=task_config, timings=timings,
            status="failed", error=error_line(exc), traceback=trace[-TRACEBACK_CHARS:],
            health=health,
        )


def process_cell(ctx: SweepContext, cell: Cell) -> CellOutcome:
    """Evaluate and record one cell under a per-cell lock; ``skipped`` when another process
    holds it or its record can be reused."""
    path = record_path(ctx.options.results, cell.benchmark, cell.method, cell.label_frac,
                       cell.seed, cell.label_count)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return CellOutcome("skipped")
    try:
        if not cell.applicable:
            if check_reuse(ctx, cell, None).reusable:
                return CellOutcome("skipped")
            record = na_record(ctx, cell)
        else:
            setup = None
            try:
                setup = cell_setup(ctx, cell)
            except KeyboardInterrupt:
                raise
            except Exception:  # evaluate_cell records the failure
                pass
            if setup is not None and check_reuse(ctx, cell, setup.identity).reusable:
                return CellOutcome("skipped")
            record = evaluate_cell(ctx, cell, setup)
        write_record(ctx.options.results, record)
        return CellOutcome(record.status, record.error, record.traceback,
                           record.timings.total_s)
    finally:
        lock.release()


__all__ = ["CellOutcome", "evaluate_cell", "init_health", "na_record", "process_cell"]
