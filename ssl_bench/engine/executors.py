"""``ssl-bench run --executor local|slurm``: the sweep's jobs through submitit.

Jobs are picklable callables run by submitit (``submitit.LocalExecutor`` runs them as
subprocesses of this machine, ``submitit.SlurmExecutor`` through ``sbatch``; submitit docs,
"Executors" and submitit/slurm/slurm.py ``_make_sbatch_string`` for the sbatch options):

* :class:`PretrainJob`: one (method, domain) pretraining into the shared checkpoint cache
  (``<results>/cache/checkpoints``). With ``--gpus-per-job N > 1`` the job has N tasks (one per
  GPU); each task exports torch's env:// variables from the job environment
  (``submitit.helpers.TorchDistributedEnvironment``) and joins a DDP pretraining
  (:func:`ssl_bench.engine.distributed.pretrain_distributed`).
* :class:`CellJob`: one cell, evaluated and recorded by the same code as an in-process run
  (:func:`ssl_bench.engine.cells.process_cell`), so records land in ``<results>/records``
  exactly as locally; the cell finds its pretraining in the cache.

Order: pretraining jobs first; the cells that need one follow. On SLURM they are submitted at
once with ``--dependency=afterok:<pretraining job>`` and ``--kill-on-invalid-dep=yes`` (sbatch
man page), so a failed pretraining cancels its cells; the local executor submits them when
their pretraining has finished and runs at most ``--jobs`` jobs at a time. The jobs are the
run's plan (:class:`ssl_bench.engine.work.WorkPlan`): a pretraining job per pretraining item
whose checkpoint is not cached, a cell job per cell item, its dependency the item's ``needs``.
This command waits for the jobs (the command then writes the leaderboard); cells of a failed
pretraining get failed records (as in an in-process run). A job that died without a record
(killed, out of memory, time limit) leaves its cell missing: re-running the same command plans
only the missing cells and pretrainings whose checkpoint is not cached, so it submits only
those.

Jobs see the plugins of this process: entry points are re-loaded by name and plugins
registered by hand are pickled (:func:`ssl_bench.engine.workers.plugin_setup`).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ssl_bench.engine import ddp
from ssl_bench.engine.cells import CellOutcome, process_cell
from ssl_bench.engine.context import PretrainFailure, SweepContext, error_line
from ssl_bench.engine.distributed import pretrain_distributed
from ssl_bench.engine.identity import check_reuse
from ssl_bench.engine.plan import Cell, Pretraining, RunOptions
from ssl_bench.engine.run_plan import plan_run
from ssl_bench.engine.sweep import RunReport
from ssl_bench.engine.work import CellItem, plan_work
from ssl_bench.engine.workers import PluginSetup, plugin_setup, worker_context
from ssl_bench.errors import SSLBenchError


@dataclass(frozen=True)
class ExecutorOptions:
    """How jobs are run. ``kind``: ``local`` or ``slurm``; the rest map to sbatch options."""

    kind: str
    partition: str | None = None  # --partition
    gpus_per_job: int = 0  # --gpus-per-node (and --ntasks-per-node for pretraining jobs)
    cpus_per_job: int | None = None  # --cpus-per-task; torch threads in the job
    time_min: int = 240  # --time
    mem: str | None = None  # --mem
    folder: Path | None = None  # submitit's logs and pickles; default <results>/submitit
    poll_s: float = 0.5


def _job_context(options: RunOptions, threads: int | None, setup: PluginSetup) -> SweepContext:
    """The sweep context of a job process, with the submitting process's plugins."""
    log = (lambda _m: None) if options.quiet else \
        (lambda message: print(message, file=sys.stderr, flush=True))
    return worker_context(options, threads or torch.get_num_threads(), setup, log)


@dataclass
class PretrainJob:
    """Run one pretraining into the checkpoint cache; ``distributed``: this is one task of a
    multi-task job and pretrains with DDP over the job's tasks."""

    options: RunOptions
    run: Pretraining
    plugin_setup: PluginSetup
    threads: int | None = None
    distributed: bool = False

    def __call__(self) -> dict[str, Any]:
        if not self.distributed:
            ctx = _job_context(self.options, self.threads, self.plugin_setup)
            result = ctx.pretrain(self.run)
            return {"checkpoint": str(result.checkpoint), "cached": result.cached}
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        ddp.init_distributed("pytorch", ddp.default_backend(self.options.device))
        try:
            ctx = _job_context(replace(self.options, launcher="pytorch"), self.threads,
                               self.plugin_setup)
            result = pretrain_distributed(ctx, self.run, "pytorch")
            return {"checkpoint": str(result.checkpoint), "cached": result.cached}
        finally:
            ddp.shutdown_distributed()


