"""What a run's pretrainings cost in compute: FLOPs and GPU-hours, printed by
``ssl-bench run --dry-run`` for the ``paper`` profile (and for any profile on a CUDA device), so
that a paper run's price is known before it starts.

FLOPs: one training step of each method's pretraining model (``Method.build`` and
``Method.training_step``, forward and backward) is counted with
:class:`torch.utils.flop_counter.FlopCounterMode` at the config's batch size and image size. The
counter counts matrix multiplications, convolutions and attention; element-wise work, the
optimiser step and a teacher's moving-average update are not counted (they are a small share
of a step). The step runs on fake tensors
(:class:`torch._subclasses.fake_tensor.FakeTensorMode`): shapes only, no arithmetic, so a
ResNet-50 step at batch 256 is counted in a second or two on a CPU. A step that reads tensor
values (a queue pointer read with ``int()``, boolean-mask indexing) cannot run on fake tensors;
it is then counted on a real step at batch :data:`REAL_BATCH` and scaled by the batch, and the
output says so. A count is kept in ``flops.json`` in the user cache, keyed by the method (id,
version, config, plugin source) and the torch version, since counting a method takes seconds.

A pretraining's FLOPs are a step's FLOPs times its planned steps (the steps of the run's estimate,
:mod:`ssl_bench.engine.estimate`). Its GPU-hours assume a stated sustained throughput
(:func:`assumed_throughput`: a share of an H100's dense peak) unless this machine's kept rates
(:mod:`ssl_bench.engine.rates`) hold seconds per step measured on a CUDA device for the same
method, profile, domain and config; the measured rate then replaces the assumption, and each
line says which of the two it used.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from ssl_bench.engine.cost import PretrainSpec
from ssl_bench.engine.rates import Rates, device_kind, pretrain_key

if TYPE_CHECKING:
    from ssl_bench.api import Method
    from ssl_bench.engine.estimate import RunEstimate
    from ssl_bench.engine.work import WorkPlan

#: the batch of the real step a method is counted on when its step cannot run on fake tensors
#: (2, not 1: batch-norm layers in training mode need more than one value per channel)
REAL_BATCH = 2
#: frames in the random pool a method's pretraining dataset reads its counted batch from
#: (enough for the methods that pair neighbouring frames of a clip)
PROBE_FRAMES = 16
#: the device class GPU-hours assume, and its dense (no sparsity) peak in TFLOP/s per precision;
#: fp32 runs use TF32 matrix multiplications on CUDA (:mod:`ssl_bench.precision`)
ASSUMED_DEVICE = "H100 SXM"
PEAK_TFLOPS: dict[str, float] = {"bf16": 989.0, "fp16": 989.0, "fp32": 494.5}
#: the share of the peak a pretraining sustains (model FLOPs utilisation)
ASSUMED_UTILISATION = 0.40
FLOPS_CACHE_VERSION = 1


@dataclass(frozen=True)
class Throughput:
    """A sustained training throughput: a share of a named device class's dense peak."""

    device: str
    precision: str
    peak_tflops: float
    utilisation: float

    @property
    def flops_per_second(self) -> float:
        return self.peak_tflops * 1e12 * self.utilisation

    def text(self) -> str:
        return (f"{self.utilisation * 100:.0f} % of an {self.device}'s {self.precision} dense "
                f"peak ({self.peak_tflops:g} TFLOP/s), i.e. "
                f"{self.flops_per_second / 1e12:.0f} TFLOP/s sustained per GPU")


def assumed_throughput(precision: str = "bf16") -> Throughput:
    """The throughput GPU-hours assume at ``precision``: :data:`ASSUMED_UTILISATION` of an
    :data:`ASSUMED_DEVICE`'s dense peak."""
    return Throughput(ASSUMED_DEVICE, precision, PEAK_TFLOPS.get(precision, PEAK_TFLOPS["fp32"]),
                      ASSUMED_UTILISATION)


@dataclass(frozen=True)
class StepFlops:
    """The FLOPs of one pretraining step at ``batch_size`` and ``image_size``, and how they were
    counted: ``fake`` (fake tensors at the full batch) or ``real`` (a real step at
    :data:`REAL_BATCH`, scaled to the batch; ``note`` says why)."""

    flops: float
    batch_size: int
    image_size: int
    how: str
    note: str = ""


