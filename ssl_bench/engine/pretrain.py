"""Pretraining on mmengine's Runner, with a content-addressed checkpoint cache.

One checkpoint per (method id+version, method config, pretraining pool fingerprint,
pretrain seed); where it lives, how it is written and checked is
:mod:`ssl_bench.engine.checkpoint_store`. The Runner gives checkpointing and resume after a
kill (``resume=True`` finds the latest checkpoint in the work dir), logging and TensorBoard
(when installed).

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine's resume then fails on
the few non-tensor objects it stores in its own checkpoints (its message-hub history,
numpy scalars in the meta). We allow-list exactly those globals
(:func:`allow_mmengine_checkpoint_globals`) instead of loading with ``weights_only=False``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ssl_bench.api import Method, PretrainPool, Progress
from ssl_bench.engine import ddp
from ssl_bench.engine.checkpoint_store import (
    CheckpointStore,
    checkpoint_is_intact,
    checkpoint_lock,
    discard,
    has_files,
    load_pretrained,
    read_sidecar,
    save_checkpoint,
    write_sidecar,
)
from ssl_bench.engine.cost import planned_steps
from ssl_bench.engine.health import step_stage
from ssl_bench.engine.loader import EndlessLoader, loader_options
from ssl_bench.engine.steps import NonFiniteLoss, apply_losses
from ssl_bench.errors import SSLBenchError
from ssl_bench.precision import configure_device, prepare_module, pretraining_precision


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list the globals mmengine writes into its own resume checkpoints."""
    import collections

    from mmengine.logging import HistoryBuffer
    from mmengine.logging.message_hub import MessageHub  # noqa: F401

    safe: list[Any] = [HistoryBuffer, collections.OrderedDict, np.dtype, np.ndarray,
                       np.core.multiarray._reconstruct if hasattr(np, "core") else None,
                       type(np.dtype(np.float64)), type(np.dtype(np.int64)),
                       type(np.dtype(np.float32)), np.float64, np.int64, np.float32]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
        safe += [_reconstruct, scalar]
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
        safe += [_reconstruct, scalar]
    torch.serialization.add_safe_globals([s for s in safe if s is not None])


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_key(method: Method, pool_fingerprint: str, seed: int) -> str:
    """The content address of a pretraining: the method (id, version, config and the source
    of its plugin package), the pool, the seed and the ssl-bench version (whose shared code,
    e.g. the view augmentations, shapes every pretraining) and, when not fp32, the precision
    it trains in (:func:`ssl_bench.precision.pretraining_precision`; fp32 keys stay as they
    were before precision was kept, so their checkpoints are reused)."""
    from ssl_bench import __version__
    from ssl_bench.plugins import source_hash

    precision = pretraining_precision(method)
    return config_hash({
        "method": method.meta.id,
        "version": method.meta.version,
        "config": method.config.model_dump(mode="json"),
        "source": source_hash(type(method)),
        "ssl_bench": __version__,
        "pool": pool_fingerprint,
        "seed": seed,
        **({"precision": precision} if precision != "fp32" else {}),
    })


@dataclass
class PretrainResult:
    checkpoint: Path
    key: str
    seconds: float
    cached: bool
    steps: int
    #: health figures of the trained encoder (ssl_bench.engine.health), from the sidecar
    health: dict[str, Any] | None = None


def total_steps(method: Method, n_items: int) -> int:
    """The optimiser steps of ``method``'s pretraining on a dataset of ``n_items`` items
    (:func:`ssl_bench.engine.cost.planned_steps`, which the dry run's estimate uses too)."""
    cfg = method.config
    return planned_steps(cfg.epochs, cfg.batch_size, cfg.max_steps, n_items)


OPTIMIZERS: tuple[str, ...] = ("adamw", "adam", "sgd")


def build_optimizer(method: Method, model: nn.Module) -> torch.optim.Optimizer:
    """The method's own optimiser (:meth:`Method.configure_optimizer`, e.g. LARS), else the one
    its config names; an unknown name is an error, never a silent default."""
    custom = method.configure_optimizer(model)
    if custom is not None:
        if not isinstance(custom, torch.optim.Optimizer):
            raise SSLBenchError(f"method {method.meta.id!r}: configure_optimizer returned a "
                                f"{type(custom).__name__}, not a torch.optim.Optimizer")
        return custom
    cfg = method.config
    params = method.parameters_to_optimize(model)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise SSLBenchError(f"method {method.meta.id!r}: unknown optimizer {cfg.optimizer!r}; use "
                        f"{', '.join(OPTIMIZERS)}, or return your own from "
                        "Method.configure_optimizer")