@dataclass
class CellJob:
    """Evaluate and record one cell (skipped when its record exists)."""

    options: RunOptions
    cell: Cell
    plugin_setup: PluginSetup
    threads: int | None = None

    def __call__(self) -> CellOutcome:
        ctx = _job_context(self.options, self.threads, self.plugin_setup)
        return process_cell(ctx, self.cell)


def make_executor(ex: ExecutorOptions, folder: Path) -> Any:
    import submitit

    if ex.kind == "local":
        return submitit.LocalExecutor(folder=folder)
    if ex.kind == "slurm":
        if shutil.which("srun") is None or shutil.which("sbatch") is None:
            raise SSLBenchError("--executor slurm: srun/sbatch not found on PATH; run on a SLURM "
                                "login node, or use --executor local on this machine")
        return submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
    raise SSLBenchError(f"--executor {ex.kind!r}: use none, local or slurm")


def configured_executor(ex: ExecutorOptions, folder: Path, name: str, tasks: int, gpus: int,
                        dependency: str | None = None) -> Any:
    """A fresh executor for one job (submitit's parameters accumulate across updates, so one
    executor per job keeps a cell's dependency off the next job)."""
    executor = make_executor(ex, folder)
    if ex.kind == "local":
        executor.update_parameters(timeout_min=ex.time_min, tasks_per_node=tasks,
                                   gpus_per_node=gpus)
        return executor
    params: dict[str, Any] = dict(job_name=name, time=ex.time_min, nodes=1,
                                  ntasks_per_node=tasks, gpus_per_node=gpus or None,
                                  cpus_per_task=ex.cpus_per_job, partition=ex.partition,
                                  mem=ex.mem, dependency=dependency,
                                  additional_parameters=({"kill_on_invalid_dep": "yes"}
                                                         if dependency else {}))
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def _job_options(options: RunOptions, ex: ExecutorOptions) -> RunOptions:
    """Options as a job sees them: on GPU nodes the device is the job's GPU, even when this
    (login) process has none."""
    if ex.gpus_per_job > 0 and options.device == "cpu":
        return replace(options, device="cuda")
    return options


def _wait(jobs: list[tuple[Any, Any]], poll_s: float, on_done: Callable[[Any, Any, Any], None]
          ) -> None:
    """Wait for (info, job) pairs; call ``on_done(info, result, error)`` as each finishes."""
    running = list(jobs)
    while running:
        for item in list(running):
            info, job = item
            if job.done():
                running.remove(item)
                try:
                    on_done(info, job.result(), None)
                except Exception as exc:  # the job raised, or died without a result
                    on_done(info, None, exc)
        if running:
            time.sleep(poll_s)


def _run_capped(submit: Callable[[Any, Callable[[], Any]], Any],
                tasks: Sequence[tuple[Any, Callable[[], Any]]], cap: int, poll_s: float,
                on_done: Callable[[Any, Any, Any], None]) -> None:
    """Submit ``tasks`` keeping at most ``cap`` jobs running."""
    queue = list(tasks)
    running: list[tuple[Any, Any]] = []
    while queue or running:
        while queue and len(running) < cap:
            info, fn = queue.pop(0)
            running.append((info, submit(info, fn)))
        for item in list(running):
            info, job = item
            if job.done():
                running.remove(item)
                _wait([item], poll_s, on_done)
        if running:
            time.sleep(poll_s)


