"""Pretraining on several processes, the launch level: every rank of a torchrun / srun process
group pretrains the plan's pretraining items together (DDP), rank 0 alone fills the checkpoint
store and then carries out the same plan in one process
(:func:`ssl_bench.engine.sweep.carry_out`), which finds the checkpoints cached.

How one pretraining runs on N processes (process group, DDP wrapper, sharded loader, buffers,
SyncBatchNorm) is described and implemented in :mod:`ssl_bench.engine.ddp`; the ``torchrun``
entry point is :mod:`ssl_bench.torchrun`, and submitit jobs call :func:`pretrain_distributed`
from :mod:`ssl_bench.engine.executors`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import torch

from ssl_bench.engine.checkpoint_store import (
    checkpoint_is_intact,
    checkpoint_lock,
    discard,
    has_files,
    save_checkpoint,
)
from ssl_bench.engine.context import SweepContext
from ssl_bench.engine.ddp import (
    barrier,
    broadcast_object,
    default_backend,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    report_state,
    shutdown_distributed,
    sync_buffers,
)
from ssl_bench.engine.display import Display
from ssl_bench.engine.plan import Pretraining, RunOptions
from ssl_bench.engine.pretrain import PretrainResult, checkpoint_key, run_pretraining
from ssl_bench.engine.run_plan import plan_run
from ssl_bench.engine.sweep import RunReport, carry_out, check_results_writable
from ssl_bench.engine.work import WorkPlan, plan_work

# ---- one pretraining on every rank ------------------------------------------------------------


def pretrain_distributed(ctx: SweepContext, run: Pretraining, launcher: str) -> PretrainResult:
    """One pretraining run on every rank of the process group; rank 0 alone checks and fills
    the checkpoint cache. Every rank must call it."""
    method_id, domain, seed = run.method, run.domain, run.seed
    method = ctx.method(method_id, seed)
    size, fps = method.config.image_size, method.config.fps
    fingerprint = ctx.pool_fingerprint(domain, size, fps)
    key = checkpoint_key(method, fingerprint, seed)
    ckpt = ctx.checkpoints.path(method.meta.id, key)
    lock = checkpoint_lock(ckpt) if is_main_process() else None
    cached = False
    if lock is not None:
        lock.acquire()  # held by rank 0 until the checkpoint is written
        cached = checkpoint_is_intact(ckpt)
        if not cached and has_files(ckpt):
            ctx.log(f"checkpoint {ckpt} is damaged or incomplete; pretraining again")
            discard(ckpt)
    try:
        if broadcast_object(cached):
            return PretrainResult(ckpt, key, 0.0, True, 0)
        pool = ctx.pool(domain, size, fps)
        work_dir = ctx.checkpoints.work_dir(method.meta.id, key)
        ctx.log(f"pretraining {method_id} on the {domain} pool ({len(pool)} frames) on "
                f"{get_world_size()} processes (rank {get_rank()})")
        start = time.perf_counter()
        losses: list[float] = []
        stages: list[int] = []
        net, steps = run_pretraining(method, pool, work_dir, seed, ctx.log, launcher=launcher,
                                     losses=losses, stages=stages)
        seconds = time.perf_counter() - start
        sync_buffers(net)
        report_state(net, steps)
        figures = None
        if is_main_process():
            figures = ctx.health(domain, method.encoder(net), losses, stages)
            save_checkpoint(ckpt, net, method, key, pool.fingerprint, seed, steps, seconds,
                            {**ctx.pretrain_extras(domain), "health": figures})
            for stale in [*work_dir.glob("*.pth"), work_dir / "last_checkpoint"]:
                stale.unlink(missing_ok=True)
        barrier()
        return PretrainResult(ckpt, key, seconds, False, steps, figures)
    finally:
        if lock is not None:
            lock.release()


def run_distributed(options: RunOptions) -> RunReport:
    """``ssl-bench run --launcher pytorch|slurm``: every rank plans the run and pretrains the
    plan's pretraining items together (DDP); rank 0 then carries out the same plan in one
    process, evaluating the cells and writing records exactly as a one-process run (which
    finds the checkpoints cached). Only rank 0's report asks for the leaderboard."""
    init_distributed(options.launcher, default_backend(options.device))
    if options.device.startswith("cuda") and torch.cuda.is_available():
        options = replace(options, device=f"cuda:{torch.cuda.current_device()}")
    try:
        log = (lambda _m: None) if (options.quiet or not is_main_process()) else \
            (lambda m: print(m, flush=True, file=sys.stderr))
        # rank 0 writes the synthetic suite, the others read it
        run = plan_run(options, log, write_synthetic=True) if is_main_process() else None
        barrier()
        if run is None:
            run = plan_run(options, log, write_synthetic=False)
        plan = plan_work(run)
        for item in plan.pretrainings:
            pretrain_distributed(plan.ctx, item.run, options.launcher)
            item.cached = True  # in the store now: rank 0 wrote it before the barrier
        barrier()
        report = RunReport(0, plan.options.results, plan.options.benchmarks, leaderboard=False)
        if is_main_process():
            report = _cells_on_rank_0(plan)
        return replace(report, code=int(broadcast_object(report.code)))
    finally:
        shutdown_distributed()


def _cells_on_rank_0(plan: WorkPlan) -> RunReport:
    """The plan's cells (and its pretrainings, cached now) carried out by rank 0 alone, as a
    one-process run."""
    local = replace(plan.options, launcher="none")
    plan.run.options = plan.ctx.options = local
    check_results_writable(local)
    display = Display(local.quiet, local.debug)
    plan.ctx.log = display.log
    for line in plan.run.skipped_benchmarks:
        display.print(line, always=True)
    return carry_out(plan, display)


__all__ = ["pretrain_distributed", "run_distributed"]
