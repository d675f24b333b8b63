"""Low-level DDP helpers: process group, ranks, collectives, the DDP model wrapper and loader.

Used by :mod:`ssl_bench.engine.pretrain`; the launch level (every rank pretraining a run's
methods, rank 0 evaluating) is :mod:`ssl_bench.engine.distributed`.

How one pretraining runs on N processes (each holding one GPU, or CPU with gloo):

* The process group is set up from the launcher's environment: ``launcher="pytorch"`` reads
  ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` (set by
  ``torchrun``, PyTorch docs "torchrun (Elastic Launch)"); ``launcher="slurm"`` reads
  ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``/``SLURM_NODELIST`` (set by ``srun``,
  Slurm srun man page "OUTPUT ENVIRONMENT VARIABLES"). On a GPU this is mmengine's own
  ``mmengine.dist.init_dist`` (mmengine/dist/utils.py); on CPU mmengine's launchers call
  ``torch.cuda.set_device`` and fail, so we call ``torch.distributed.init_process_group``
  with the same variables and the gloo backend. mmengine's Runner skips its own
  ``init_dist`` when a process group exists (``Runner.setup_env``, mmengine/runner/runner.py).
* The Runner wraps the model when ``launcher != "none"`` (``Runner.wrap_model``). mmengine's
  ``MMDistributedDataParallel.train_step`` calls ``module.forward(**data, mode="loss")`` and
  then ``parse_losses`` (mmengine/model/wrappers/distributed.py); our batches are plain
  tensors and our model's ``train_step`` is overridden, so we register
  :class:`MethodDistributedDataParallel` whose ``train_step`` calls the DDP ``forward``
  (which arms DDP's gradient all-reduce, torch/nn/parallel/distributed.py) around the
  method's ``training_step``, then steps the optimiser. It drops ``device_ids`` for CPU
  modules (torch DDP accepts ``device_ids`` only for single-device GPU modules).
* The loader uses ``torch.utils.data.DistributedSampler`` (each rank a disjoint shard, the
  shuffle seeded identically on every rank and re-seeded per epoch through ``set_epoch``,
  which mmengine's iteration loop calls). ``config.batch_size`` stays the *global* batch:
  each rank loads ``batch_size // world_size`` so the number of steps and the schedule are
  those of a one-process run.
* BatchNorm layers become ``torch.nn.SyncBatchNorm`` when the method's config has
  ``sync_bn: bool = True`` (timm's fused ``BatchNormAct2d``, used by the EfficientNets, becomes
  timm's ``SyncBatchNormAct`` and keeps its activation, which torch's own converter drops);
  torch's SyncBatchNorm only runs on GPU (``SyncBatchNorm.forward`` raises on CPU input), so
  on CPU the conversion is skipped with a log line.
* Only rank 0 takes the checkpoint cache's file lock, writes the safetensors checkpoint and its
  JSON, and evaluates cells / writes records; the other ranks wait at a barrier.
  mmengine's CheckpointHook already saves its resume checkpoints from rank 0 only
  (``@master_only``).
* Buffers (BatchNorm statistics, queues) are not averaged by DDP; after the last step every
  rank takes rank 0's buffers (``torch.distributed.broadcast``) so the replicas end identical.
  Methods that keep cross-sample state (MoCo queues, DINO centering) gather it with
  :func:`all_gather_concat` / :func:`all_reduce_mean` (identity in one process), as the
  official MoCo (``concat_all_gather`` in facebookresearch/moco, moco/builder.py) and DINO
  (``update_center`` all-reduce in facebookresearch/dino, main_dino.py) do: distill-self
  enqueues ``all_gather_concat`` of its keys. Where lightly's loss does the same gather, the
  methods use it instead: ``NTXentLoss(gather_distributed=True)`` scores each rank's views
  against the global batch through lightly's gradient-preserving all-gather
  (``lightly.utils.dist.gather``; simclr, reprec) and, with a memory bank, enqueues the keys
  of every rank (lightly's ``concat_all_gather``; moco-v2); lightly's ``DINOLoss`` all-reduces
  its center. In one process none of them gathers anything.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from ssl_bench.engine.loader import EndlessLoader, loader_options
from ssl_bench.engine.steps import apply_losses
from ssl_bench.errors import SSLBenchError

if TYPE_CHECKING:
    from ssl_bench.api import Method

LAUNCHERS: tuple[str, ...] = ("none", "pytorch", "slurm")
#: set to a folder: each rank writes ``rank<R>.json`` with hashes of its trained model
STATE_REPORT_ENV = "SSL_BENCH_DDP_STATE_REPORT"


# ---- rank / world helpers ------------------------------------------------------------------


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (itself when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_concat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` of every rank along dim 0 (rank order); ``t`` itself in one process.

    No gradient flows through the gathered copies (as in MoCo's ``concat_all_gather``): use it
    for keys that enter a queue or for targets, not for the tensors being trained. Every rank
    must pass the same shape."""
    if not is_distributed() or get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over ranks (a new tensor, no gradient); ``t`` itself in one process.
    E.g. DINO's center: ``all_reduce_mean(teacher_out.mean(0))``."""
    if not is_distributed() or get_world_size() == 1:
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / get_world_size()