def run_with_executor(options: RunOptions, ex: ExecutorOptions) -> RunReport:
    """Plan, submit pretraining then cell jobs, and wait. The report's exit code is 1 when a
    cell failed or is still missing."""
    if options.launcher != "none":
        raise SSLBenchError(f"--executor {ex.kind} with --launcher {options.launcher}: the "
                            "executor starts the ranks itself; drop --launcher (use "
                            "--gpus-per-job for multi-GPU pretraining jobs)")
    if ex.gpus_per_job < 0:
        raise SSLBenchError(f"--gpus-per-job {ex.gpus_per_job}: give 0 or more GPUs")
    try:
        options.results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SSLBenchError(f"results directory {options.results} is not writable ({exc}); "
                            "pass a writable --results DIR") from None

    def log(message: str) -> None:
        if not options.quiet:
            print(message, file=sys.stderr, flush=True)

    plan = plan_work(plan_run(options, log))  # jobs read the data this writes
    options, ctx = plan.options, plan.ctx
    for line in plan.run.skipped_benchmarks:
        print(line, file=sys.stderr)
    todo = plan.cells
    statuses: dict[str, CellOutcome] = {}
    for item in todo:
        if not item.cell.applicable:  # n/a records need no job
            statuses[item.key] = process_cell(ctx, item.cell)

    applicable = [i for i in todo if i.cell.applicable]
    to_pretrain = [p.run for p in plan.to_pretrain]

    folder = ex.folder or options.results / "submitit"
    make_executor(ex, folder / "%j")  # fails early without srun/sbatch
    setup = plugin_setup()
    job_options = _job_options(options, ex)
    distributed = ex.gpus_per_job > 1
    pre_tasks = [(run, PretrainJob(job_options, run, setup, ex.cpus_per_job, distributed))
                 for run in to_pretrain]

    def cell_task(item: CellItem) -> tuple[Cell, CellJob]:
        return item.cell, CellJob(job_options, item.cell, setup, ex.cpus_per_job)

    def submit_pretraining(run: Pretraining, fn: Callable[[], Any]) -> Any:
        tasks = ex.gpus_per_job if distributed else 1
        job = configured_executor(ex, folder / "%j", f"ssl-bench-pretrain-{run.method}", tasks,
                                  ex.gpus_per_job).submit(fn)
        log(f"submitted pretraining {run.label}: job {job.job_id}")
        return job

    def submit_cell(cell: Cell, fn: Callable[[], Any], dependency: str | None = None) -> Any:
        job = configured_executor(ex, folder / "%j", f"ssl-bench-{cell.method}-{cell.benchmark}",
                                  1, min(ex.gpus_per_job, 1), dependency).submit(fn)
        log(f"submitted cell {cell.key}: job {job.job_id}")
        return job

    pretrain_errors: dict[Pretraining, str] = {}
    pretrain_tracebacks: dict[Pretraining, str] = {}

    def pretraining_done(run: Pretraining, result: Any, error: Any) -> None:
        if error is not None:
            pretrain_errors[run] = error_line(error)
            pretrain_tracebacks[run] = str(error)  # submitit's error carries the traceback
            print(f"pretraining {run.label} failed: {pretrain_errors[run]}",
                  file=sys.stderr, flush=True)

    def cell_done(cell: Cell, result: Any, error: Any) -> None:
        if error is None:
            statuses[cell.key] = result
        elif check_reuse(ctx, cell, None).record is not None:  # recorded by a concurrent run
            statuses[cell.key] = CellOutcome("skipped")
        else:
            log(f"cell {cell.key}: its job ended without a record ({error_line(error)})")
        outcome = statuses.get(cell.key)
        reason = f": {outcome.error}" if outcome is not None and outcome.error else ""
        print(f"{outcome.status if outcome else 'missing':7s} {cell.key}{reason}",
              file=sys.stderr, flush=True)

    if ex.kind == "slurm":
        pre_jobs = {run: submit_pretraining(run, fn) for run, fn in pre_tasks}
        cell_jobs = []
        for item in applicable:
            pre = pre_jobs.get(item.needs) if item.needs is not None else None
            dep = f"afterok:{pre.job_id}" if pre is not None else None
            cell_jobs.append((item.cell, submit_cell(item.cell, cell_task(item)[1], dep)))
        _wait([(run, job) for run, job in pre_jobs.items()], ex.poll_s, pretraining_done)
        _wait(cell_jobs, ex.poll_s, cell_done)
    else:
        cap = max(1, options.jobs)
        _run_capped(submit_pretraining, pre_tasks, cap, ex.poll_s, pretraining_done)
        ready = [i for i in applicable if i.needs not in pretrain_errors]
        _run_capped(submit_cell, [cell_task(i) for i in ready], cap, ex.poll_s, cell_done)
    # cells of a failed pretraining: failed records, as in an in-process run
    for item in applicable:
        run = item.needs
        if item.key not in statuses and run is not None and run in pretrain_errors:
            ctx.pretrain_errors[run] = PretrainFailure(pretrain_errors[run],
                                                       pretrain_tracebacks.get(run, ""))
            statuses[item.key] = process_cell(ctx, item.cell)

    failed = [f"{i.key}: {statuses[i.key].error}" for i in todo
              if i.key in statuses and statuses[i.key].status == "failed"]
    missing = [i.key for i in todo if i.key not in statuses]
    notes = []
    if failed:
        notes.append(f"{len(failed)} cell(s) failed (errors are in their records under "
                     f"{options.results / 'records'}):")
        notes += [f"  {key}" for key in failed]
    if missing:
        notes.append(f"{len(missing)} cell(s) have no record (their job died; logs under "
                     f"{folder}); run the same command again to submit only those:")
        notes += [f"  {key}" for key in missing]
    return RunReport(1 if failed or missing else 0, options.results, options.benchmarks,
                     notes=notes)


__all__ = ["CellJob", "ExecutorOptions", "PretrainJob", "configured_executor", "make_executor",
           "run_with_executor"]