def _make_runner_model(method: Method, net: nn.Module) -> nn.Module:
    from mmengine.model import BaseModel

    class MethodModel(BaseModel):
        """Adapts a Method's training_step to mmengine's train_step."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.progress = 0.0
            self.step = 0

        def init_weights(self) -> None:
            """No-op: the weights are the method's own (``build()``, seeded by the harness,
            teachers loaded there); mmengine's Runner must not re-initialise any child."""

        def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
            data = self.data_preprocessor(data, True)
            with optim_wrapper.optim_context(self):
                losses = method.training_step(self.net, data, self.progress)
            return apply_losses(losses, optim_wrapper, f"step {self.step}")

        def forward(self, batch: Any, mode: str = "loss") -> dict[str, torch.Tensor]:
            # the losses of one step; called through DDP (engine/ddp.py) only
            return method.training_step(self.net, batch, self.progress)

    return MethodModel()


def _make_step_hook(method: Method, losses: list[float] | None = None,
                    progress: Progress | None = None, batch_size: int = 0,
                    stages: list[int] | None = None) -> Any:
    from mmengine.hooks import Hook

    class MethodStepHook(Hook):
        """Feeds the method its progress, calls ``after_step``, keeps each step's loss (and its
        stage, :func:`ssl_bench.engine.health.step_stage`, in ``stages``) and reports each step
        to ``progress`` (``("pretrain", step, steps, {"loss", "batch"})``)."""

        priority = "NORMAL"

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            model: Any = ddp.unwrap(runner.model)  # the MethodModel of _make_runner_model
            model.step = runner.iter
            model.progress = runner.iter / max(runner.max_iters, 1)
            factor = method.lr_factor(model.progress)
            if factor is not None:  # the method's own schedule (Method.lr_factor)
                for group in runner.optim_wrapper.optimizer.param_groups:
                    group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                             outputs: Any = None) -> None:
            model: Any = ddp.unwrap(runner.model)  # the MethodModel of _make_runner_model
            method.after_step(model.net, (runner.iter + 1) / max(runner.max_iters, 1))
            wanted = losses is not None or progress is not None
            loss = (float(outputs["loss"]) if wanted and isinstance(outputs, dict)
                    and "loss" in outputs else None)
            if losses is not None and loss is not None:
                losses.append(loss)
                if stages is not None:
                    stages.append(step_stage(outputs))
            if progress is not None:
                extras: dict[str, float] = {"batch": batch_size}
                if loss is not None:
                    extras["loss"] = loss
                progress("pretrain", runner.iter + 1, runner.max_iters, extras)

    return MethodStepHook()


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
        return True
    except ImportError:
        return False


def run_pretraining(method: Method, pool: PretrainPool, work_dir: Path, seed: int,
                    log: Callable[[str], None], launcher: str = "none",
                    losses: list[float] | None = None,
                    progress: Progress | None = None,
                    stages: list[int] | None = None) -> tuple[nn.Module, int]:
    """Train ``method`` on ``pool`` with mmengine's Runner; resume from ``work_dir`` if a
    previous attempt left checkpoints there. ``launcher != "none"``: every rank of the process
    group calls this (DDP, see :mod:`ssl_bench.engine.ddp`). Each step's loss is appended to
    ``losses`` when given (after a resume: the steps run in this call), its stage to ``stages``
    when given, and each step is reported to ``progress`` when given."""
    from mmengine.runner import Runner

    allow_mmengine_checkpoint_globals()
    torch.manual_seed(seed)
    net = method.build()
    # mmengine's Runner trains on the CUDA device whenever one is available
    device = "cuda" if torch.cuda.is_available() else "cpu"
    configure_device(device)
    net = prepare_module(net, device, method.context.compile)
    dataset = method.pretrain_dataset(pool)
    # a map-style dataset has a length; torch's Dataset type does not declare __len__
    n_items = len(dataset)  # type: ignore[arg-type]
    cfg = method.config
    steps = total_steps(method, n_items)
    generator = torch.Generator().manual_seed(seed)
    loader = EndlessLoader(
        dataset, batch_size=min(cfg.batch_size, n_items), shuffle=True,
        drop_last=n_items >= cfg.batch_size, generator=generator,
        **loader_options(cfg.num_workers),
    )
    distributed_args: dict[str, Any] = {}
    if launcher != "none":
        net = ddp.prepare_model(method, net, log)
        loader = ddp.distributed_loader(dataset, cfg.batch_size, cfg.num_workers, seed)
        distributed_args = ddp.runner_arguments(launcher, seed)
    warmup = int(round(cfg.warmup_epochs * max(1, len(loader))))
    warmup = min(warmup, steps - 1) if steps > 1 else 0
    schedulers: list[dict[str, Any]] = []
    if method.lr_factor(0.0) is None:  # else the method schedules itself (MethodStepHook)
        if warmup > 0:
            schedulers.append(dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0,
                                   end=warmup))
        schedulers.append(dict(type="CosineAnnealingLR", by_epoch=False, begin=warmup,
                               end=steps, T_max=max(1, steps - warmup), eta_min=0.0))
    interval = max(1, min(50, steps // 4 or 1))
    vis_backends = [dict(type="LocalVisBackend")]
    if _has_tensorboard():
        vis_backends.append(dict(type="TensorboardVisBackend"))

    from ssl_bench.engine.amp import PrecisionOptimWrapper

    work_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(
        model=_make_runner_model(method, net),
        work_dir=str(work_dir),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=steps, val_interval=steps + 1),
        optim_wrapper=PrecisionOptimWrapper(build_optimizer(method, net),
                                            pretraining_precision(method)),
        param_scheduler=schedulers or None,
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=interval, log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", interval=max(1, steps // 4), by_epoch=False,
                            max_keep_ckpts=1, save_last=True),
        ),
        custom_hooks=[_make_step_hook(method, losses, progress,
                                      min(cfg.batch_size, n_items), stages)],
        visualizer=dict(type="Visualizer", vis_backends=vis_backends,
                        name=f"vis-{work_dir.name}-{time.time_ns()}"),
        resume=(work_dir / "last_checkpoint").exists(),
        log_level="ERROR",
        experiment_name=f"pretrain-{time.time_ns()}",
        default_scope="mmengine",
        **{"randomness": dict(seed=seed, deterministic=False), **distributed_args,
           "env_cfg": {**_keep_start_method(), **distributed_args.get("env_cfg", {})}},
    )
    runner.train()
    return net, steps