# ---- process group ---------------------------------------------------------------------------


def default_backend(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def _slurm_to_torch_env() -> None:
    """Translate srun's variables into the env:// ones (what mmengine's slurm launcher does)."""
    try:
        rank, world = int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
    except KeyError:
        raise SSLBenchError("--launcher slurm: SLURM_PROCID/SLURM_NTASKS are not set; start "
                            "the command with srun inside an allocation (see docs/cluster.md)"
                            ) from None
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("WORLD_SIZE", str(world))
    os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
    os.environ.setdefault("MASTER_PORT", "29500")
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ.get("SLURM_NODELIST", "")
        first = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True,
                               text=True, check=True).stdout.split()[0] if nodes else "127.0.0.1"
        os.environ["MASTER_ADDR"] = first


def init_distributed(launcher: str, backend: str) -> None:
    """Join the process group of ``launcher`` (no-op when already joined or ``"none"``)."""
    if launcher == "none" or is_distributed():
        return
    if launcher not in LAUNCHERS:
        raise SSLBenchError(f"--launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}")
    if backend == "nccl" and torch.cuda.is_available():
        from mmengine.dist import init_dist

        init_dist(launcher, backend=backend)
        return
    if launcher == "slurm":
        _slurm_to_torch_env()
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if v not in os.environ]
    if missing:
        raise SSLBenchError(f"--launcher {launcher}: {', '.join(missing)} not set; start the "
                            "command with torchrun (or srun with --launcher slurm), see "
                            "docs/cluster.md")
    dist.init_process_group(backend=backend, init_method="env://")


def shutdown_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


# ---- model, loader and Runner pieces used by engine/pretrain.py -----------------------------


def wants_sync_bn(method: "Method") -> bool:
    return bool(getattr(method.config, "sync_bn", False))


def convert_sync_batchnorm(net: nn.Module, device_type: str,
                           log: Callable[[str], None] = lambda _m: None) -> nn.Module:
    """``net`` with every BatchNorm as SyncBatchNorm on GPU; unchanged (and logged) on CPU,
    where torch's SyncBatchNorm cannot run.

    timm's converter (``timm.layers.convert_sync_batchnorm``) turns timm's norm + activation
    layers (``BatchNormAct2d``) into ``SyncBatchNormAct`` with the same activation and every
    other BatchNorm into ``torch.nn.SyncBatchNorm``; torch's converter would turn a
    ``BatchNormAct2d`` into a plain SyncBatchNorm and silently drop its activation. The
    parameters, buffers and state-dict keys are kept."""
    if device_type == "cpu":
        log("sync_bn requested but training runs on CPU: torch's SyncBatchNorm needs a GPU; "
            "keeping per-process BatchNorm")
        return net
    from timm.layers import convert_sync_batchnorm as timm_convert_sync_batchnorm

    converted: nn.Module = timm_convert_sync_batchnorm(net)
    return converted


def prepare_model(method: "Method", net: nn.Module, log: Callable[[str], None]) -> nn.Module:
    if wants_sync_bn(method) and get_world_size() > 1:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        return convert_sync_batchnorm(net, device_type, log)
    return net


