"""A resolved run: which benchmarks run, their data, the cells, and for each cell whether its
record stands (resume) and, if not, why. Every way of carrying a run out (in this process,
worker processes, submitit jobs, a distributed pretraining) starts from :func:`plan_run`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ssl_bench.engine.context import SweepContext, error_line
from ssl_bench.engine.identity import Reuse, cell_setup, check_reuse
from ssl_bench.engine.label_collapse import collapse_label_settings
from ssl_bench.engine.plan import (
    Cell,
    RunOptions,
    choose_benchmarks,
    data_ready,
    plan_cells,
    resolve_data,
)
from ssl_bench.plugins import get_registries


@dataclass
class RunPlan:
    """A resolved run: the options (with the benchmarks that run), the cells, and for each
    cell whether its record can be reused and why not."""

    options: RunOptions
    ctx: SweepContext
    cells: list[Cell]
    reuse: dict[Cell, Reuse]
    skipped_benchmarks: list[str]

    @property
    def todo(self) -> list[Cell]:
        return [c for c in self.cells if not self.reuse[c].reusable]


def plan_run(options: RunOptions, log: Callable[[str], None], write_synthetic: bool = True
             ) -> RunPlan:
    """Choose benchmarks, resolve data (writing the synthetic suite unless told not to) and
    decide, cell by cell, whether its record stands."""
    regs = get_registries()
    choice = choose_benchmarks(options, regs)
    options = replace(options, benchmarks=choice.run)
    # the datasets of --pool-with benchmarks shape the pools as the run's own do
    benchmarks = [regs.benchmarks.get(b) for b in options.pool_benchmark_ids]
    sources = resolve_data(options, benchmarks, regs, write_synthetic=write_synthetic, log=log)
    ctx = SweepContext(options, regs, sources, log=log)
    cells = plan_cells(options, regs)
    # a pretrained cell's identity holds its pool, which leaves out the held-out recordings of
    # every dataset of the run: it can be computed only once all of them are there
    all_ready = data_ready(sources, [b.dataset for b in benchmarks])
    reuse = {}
    for cell in cells:
        expected = None
        if cell.applicable and all_ready:
            try:
                expected = cell_setup(ctx, cell).identity
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # the cell will fail and record why
                reuse[cell] = Reuse(False, f"cannot be set up: {error_line(exc)}")
                continue
        reuse[cell] = check_reuse(ctx, cell, expected)
    cells = collapse_label_settings(ctx, cells, reuse, log)
    return RunPlan(options, ctx, cells, reuse, choice.skipped)


__all__ = ["RunPlan", "plan_run"]
