"""Pretraining on several processes, the launch level: every rank of a torchrun / srun process
group pretrains the run's methods together (DDP), rank 0 alone fills the checkpoint cache and
then evaluates the cells and writes the records, as a one-process run that finds the
checkpoints cached.

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
from filelock import FileLock

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
from ssl_bench.engine.identity import pretraining_runs
from ssl_bench.engine.plan import Pretraining, RunOptions
from ssl_bench.engine.pretrain import (
    PretrainResult,
    checkpoint_is_intact,
    checkpoint_key,
    checkpoint_path,
    run_pretraining,
    save_checkpoint,
)
from ssl_bench.engine.run_plan import plan_run
from ssl_bench.engine.sweep import run_sweep

# ---- one pretraining on every rank ------------------------------------------------------------


def pretrain_distributed(ctx: SweepContext, run: Pretraining, launcher: str) -> PretrainResult:
    """One pretraining run on every rank of the process group; rank 0 alone checks and fills
    the checkpoint cache. Every rank must call it."""
    method_id, domain, seed = run.method, run.domain, run.seed
    method = ctx.method(method_id, seed)
    size, fps = method.config.image_size, method.config.fps
    fingerprint = ctx.pool_fingerprint(domain, size, fps)
    key = checkpoint_key(method, fingerprint, seed)
    ckpt = checkpoint_path(ctx.cache_root, method.meta.id, key)
    lock = FileLock(str(ckpt) + ".lock")
    cached = False
    if is_main_process():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()  # held by rank 0 until the checkpoint is written
        cached = checkpoint_is_intact(ckpt)
        if not cached and (ckpt.exists() or ckpt.with_suffix(".json").exists()):
            ctx.log(f"checkpoint {ckpt} is damaged or incomplete; pretraining again")
            ckpt.unlink(missing_ok=True)
            ckpt.with_suffix(".json").unlink(missing_ok=True)
    try:
        if broadcast_object(cached):
            return PretrainResult(ckpt, key, 0.0, True, 0)
        pool = ctx.pool(domain, size, fps)
        work_dir = ctx.cache_root / "work_dirs" / method.meta.id / key
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
        if is_main_process():
            lock.release()


def run_distributed(options: RunOptions) -> int:
    """``ssl-bench run --launcher pytorch|slurm``: every rank pretrains the run's methods
    together (DDP); rank 0 then evaluates the cells and writes records and the leaderboard
    exactly as a one-process run (which finds the checkpoints cached)."""
    init_distributed(options.launcher, default_backend(options.device))
    if options.device.startswith("cuda") and torch.cuda.is_available():
        options = replace(options, device=f"cuda:{torch.cuda.current_device()}")
    try:
        log = (lambda _m: None) if (options.quiet or not is_main_process()) else \
            (lambda m: print(m, flush=True, file=sys.stderr))
        # rank 0 writes the synthetic suite, the others read it
        plan = plan_run(options, log, write_synthetic=True) if is_main_process() else None
        barrier()
        if plan is None:
            plan = plan_run(options, log, write_synthetic=False)
        ctx = plan.ctx
        for run in pretraining_runs(ctx, plan.todo):
            pretrain_distributed(ctx, run, options.launcher)
        barrier()
        code = 0
        if is_main_process():
            code = run_sweep(replace(options, launcher="none"))
        return int(broadcast_object(code))
    finally:
        shutdown_distributed()


__all__ = ["pretrain_distributed", "run_distributed"]