# ---- counting -------------------------------------------------------------------------------


def _step_flops(method: "Method", net: nn.Module, batch: Any) -> float:
    """FLOPs of ``method.training_step`` on ``batch`` and the backward pass of its loss."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss = method.training_step(net, batch, 0.0)["loss"]
        if loss.requires_grad:  # batch-norm adaptation has no gradient
            loss.backward()
    return float(counter.get_total_flops())


def _to_fake(net: nn.Module, mode: Any) -> None:
    """Replace every parameter and buffer of ``net`` by a fake tensor of ``mode`` (in place),
    keeping ``requires_grad``; a tensor shared by several modules stays shared."""
    fakes: dict[int, Any] = {}
    for module in net.modules():
        for name, param in list(module._parameters.items()):
            if param is not None:
                if id(param) not in fakes:
                    fakes[id(param)] = nn.Parameter(mode.from_tensor(param.detach()),
                                                    requires_grad=param.requires_grad)
                module._parameters[name] = fakes[id(param)]
        for name, buffer in list(module._buffers.items()):
            if buffer is not None:
                if id(buffer) not in fakes:
                    fakes[id(buffer)] = mode.from_tensor(buffer)
                module._buffers[name] = fakes[id(buffer)]


def _fake_count(method: "Method", item: Any, batch_size: int) -> float:
    """One step at ``batch_size`` on fake tensors: ``item`` (one sample of the method's
    pretraining dataset) repeated into a batch, the model's weights fake."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils._pytree import tree_map
    from torch.utils.data import default_collate

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    net = method.build()
    net.train()
    _to_fake(net, mode)
    with mode:
        fake = tree_map(lambda x: mode.from_tensor(x) if isinstance(x, torch.Tensor) else x, item)
        return _step_flops(method, net, default_collate([fake] * batch_size))


def _real_count(method: "Method", item: Any) -> float:
    """One real step at :data:`REAL_BATCH` (``item`` repeated)."""
    from torch.utils.data import default_collate

    net = method.build()
    net.train()
    return _step_flops(method, net, default_collate([item] * REAL_BATCH))


