"""The pretraining measurements on a CUDA GPU, reported apart from the CPU
figures: what mixed precision, channels-last and ``torch.compile`` buy, and whether the host's
data loading keeps the GPU fed.

Per pretraining method, at the ``paper`` profile (224 px; batch ``min(profile batch,
--batch)``), on the synthetic surgical pool tiled ``--tile`` times (the frames are memmaps,
so tiling costs no memory), each variant a separate run of ``--steps`` optimiser steps whose
first ``--warmup`` are dropped:

* ``loader``: images/s of the method's DataLoader alone (frame-cache reads, the method's
  augmentations on the host CPU, collate), with the workers of the profile (``--workers``
  overrides);
* ``harness``: ``run_pretraining`` (mmengine's Runner, fp32 as the harness runs today);
* ``fp32``, ``bf16``, ``bf16+cl``, ``bf16+cl+compile``: the plain PyTorch loop of
  ``pretrain_throughput.py`` with bfloat16 autocast, channels-last weights and inputs, and
  ``torch.compile`` of every top-level child module (only for ``--compile`` methods: each
  compile costs tens of seconds);
* ``compute``: forward + backward + optimiser step on one fixed batch already on the GPU
  (bf16 + channels-last, no loading): the ceiling the loader must feed. Its FLOP/s (FLOPs of a
  step counted by ``torch.utils.flop_counter.FlopCounterMode``) against the best bf16
  ``torch.mm`` of the same run gives the model FLOP utilisation (MFU).

Every timing synchronises the GPU before reading the clock. Prints a table and writes
``results/gpu.json``; the README section is rewritten by ``run_all.py --readme-only`` or by
this script. Without CUDA it says so and exits 0.

    python benchmarks/perf/gpu.py --methods simclr,mae --compile simclr,mae
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402
from data_path import loader_images_per_s  # noqa: E402
from pretrain_throughput import conv_backward_flops, harness_run, make_loader, to_device  # noqa: E402

from ssl_bench.api import PretrainPool  # noqa: E402
from ssl_bench.engine.pretrain import build_optimizer  # noqa: E402
from ssl_bench.profiles import IMAGE_SIZE  # noqa: E402

NAME = "gpu"
TITLE = "GPU: mixed precision, channels-last, torch.compile"
VARIANTS = ["fp32", "bf16", "bf16+cl", "bf16+cl+compile"]


def tiled(pool: PretrainPool, times: int) -> PretrainPool:
    return PretrainPool(pool.domain, pool.sequences * times, f"{pool.fingerprint}-x{times}")


def channels_last(batch: Any) -> Any:
    return pc.map_tensors(batch, lambda t: t.contiguous(memory_format=torch.channels_last)
                          if t.dim() == 4 else t)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare(method: Any, device: torch.device, variant: str) -> tuple[torch.nn.Module, Any]:
    torch.manual_seed(0)
    net = method.build().to(device)
    if "cl" in variant.split("+"):
        net = net.to(memory_format=torch.channels_last)
    if variant.endswith("compile"):
        for child in net.children():
            child.compile()
    net.train()
    return net, build_optimizer(method, net)


def step(method: Any, net: torch.nn.Module, optimizer: Any, batch: Any, amp: bool,
         device: torch.device) -> None:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = method.training_step(net, batch, 0.5)["loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    method.after_step(net, 0.5)


def timed_loop(method: Any, pool: PretrainPool, device: torch.device, variant: str,
               steps: int, warmup: int) -> float:
    """Images/s of the plain loop over the real DataLoader (loading included)."""
    net, optimizer = prepare(method, device, variant)
    amp = variant.startswith("bf16")
    cl = "cl" in variant.split("+")
    loader = make_loader(method, method.pretrain_dataset(pool), 0)
    done, start = 0, 0.0
    while done < steps:
        for batch in loader:
            if done == warmup:
                sync(device)
                start = time.perf_counter()
            batch = to_device(batch, device)
            step(method, net, optimizer, channels_last(batch) if cl else batch, amp, device)
            done += 1
            if done == steps:
                break
    sync(device)
    return method.config.batch_size * (steps - warmup) / (time.perf_counter() - start)


def compute_rate(method: Any, batch: Any, device: torch.device, steps: int, warmup: int
                 ) -> float:
    net, optimizer = prepare(method, device, "bf16+cl")
    batch = channels_last(to_device(batch, device))
    for i in range(steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        step(method, net, optimizer, batch, True, device)
    sync(device)
    return (steps - warmup) / (time.perf_counter() - start)


def step_flops(method: Any, batch: Any, device: torch.device) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    net, _ = prepare(method, device, "fp32")
    mapping = {torch.ops.aten.convolution_backward: conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        method.training_step(net, to_device(batch, device), 0.5)["loss"].backward()
    return int(counter.get_total_flops())


def harness_rate(method_id: str, pool: PretrainPool, overrides: dict[str, Any], warmup: int,
                 profile: str, device: str) -> tuple[float, float]:
    """(images/s between training steps, whole-call seconds) of ``run_pretraining``."""
    method = pc.make_method(method_id, profile, device, **overrides)
    clock = pc.StepClock(method)
    wall = harness_run(method, pool, 0)
    gaps = clock.intervals(warmup)
    return method.config.batch_size / statistics.fmean(gaps), wall


def measure(method_id: str, pool: PretrainPool, args: argparse.Namespace, peak: float,
            device: torch.device) -> dict[str, Any]:
    base = pc.make_method(method_id, args.profile, str(device)).config
    overrides: dict[str, Any] = {"batch_size": min(base.batch_size, args.batch),
                                 "epochs": 10_000, "max_steps": args.steps,
                                 "warmup_epochs": 0.0}
    if args.workers is not None:
        overrides["num_workers"] = args.workers
    make = lambda: pc.make_method(method_id, args.profile, str(device), **overrides)  # noqa: E731
    method = make()
    row: dict[str, Any] = {"method": method_id, "batch_size": method.config.batch_size,
                           "image_size": method.config.image_size,
                           "workers": method.config.num_workers}
    row["loader_img_s"] = loader_images_per_s(method, pool, args.loader_batches, 0)[0]
    row["harness_img_s"], row["harness_wall_s"] = harness_rate(
        method_id, pool, overrides, args.warmup, args.profile, str(device))
    variants = VARIANTS if method_id in args.compile else VARIANTS[:-1]
    for variant in variants:
        print(f"  {method_id} {variant}", file=sys.stderr, flush=True)
        row[variant] = timed_loop(make(), pool, device, variant, args.steps, args.warmup)
    batch = next(iter(make_loader(method, method.pretrain_dataset(pool), 0)))
    flops = step_flops(make(), batch, device)
    steps_s = compute_rate(make(), batch, device, args.steps, args.warmup)
    row.update({"step_gflop": flops / 1e9, "compute_img_s": steps_s * row["batch_size"],
                "mfu": flops * steps_s / peak,
                "harness_vs_fp32": row["harness_img_s"] / row["fp32"],
                "best_vs_fp32": max(row[v] for v in variants) / row["fp32"]})
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


COLUMNS = [("method", "method", ""), ("batch_size", "batch", "d"), ("workers", "workers", "d"),
           ("loader_img_s", "loader", ".0f"), ("harness_img_s", "harness", ".0f"),
           ("fp32", "fp32", ".0f"), ("bf16", "bf16", ".0f"), ("bf16+cl", "bf16+cl", ".0f"),
           ("bf16+cl+compile", "+compile", ".0f"), ("compute_img_s", "compute", ".0f"),
           ("step_gflop", "GFLOP/step", ".0f"), ("mfu", "MFU", ".1%")]


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    starved = [r["method"] for r in rows if r["loader_img_s"] < 2 * r["compute_img_s"]]
    lines = [
        f"Measured on {result['gpu']} (host: `nproc` {result['machine']['nproc']}, torch "
        f"{result['machine']['torch']}), {result['machine']['date']}. Images/s of pretraining "
        f"at the `{result['profile']}` profile, pool frames consumed per second; each column "
        f"is its own run of {result['steps']} steps, the first {result['warmup']} dropped, GPU "
        "synchronised before each clock read. `loader`: the DataLoader alone (host-CPU "
        "augmentations; `workers` processes). `harness`: `run_pretraining` (mmengine Runner, "
        "fp32). `fp32` .. `+compile`: the plain loop with bf16 autocast, channels-last and "
        "`torch.compile` of each top-level module (n/a: not compiled in this run). `compute`: "
        "bf16 + channels-last steps on one batch already on the GPU (no loading). MFU: the "
        "counted FLOPs of a step x `compute` steps/s over the best bf16 `torch.mm` of the run "
        f"({result['mm_peak_bf16_tflops']:.0f} TFLOP/s; fp32 {result['mm_peak_fp32_tflops']:.0f}).",
        "", f"    {result['command']}", "",
        pc.table(rows, COLUMNS), "",
        f"Pool: {result['pool']}.",
    ]
    if starved:
        lines += ["", "Loader below 2x the GPU's compute rate (the GPU waits for the host): "
                  f"{', '.join(starved)}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=None, help="comma-separated ids (default: all "
                        "methods that pretrain on the surgical pool)")
    parser.add_argument("--compile", default="simclr,mae",
                        help="methods also measured with torch.compile ('' for none)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128, help="cap on the profile's batch")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers (default: each method's paper profile)")
    parser.add_argument("--loader-batches", type=int, default=10)
    parser.add_argument("--tile", type=int, default=12, help="copies of the small pool")
    parser.add_argument("--size", choices=["small", "default"], default="small")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--device", default="cuda", help="cuda[:N]; cpu only to check the "
                        "script itself (the figures are meant for a GPU)")
    parser.add_argument("--profile", default="paper", choices=["smoke", "cpu", "paper"])
    args = parser.parse_args()
    args.compile = set(filter(None, args.compile.split(",")))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; nothing measured (run it on a GPU machine)")
        return
    torch.backends.cudnn.benchmark = True
    methods = args.methods.split(",") if args.methods else pc.pretraining_methods("surgical")
    size = IMAGE_SIZE[args.profile]
    base = pc.surgical_pool(args.size, size)
    pool = tiled(base, args.tile)
    n = 8192 if device.type == "cuda" else 1024
    peak_bf16 = pc.matmul_peak(n, 10, str(device), torch.bfloat16)
    peak_fp32 = pc.matmul_peak(n, 5, str(device), torch.float32)
    rows = []
    for method_id in methods:
        print(f"measuring {method_id} ...", file=sys.stderr, flush=True)
        rows.append(measure(method_id, pool, args, peak_bf16, device))
        print(pc.table(rows[-1:], COLUMNS), flush=True)
    result = {
        "what": "pretraining images/s on a CUDA GPU: loader, harness, plain loop in fp32 / "
                "bf16 / channels-last / torch.compile, compute-only MFU",
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "profile": args.profile,
        "pool": f"synthetic surgical pool ({args.size}) at {size} px, {len(base)} frames tiled "
                f"{args.tile}x = {len(pool)}",
        "steps": args.steps, "warmup": args.warmup,
        "mm_peak_bf16_tflops": peak_bf16 / 1e12, "mm_peak_fp32_tflops": peak_fp32 / 1e12,
        "rows": rows, "machine": pc.machine(),
        "command": "python benchmarks/perf/gpu.py " + " ".join(sys.argv[1:]),
    }
    if device.type != "cuda":  # a check of the script, not a figure for the README
        print(pc.table(rows, COLUMNS))
        return
    pc.write_result(NAME, result)
    print(pc.table(rows, COLUMNS))
    if not args.no_readme:
        pc.replace_section(NAME, render(result), TITLE)


if __name__ == "__main__":
    main()