def _keep_start_method() -> dict[str, Any]:
    """mmengine's ``env_cfg`` that keeps this process's multiprocessing start method (a
    ``--jobs`` worker is spawned; mmengine would force ``fork`` with a warning), else its
    default ``fork``."""
    import multiprocessing

    return {"mp_cfg": {"mp_start_method": multiprocessing.get_start_method(allow_none=True)
                       or "fork"}}


def pretrain_cached(method: Method, pool_fingerprint: str, load_pool: Callable[[], PretrainPool],
                    cache_root: Path, seed: int, log: Callable[[str], None],
                    extras: dict[str, Any] | None = None,
                    health: Callable[[nn.Module, list[float], list[int]], dict[str, Any]]
                    | None = None,
                    progress: Progress | None = None) -> PretrainResult:
    """Pretrain once; later calls (any process) reuse the checkpoint in the store
    (:mod:`ssl_bench.engine.checkpoint_store`). The pool is
    only loaded when training is needed. ``health(encoder_model, losses, stages)`` gives the health
    figures kept in the sidecar (computed for a cached checkpoint whose sidecar lacks them);
    ``extras`` are written into the sidecar too; ``progress`` gets every step."""
    key = checkpoint_key(method, pool_fingerprint, seed)
    store = CheckpointStore(cache_root)
    ckpt = store.path(method.meta.id, key)
    with checkpoint_lock(ckpt):
        if has_files(ckpt):
            if checkpoint_is_intact(ckpt):
                sidecar = read_sidecar(ckpt)
                if health is not None and "health" not in sidecar:
                    sidecar["health"] = health(load_pretrained(method, ckpt), [], [])
                    write_sidecar(ckpt, sidecar)
                return PretrainResult(ckpt, key, 0.0, True, 0, sidecar.get("health"))
            log(f"checkpoint {ckpt} is damaged or incomplete (sha256 mismatch); pretraining again")
            discard(ckpt)
        work_dir = store.work_dir(method.meta.id, key)
        wall_start = time.perf_counter()
        pool = load_pool()
        start = time.perf_counter()
        log(f"pretraining {method.meta.id} on the {pool.domain} pool ({len(pool)} frames)")
        losses: list[float] = []
        stages: list[int] = []
        try:
            net, steps = run_pretraining(method, pool, work_dir, seed, log, losses=losses,
                                         progress=progress, stages=stages)
        except NonFiniteLoss:
            raise
        except Exception as exc:
            if not (work_dir / "last_checkpoint").exists():
                raise
            # a kill can leave a torn mmengine resume checkpoint: start over instead of failing
            log(f"resuming from {work_dir} failed ({type(exc).__name__}: {exc}); starting over")
            shutil.rmtree(work_dir, ignore_errors=True)
            losses.clear()
            stages.clear()
            net, steps = run_pretraining(method, pool, work_dir, seed, log, losses=losses,
                                         progress=progress, stages=stages)
        seconds = time.perf_counter() - start
        figures = health(net, losses, stages) if health is not None else None
        # the whole pretraining as a run sees it (pool loading and health included), for the
        # estimates of later runs (ssl_bench.engine.estimate)
        wall = time.perf_counter() - wall_start
        save_checkpoint(ckpt, net, method, key, pool.fingerprint, seed, steps, seconds,
                        {**(extras or {}), **({"health": figures} if figures else {}),
                         "wall_seconds": wall})
        for stale in [*work_dir.glob("*.pth"), work_dir / "last_checkpoint"]:
            stale.unlink(missing_ok=True)  # the resume state points at removed files
        return PretrainResult(ckpt, key, seconds, False, steps, figures)


__all__ = ["pretrain_cached", "checkpoint_key", "config_hash", "build_optimizer",
           "run_pretraining", "total_steps", "OPTIMIZERS",
           "PretrainResult", "NonFiniteLoss", "apply_losses"]