def _probe_item(method: "Method", domain: str) -> Any:
    """One sample of ``method``'s pretraining dataset over a pool of random frames at its
    image size: the inputs a step sees, without reading any data."""
    from ssl_bench.api import PretrainPool, Unit, UnitData

    cfg = method.config
    frames = np.random.default_rng(0).integers(
        0, 256, (PROBE_FRAMES, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    unit = UnitData(Unit("flops-probe", "train", "flops-probe"), frames, fps=float(cfg.fps))
    dataset: Any = method.pretrain_dataset(PretrainPool(domain, [unit], "flops-probe"))
    return dataset[0]


def count_step_flops(method: "Method", domain: str = "surgical") -> StepFlops:
    """Count the FLOPs of one pretraining step of ``method`` at its config's batch and image
    size, on fake tensors, else on a real step at :data:`REAL_BATCH` scaled to the batch. The
    global random state is left as it was."""
    from ssl_bench.engine.context import error_line

    cfg = method.config
    batch, size = int(cfg.batch_size), int(cfg.image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        item = _probe_item(method, domain)
        try:
            return StepFlops(_fake_count(method, item, batch), batch, size, "fake")
        except Exception as exc:  # a step that reads tensor values: count a real one
            reason = error_line(exc)
        flops = _real_count(method, item) * batch / REAL_BATCH
    return StepFlops(flops, batch, size, "real",
                     f"counted on a real step at batch {REAL_BATCH} and scaled to {batch}: "
                     f"its step cannot run on fake tensors ({reason})")


# ---- the cache ------------------------------------------------------------------------------


def flops_cache_path() -> Path:
    """Where counted steps are kept: ``<user cache>/flops.json``."""
    from ssl_bench.paths import cache_dir

    return cache_dir() / "flops.json"


def flops_key(method: "Method") -> str:
    """What a count depends on: the method (id, version, config, plugin source) and torch."""
    from ssl_bench.plugins import source_hash

    blob = json.dumps({"method": method.meta.id, "version": method.meta.version,
                       "config": method.config.model_dump(mode="json"),
                       "source": source_hash(type(method)), "torch": torch.__version__},
                      sort_keys=True, default=str)
    return f"{method.meta.id}|{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != FLOPS_CACHE_VERSION:
        return {}
    steps = data.get("steps")
    return steps if isinstance(steps, dict) else {}


def cached_step_flops(method: "Method", domain: str = "surgical",
                      path: Path | None = None) -> StepFlops:
    """:func:`count_step_flops`, kept in :func:`flops_cache_path` (an unreadable cache counts
    again; the cache is a convenience, never a reason to stop)."""
    from ssl_bench import atomic

    path = path or flops_cache_path()
    key = flops_key(method)
    entry = _read_cache(path).get(key)
    if isinstance(entry, dict):
        try:
            return StepFlops(**entry)
        except TypeError:
            pass
    step = count_step_flops(method, domain)
    try:
        atomic.write_json(path, {"version": FLOPS_CACHE_VERSION,
                                 "steps": {**_read_cache(path), key: asdict(step)}})
    except OSError:
        pass
    return step


# ---- a run's compute ------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainingCompute:
    """One pretraining run's compute: steps, FLOPs and GPU seconds, and what the seconds rest
    on (``measured_s_per_step``: this machine's GPU rate; None: the assumed throughput)."""

    spec: PretrainSpec
    steps: int
    step: StepFlops
    gpu_seconds: float
    measured_s_per_step: float | None = None

    @property
    def flops(self) -> float:
        return self.step.flops * self.steps


def pretraining_compute(spec: PretrainSpec, steps: int, step: StepFlops, rates: Rates,
                        throughput: Throughput, on_gpu: bool) -> PretrainingCompute:
    """GPU seconds of ``steps`` steps of ``step``: at the seconds per step this machine
    measured on a CUDA device for the same method, profile, domain and config when the run is
    on a GPU (``on_gpu``) and such a rate is kept, else at ``throughput``."""
    stored = rates.pretraining.get(pretrain_key(spec.method, spec.profile, spec.domain, "cuda"))
    if on_gpu and stored is not None and stored.config == spec.config \
            and stored.seconds_per_step > 0:
        return PretrainingCompute(spec, steps, step, steps * stored.seconds_per_step,
                                  stored.seconds_per_step)
    return PretrainingCompute(spec, steps, step, step.flops * steps / throughput.flops_per_second)


def shows_compute(profile: str, device: str) -> bool:
    """Whether a dry run prints compute: the ``paper`` profile, or any profile on CUDA."""
    return profile == "paper" or device_kind(device) == "cuda"


def _on_cpu(method: "Method") -> "Method":
    """The same method (class and config) with a CPU context: a dry run counts on the CPU and
    leaves the GPU alone."""
    import dataclasses

    return type(method)(method.config,
                        dataclasses.replace(method.context, device=torch.device("cpu")))


def plan_compute(plan: "WorkPlan", estimate: "RunEstimate", throughput: Throughput,
                 count: Callable[["Method", str], StepFlops] = cached_step_flops,
                 ) -> tuple[list[PretrainingCompute], dict[str, str]]:
    """The compute of each pretraining of the plan not cached yet (its steps from
    ``estimate``), and the methods whose step could not be counted, with the reason."""
    from ssl_bench.engine.context import error_line

    on_gpu = device_kind(plan.options.device) == "cuda"
    rates = estimate.estimator.rates
    counted: dict[str, StepFlops] = {}
    failed: dict[str, str] = {}
    out: list[PretrainingCompute] = []
    for item in plan.to_pretrain:
        cost = item.cost
        if cost is None or cost.spec is None:
            continue
        spec = cost.spec
        if spec.method not in counted and spec.method not in failed:
            try:
                counted[spec.method] = count(_on_cpu(plan.ctx.method(spec.method,
                                                                     item.run.seed)),
                                             spec.domain)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a dry run reports, never stops
                failed[spec.method] = error_line(exc)
        if spec.method in counted:
            out.append(pretraining_compute(spec, cost.steps, counted[spec.method], rates,
                                           throughput, on_gpu))
    return out, failed


def flops_text(flops: float) -> str:
    """``16.8 TFLOP``: FLOPs with an SI prefix."""
    for unit, size in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9),
                       ("MFLOP", 1e6)):
        if flops >= size:
            return f"{flops / size:.3g} {unit}"
    return f"{flops:.3g} FLOP"


def hours_text(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:.2g}"


def compute_lines(plan: "WorkPlan", estimate: "RunEstimate",
                  count: Callable[["Method", str], StepFlops] = cached_step_flops) -> list[str]:
    """The ``--dry-run`` lines of a run's pretraining compute: the assumption, one line per
    method (runs, steps, FLOPs per step and in all, GPU-hours and whether measured or assumed),
    the total, and the frame-cache disk of the estimate. Empty unless :func:`shows_compute`."""
    from ssl_bench.engine.estimate import bytes_text

    options = plan.options
    if not shows_compute(options.profile, options.device):
        return []
    on_gpu = device_kind(options.device) == "cuda"
    # a GPU run's default precision is bf16; on a CUDA device the run's own precision
    throughput = assumed_throughput(options.precision if on_gpu else "bf16")
    start = time.perf_counter()
    runs, failed = plan_compute(plan, estimate, throughput, count)
    lines = ["pretraining compute (FLOPs of one training step, forward and backward, counted "
             "with torch.utils.flop_counter at the config's batch and image size, times the "
             "planned steps):",
             f"  assumption: GPU-hours at {throughput.text()}; a rate this machine measured on "
             "its GPU for the same method and config replaces it (each line says which)"]
    methods = list(dict.fromkeys(r.spec.method for r in runs))
    width = max([len(m) for m in [*methods, *failed]] + [6])
    for method in methods:
        mine = [r for r in runs if r.spec.method == method]
        step = mine[0].step
        steps = sum(r.steps for r in mine)
        measured = [r for r in mine if r.measured_s_per_step is not None]
        basis = ("measured" if len(measured) == len(mine) else "assumed" if not measured
                 else f"{len(measured)} of {len(mine)} runs measured")
        steps_basis = sorted({f"{r.spec.domain}: {estimate.estimator.steps(r.spec)[2]}"
                              for r in mine})
        lines.append(
            f"  {method:{width}s}  {len(mine)} run{'s' if len(mine) != 1 else ''}, "
            f"{steps:,} steps, {flops_text(step.flops)}/step (batch {step.batch_size}, "
            f"{step.image_size} px), {flops_text(sum(r.flops for r in mine))}, "
            f"{hours_text(sum(r.gpu_seconds for r in mine))} GPU-hours ({basis})")
        notes = [*steps_basis, *([step.note] if step.note else []),
                 *[f"{r.spec.domain}: measured {r.measured_s_per_step:.3g} s/step on this "
                   f"machine's GPU" for r in measured]]
        lines += [f"  {'':{width}s}    {note}" for note in notes]
    for method, reason in failed.items():
        lines.append(f"  {method:{width}s}  no FLOP count: {reason}")
    n_measured = sum(r.measured_s_per_step is not None for r in runs)
    guessed = sum(estimate.estimator.steps(r.spec)[1] == "guess" for r in runs)
    lines.append(
        f"  {'total':{width}s}  {len(runs)} runs, {sum(r.steps for r in runs):,} steps, "
        f"{flops_text(sum(r.flops for r in runs))}, "
        f"{hours_text(sum(r.gpu_seconds for r in runs))} GPU-hours ({len(runs) - n_measured} "
        f"assumed, {n_measured} measured)"
        + (f"; {len(failed)} method(s) not counted" if failed else "")
        + (f"; the steps of {guessed} run(s) are a guess (set max_steps, e.g. "
           "-o METHOD.max_steps=N, or let a run measure them)" if guessed else ""))
    decode = next((s for s in estimate.stages if s.name == "data decoding"), None)
    if decode is not None:
        unknown = (" (a reader of the run does not count its frames, or its data folder does not "
                   "exist yet)"
                   if decode.disk_bytes is None else "")
        lines.append(f"  frame cache disk: {bytes_text(decode.disk_bytes)}{unknown}")
    seconds = time.perf_counter() - start
    if seconds > 2:
        lines.append(f"  (counted in {seconds:.0f} s; counts are kept in {flops_cache_path()})")
    return lines


__all__ = ["ASSUMED_DEVICE", "ASSUMED_UTILISATION", "PEAK_TFLOPS", "PROBE_FRAMES",
           "PretrainingCompute", "REAL_BATCH", "StepFlops", "Throughput", "assumed_throughput",
           "cached_step_flops", "compute_lines", "count_step_flops", "flops_cache_path",
           "flops_key", "flops_text", "hours_text", "plan_compute", "pretraining_compute",
           "shows_compute"]
