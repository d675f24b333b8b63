"""The run's work, planned once: every pretraining run and every cell to compute, as typed
items.

:func:`plan_work` turns a resolved run (:func:`ssl_bench.engine.run_plan.plan_run`) into a
:class:`WorkPlan`. Each item knows

* its kind: ``"pretrain"`` (:class:`PretrainItem`) or ``"cell"`` (:class:`CellItem`), and its
  key (``method|domain|seed`` or the cell's key), by which the display, the ETA and the worker
  events name it;
* what it waits for: a cell, the pretraining run it reads (``needs``); a pretraining, nothing;
* its checkpoint in the store (:mod:`ssl_bench.engine.checkpoint_store`): the one a
  pretraining writes and a cell reads, and whether it is cached (intact) already;
* its estimate (``cost``), filled in by :func:`ssl_bench.engine.estimate.estimate_run`.

Every back-end carries out this plan and derives no work of its own: in this process or over
worker processes (:mod:`ssl_bench.engine.sweep`, :mod:`ssl_bench.engine.workers`), as
submitit jobs (:mod:`ssl_bench.engine.executors`), and as a DDP pretraining on every rank
followed by the cells on rank 0 (:mod:`ssl_bench.engine.distributed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ssl_bench.engine.context import SweepContext
from ssl_bench.engine.cost import ItemCost
from ssl_bench.engine.identity import cell_pretraining, pretraining_runs
from ssl_bench.engine.plan import Cell, Pretraining, RunOptions, data_ready, pretraining_seed
from ssl_bench.engine.run_plan import RunPlan


@dataclass(eq=False)
class PretrainItem:
    """One pretraining run of the plan."""

    run: Pretraining
    #: where the store keeps its checkpoint (None: not known before the data is written)
    checkpoint: Path | None = None
    #: its checkpoint is in the store and intact: running it only reads the sidecar
    cached: bool = False
    #: its estimate (None: not estimated, or cached)
    cost: ItemCost | None = None
    kind: ClassVar[Literal["pretrain"]] = "pretrain"

    @property
    def key(self) -> str:
        return self.run.key

    @property
    def label(self) -> str:
        return self.run.label


@dataclass(eq=False)
class CellItem:
    """One cell of the plan, after the pretraining run it ``needs`` (None: it needs none)."""

    cell: Cell
    needs: Pretraining | None
    #: the seed of the weights the cell reads (its pretraining's, or its built weights')
    pretrain_seed: int = 0
    #: the checkpoint its encoder is loaded from (its pretraining's; None: none, or unknown)
    checkpoint: Path | None = None
    #: its estimate (None: not estimated)
    cost: ItemCost | None = None
    kind: ClassVar[Literal["cell"]] = "cell"

    @property
    def key(self) -> str:
        return self.cell.key

    @property
    def feature_group(self) -> tuple[str, str, int]:
        """Cells of one (method, benchmark, pretraining run) share the frozen features in the
        cache: every label setting and seed of a checkpoint reads the same ones."""
        return (self.cell.method, self.cell.benchmark, self.pretrain_seed)


WorkItem = PretrainItem | CellItem


@dataclass
class WorkPlan:
    """The resolved run and its work: the pretraining runs the cells to compute need (sorted),
    then those cells in the plan's order."""

    run: RunPlan
    pretrainings: list[PretrainItem]
    cells: list[CellItem]

    @property
    def options(self) -> RunOptions:
        return self.run.options

    @property
    def ctx(self) -> SweepContext:
        return self.run.ctx

    @property
    def items(self) -> list[WorkItem]:
        """Every item, pretrainings first."""
        return [*self.pretrainings, *self.cells]

    @property
    def to_pretrain(self) -> list[PretrainItem]:
        """The pretraining runs whose checkpoint is not cached."""
        return [p for p in self.pretrainings if not p.cached]


def plan_work(run: RunPlan) -> WorkPlan:
    """The items of a resolved run: a pretraining item per run its cells to compute need, a
    cell item per cell to compute (n/a cells included: they are recorded as such)."""
    ctx = run.ctx
    datasets = sorted({ctx.regs.benchmarks.get(b).dataset for b in run.options.benchmarks})
    ready = data_ready(ctx.sources, datasets)
    todo = run.todo
    pretrainings = {r: _pretrain_item(ctx, r, ready) for r in pretraining_runs(ctx, todo)}
    cells = []
    for cell in todo:
        needs = cell_pretraining(ctx, cell)
        cells.append(CellItem(cell, needs, pretraining_seed(run.options, cell.seed),
                              pretrainings[needs].checkpoint if needs is not None else None))
    return WorkPlan(run, list(pretrainings.values()), cells)


def _pretrain_item(ctx: SweepContext, run: Pretraining, ready: bool) -> PretrainItem:
    """A pretraining item with its checkpoint path and whether it is cached: known once the
    data is there (a dry run does not write the synthetic suite). A method or pool that
    cannot be set up is left to the pretraining itself, which fails and says why."""
    if not ready:
        return PretrainItem(run)
    try:
        key = ctx.checkpoint_key(ctx.method(run.method, run.seed), run.domain, run.seed)
    except KeyboardInterrupt:
        raise
    except Exception:
        return PretrainItem(run)
    return PretrainItem(run, ctx.checkpoints.path(run.method, key),
                        ctx.checkpoints.is_cached(run.method, key))


__all__ = ["CellItem", "PretrainItem", "WorkItem", "WorkPlan", "plan_work"]
