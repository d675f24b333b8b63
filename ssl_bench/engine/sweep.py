"""The sweep engine behind ``ssl-bench run``.

1. choose the benchmarks whose data can be had, plan cells (method x benchmark x label
   setting x seed); n/a cells are recorded; a cell whose record has the same identity is
   reused (resume), any other is computed and ``--dry-run`` says why;
2. pretrain each (method, domain pool) once, content-addressed and cached
   (:mod:`ssl_bench.engine.pretrain`); the pool holds only train units whose source recording
   is not in a val/test split of any dataset of the run;
3. evaluate each cell and write one record, atomically: in this process, or, with ``--jobs N``
   (the default on a CPU: one per core), pretrainings and cells together over N worker
   processes (:mod:`ssl_bench.engine.workers`); a failing cell becomes a failed record, its
   reason is printed beside it, and the run goes on;
4. print and write the leaderboard of what ran.

``--dry-run`` adds the estimate of each stage, and a run shows its ETA from the start
(:mod:`ssl_bench.engine.estimate`, :mod:`ssl_bench.engine.eta`, :mod:`ssl_bench.engine.display`);
every run keeps the rates its records measured for the estimates of later runs
(:mod:`ssl_bench.engine.rates`).

Distributed pretraining (``--launcher``) is :mod:`ssl_bench.engine.distributed`, cluster
jobs :mod:`ssl_bench.engine.executors`; both build on the public names here.
"""

from __future__ import annotations

import sys
from typing import Callable

from ssl_bench.engine.cells import process_cell
from ssl_bench.engine.context import SweepContext, error_line
from ssl_bench.engine.display import Display
from ssl_bench.engine.estimate import RunEstimate
from ssl_bench.engine.identity import needs_pretraining, pretraining_runs
from ssl_bench.engine.plan import Cell, RunOptions
from ssl_bench.engine.run_plan import RunPlan, plan_run
from ssl_bench.engine.workers import plugin_setup, run_in_workers
from ssl_bench.errors import SSLBenchError
from ssl_bench.plugins import Registries


def print_plan(plan: RunPlan, estimate: RunEstimate | None = None) -> None:
    """The ``--dry-run`` report: every cell to compute, with why, and the estimate."""
    options, regs = plan.options, plan.ctx.regs
    todo = plan.todo
    print(f"profile {options.profile}, device {options.device}, results {options.results}")
    for line in plan.skipped_benchmarks:
        print(line)
    print(f"{len(plan.cells)} cells planned, {len(plan.cells) - len(todo)} already recorded "
          f"(reused), {len(todo)} to compute")
    for c in todo:
        state = "compute" if c.applicable else f"n/a ({c.reason})"
        print(f"  {c.key}: {state}: {plan.reuse[c].reason}")
    pretraining = sorted({c.method for c in todo
                          if c.applicable and needs_pretraining(regs.methods.get(c.method))})
    for method_id in pretraining:
        print(f"  pretraining: {method_id}: pretrain (cached if its checkpoint exists)")
    if estimate is not None:
        from ssl_bench.engine.estimate import estimate_lines

        for line in estimate_lines(estimate):
            print(line)


def plan_estimate(plan: RunPlan, log: Callable[[str], None]) -> RunEstimate | None:
    """The plan's estimate, from the rates kept on this machine and those the records already
    in the results directory measured; None (with a line saying why) when it cannot be made:
    an estimate never stops a run."""
    from ssl_bench.engine.estimate import estimate_run
    from ssl_bench.engine.rates import learn_from_results, load_rates

    try:
        rates = load_rates().merged(learn_from_results(
            plan.options.results, _domain_lookup(plan.ctx.regs), _device_names(plan.options)))
        return estimate_run(plan, rates)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a plugin's prepare_cost, an unreadable cache, ...
        log(f"no time estimate: {error_line(exc)}")
        return None


def remember_rates(options: RunOptions, regs: Registries, log: Callable[[str], None]) -> None:
    """Keep what this run's records measured for later estimates (never fails the run)."""
    from ssl_bench.engine.rates import learn_from_results, remember

    try:
        remember(learn_from_results(options.results, _domain_lookup(regs),
                                    _device_names(options)))
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        log(f"the measured rates were not kept: {error_line(exc)}")


def _device_names(options: RunOptions) -> set[str]:
    """This machine's CPU name and the run device's name, as records store them."""
    from ssl_bench.environment import current_environment

    return {current_environment("cpu").device_name,
            current_environment(options.device).device_name}


def _domain_lookup(regs: Registries) -> Callable[[str], str | None]:
    def domain_of(dataset_id: str) -> str | None:
        try:
            return regs.datasets.get(dataset_id).meta.domain
        except SSLBenchError:
            return None

    return domain_of


def _check_results_writable(options: RunOptions) -> None:
    try:
        options.results.mkdir(parents=True, exist_ok=True)
        probe = options.results / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SSLBenchError(f"results directory {options.results} is not writable ({exc}); "
                            "pass a writable --results DIR") from None


def pretrain_all(ctx: SweepContext, cells: list[Cell], display: Display) -> None:
    """Run every pretraining the applicable cells need, once, in this process; a failure is
    printed once and its cells become failed records."""
    for run in pretraining_runs(ctx, cells):
        display.pretraining(run)
        ok = False
        try:
            ctx.pretrain(run)
            ok = True
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # its cells are recorded as failed below
            display.print(f"pretraining {run.label} failed: {error_line(exc)}", always=True)
            if display.debug and run in ctx.pretrain_errors:
                display.print(ctx.pretrain_errors[run].traceback, always=True)
        finally:
            display.pretrained(run, ok)


def run_sweep(options: RunOptions) -> int:
    """Run (or, with ``--dry-run``, describe) a sweep in this process; returns the exit code."""
    if not options.dry_run:
        _check_results_writable(options)
    display = Display(options.quiet or options.dry_run, options.debug)
    plan = plan_run(options, display.log, write_synthetic=not options.dry_run)
    if options.dry_run:
        print_plan(plan, plan_estimate(plan, print))
        return 0
    for line in plan.skipped_benchmarks:
        display.print(line, always=True)
    todo = plan.todo
    options, ctx = plan.options, plan.ctx
    # the estimate feeds the ETA tracker, which orders the workers' queue (longest first):
    # computed with --quiet too, which only silences the display
    estimate = plan_estimate(plan, display.log) if todo else None
    ctx.progress = display.progress
    display.begin(len(todo), estimate)
    failures: list[str] = []
    try:
        if options.jobs > 1 and len(todo) > 1:
            failures = run_in_workers(ctx, todo, display, options.jobs, plugin_setup())
        else:
            pretrain_all(ctx, todo, display)
            for cell in todo:
                display.running(cell)
                outcome = process_cell(ctx, cell)
                display.done(cell, outcome)
                if outcome.status == "failed":
                    failures.append(f"{cell.key}: {outcome.error}")
    finally:
        display.stop()
        if todo:
            remember_rates(options, ctx.regs, display.log)

    from ssl_bench.leaderboard import write_run_leaderboard

    print(write_run_leaderboard(options.results, options.benchmarks))
    if failures:
        print(f"{len(failures)} cell(s) failed (tracebacks in their records under "
              f"{options.results / 'records'}; --debug prints them):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


__all__ = ["plan_estimate", "pretrain_all", "print_plan", "remember_rates", "run_sweep"]