def per_rank_batch_size(global_batch: int, n_items: int) -> int:
    return max(1, min(global_batch, n_items) // get_world_size())


def distributed_loader(dataset: torch.utils.data.Dataset, global_batch: int, num_workers: int,
                       seed: int) -> EndlessLoader:
    """A loader over this rank's shard; the global batch is split evenly over ranks."""
    n = len(dataset)  # type: ignore[arg-type]
    drop_last = n >= global_batch
    sampler: torch.utils.data.DistributedSampler[Any] = torch.utils.data.DistributedSampler(
        dataset, shuffle=True, seed=seed, drop_last=drop_last)
    return EndlessLoader(
        dataset, batch_size=per_rank_batch_size(global_batch, n), sampler=sampler,
        drop_last=drop_last, **loader_options(num_workers))


def _register_wrapper() -> str:
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import MODEL_WRAPPERS

    name = "SSLBenchMethodDDP"
    if MODEL_WRAPPERS.get(name) is not None:
        return name

    class MethodDistributedDataParallel(MMDistributedDataParallel):
        """DDP around the pretraining model: ``train_step`` goes through DDP's ``forward``."""

        def __init__(self, module: nn.Module, device_ids: list[int] | None = None,
                     **kwargs: Any) -> None:
            on_cpu = all(p.device.type == "cpu" for p in module.parameters())
            # buffers are synced once at the start and from rank 0 after the last step
            # (sync_buffers); torch >= 2.12 names the per-forward switch forward_sync_buffers
            ddp_args = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
            kwargs.setdefault("forward_sync_buffers" if "forward_sync_buffers" in ddp_args
                              else "broadcast_buffers", False)
            # a method may leave some trainable parameters out of a step's graph
            kwargs.setdefault("find_unused_parameters", True)
            super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)

        def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
            with optim_wrapper.optim_context(self):
                data = self.module.data_preprocessor(data, True)
                losses = self(data)  # DDP.forward -> MethodModel.forward -> training_step
            return apply_losses(losses, optim_wrapper,
                                f"step {self.module.step} on rank {get_rank()}")

    MODEL_WRAPPERS.register_module(name=name, module=MethodDistributedDataParallel)
    return name


def runner_arguments(launcher: str, seed: int) -> dict[str, Any]:
    """Extra ``mmengine.runner.Runner`` arguments for a distributed pretraining."""
    backend = dist.get_backend() if is_distributed() else "nccl"
    return dict(
        launcher=launcher,
        cfg=dict(model_wrapper_cfg=dict(type=_register_wrapper())),  # Runner.wrap_model reads it
        env_cfg=dict(dist_cfg=dict(backend=backend)),
        # the model is built (and DDP broadcasts it from rank 0) before; per-rank seeds give
        # each rank its own augmentation draws
        randomness=dict(seed=seed, deterministic=False, diff_rank_seed=True),
    )


def unwrap(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper

    if not is_model_wrapper(model):
        return model
    inner = model.module
    assert isinstance(inner, nn.Module)
    return inner


def sync_buffers(net: nn.Module) -> None:
    """Every rank takes rank 0's buffers (BatchNorm statistics, queues)."""
    if not is_distributed():
        return
    for buf in net.buffers():
        dist.broadcast(buf.data, src=0)


def state_hashes(net: nn.Module) -> dict[str, str]:
    """sha256 of the parameters and of the buffers (name + float32 bytes, sorted by name)."""
    params = dict(net.named_parameters())
    out = {}
    for kind, items in (("parameters", params),
                        ("buffers", {k: v for k, v in net.state_dict().items()
                                     if k not in params})):
        h = hashlib.sha256()
        for name in sorted(items):
            h.update(name.encode())
            h.update(items[name].detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
        out[kind] = h.hexdigest()
    return out


def report_state(net: nn.Module, steps: int) -> None:
    """With ``SSL_BENCH_DDP_STATE_REPORT`` set to a folder, write this rank's model hashes."""
    folder = os.environ.get(STATE_REPORT_ENV)
    if not folder:
        return
    from ssl_bench import atomic

    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic.write_json(Path(folder) / f"rank{get_rank()}.json",
                      {"rank": get_rank(), "world_size": get_world_size(), "steps": steps,
                       **state_hashes(net)})


__all__ = ["LAUNCHERS", "STATE_REPORT_ENV", "all_gather_concat", "all_reduce_mean", "barrier",
           "broadcast_object", "convert_sync_batchnorm", "default_backend", "distributed_loader",
           "get_rank", "get_world_size", "init_distributed", "is_distributed",
           "is_main_process", "per_rank_batch_size", "prepare_model", "report_state",
           "runner_arguments", "shutdown_distributed", "state_hashes", "sync_buffers", "unwrap",
           "wants_sync_bn"]
