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
4. return a :class:`RunReport`: the command (:mod:`ssl_bench.commands.run`) then writes and
   prints the leaderboard of what ran, and the failures.

Steps 1-2 are planned once (:func:`ssl_bench.engine.run_plan.plan_run`, then
:func:`ssl_bench.engine.work.plan_work`) and :func:`carry_out` runs that plan. ``--dry-run``
adds the estimate of each stage, and a run shows its ETA from the start
(:mod:`ssl_bench.engine.estimate`, :mod:`ssl_bench.engine.eta`, :mod:`ssl_bench.engine.display`):
the run owns the ETA tracker and hands it to the display and the workers; every run keeps the
rates its records measured for the estimates of later runs (:mod:`ssl_bench.engine.rates`).

Distributed pretraining (``--launcher``) is :mod:`ssl_bench.engine.distributed`, cluster
jobs :mod:`ssl_bench.engine.executors`; both build on the public names here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ssl_bench.engine.cells import process_cell
from ssl_bench.engine.context import SweepContext, error_line
from ssl_bench.engine.display import Display
from ssl_bench.engine.estimate import RunEstimate
from ssl_bench.engine.eta import EtaTracker
from ssl_bench.engine.identity import needs_pretraining
from ssl_bench.engine.plan import RunOptions
from ssl_bench.engine.run_plan import plan_run
from ssl_bench.engine.work import PretrainItem, WorkPlan, plan_work
from ssl_bench.engine.workers import plugin_setup, run_in_workers
from ssl_bench.errors import SSLBenchError
from ssl_bench.plugins import Registries


@dataclass
class RunReport:
    """What a run leaves to the command: its exit code, the results folder and benchmarks its
    leaderboard covers, and the lines (failures, missing cells) printed after the leaderboard
    on stderr."""

    code: int
    results: Path
    benchmarks: list[str]
    #: whether the command writes the leaderboard (not after a dry run, nor on a rank > 0)
    leaderboard: bool = True
    notes: list[str] = field(default_factory=list)


def print_plan(plan: WorkPlan, estimate: RunEstimate | None = None) -> None:
    """The ``--dry-run`` report: every cell to compute, with why, the estimate and, for the
    ``paper`` profile or a CUDA device, the pretrainings' FLOPs and GPU-hours
    (:mod:`ssl_bench.engine.flops`)."""
    run = plan.run
    options, regs = plan.options, plan.ctx.regs
    todo = run.todo
    print(f"profile {options.profile}, device {options.device}, results {options.results}")
    for line in run.skipped_benchmarks:
        print(line)
    print(f"{len(run.cells)} cells planned, {len(run.cells) - len(todo)} already recorded "
          f"(reused), {len(todo)} to compute")
    for c in todo:
        state = "compute" if c.applicable else f"n/a ({c.reason})"
        print(f"  {c.key}: {state}: {run.reuse[c].reason}")
    pretraining = sorted({c.method for c in todo
                          if c.applicable and needs_pretraining(regs.methods.get(c.method))})
    for method_id in pretraining:
        print(f"  pretraining: {method_id}: pretrain (cached if its checkpoint exists)")
    if estimate is not None:
        from ssl_bench.engine.estimate import estimate_lines

        for line in estimate_lines(estimate):
            print(line)
        from ssl_bench.engine.flops import compute_lines

        for line in compute_lines(plan, estimate):
            print(line)


def plan_estimate(plan: WorkPlan, log: Callable[[str], None]) -> RunEstimate | None:
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


def check_results_writable(options: RunOptions) -> None:
    """Stop the run with one line when the results folder cannot be written."""
    try:
        options.results.mkdir(parents=True, exist_ok=True)
        probe = options.results / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SSLBenchError(f"results directory {options.results} is not writable ({exc}); "
                            "pass a writable --results DIR") from None


def pretrain_all(ctx: SweepContext, items: list[PretrainItem], display: Display) -> None:
    """Run the plan's pretrainings, once each, in this process (a cached one reads its
    sidecar); a failure is printed once and its cells become failed records."""
    for item in items:
        run = item.run
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


def run_sweep(options: RunOptions) -> RunReport:
    """Plan a sweep once and carry it out in this process (or its workers); with
    ``--dry-run``, describe the plan instead."""
    if not options.dry_run:
        check_results_writable(options)
    display = Display(options.quiet or options.dry_run, options.debug)
    plan = plan_work(plan_run(options, display.log, write_synthetic=not options.dry_run))
    if options.dry_run:
        print_plan(plan, plan_estimate(plan, print))
        return RunReport(0, plan.options.results, plan.options.benchmarks, leaderboard=False)
    for line in plan.run.skipped_benchmarks:
        display.print(line, always=True)
    return carry_out(plan, display)


def carry_out(plan: WorkPlan, display: Display) -> RunReport:
    """Carry out a plan in this process, or over ``--jobs`` worker processes: pretrainings,
    then cells, each recorded as it finishes."""
    options, ctx = plan.options, plan.ctx
    todo = plan.cells
    # the run's ETA: fed by the display's events, read by the workers to order their queue
    # (longest first); made with --quiet too, which only silences the display
    estimate = plan_estimate(plan, display.log) if todo else None
    eta = EtaTracker(estimate) if estimate is not None else None
    ctx.progress = display.progress
    display.begin(len(todo), eta, len(plan.to_pretrain))
    failures: list[str] = []
    try:
        if options.jobs > 1 and len(todo) > 1:
            failures = run_in_workers(plan, display, eta, options.jobs, plugin_setup())
        else:
            pretrain_all(ctx, plan.pretrainings, display)
            for item in todo:
                display.running(item.cell)
                outcome = process_cell(ctx, item.cell)
                display.done(item.cell, outcome)
                if outcome.status == "failed":
                    failures.append(f"{item.key}: {outcome.error}")
    finally:
        display.stop()
        if todo:
            remember_rates(options, ctx.regs, display.log)

    notes = []
    if failures:
        notes.append(f"{len(failures)} cell(s) failed (tracebacks in their records under "
                     f"{options.results / 'records'}; --debug prints them):")
        notes += [f"  {line}" for line in failures]
    return RunReport(1 if failures else 0, options.results, options.benchmarks, notes=notes)


__all__ = ["RunReport", "carry_out", "check_results_writable", "plan_estimate", "pretrain_all",
           "print_plan", "remember_rates", "run_sweep"]
