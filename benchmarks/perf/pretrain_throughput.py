"""Pretraining throughput and compute efficiency per method at the ``cpu`` profile.

For every pretraining method (default: all that pretrain on the surgical pool), side by side in
one process and on the same pool (the synthetic suite's surgical pool, ``--size``):

* ``harness``: ``ssl_bench.engine.pretrain.run_pretraining`` (mmengine's Runner, its hooks,
  LR schedule, checkpoints) for ``--steps`` optimiser steps;
* ``plain``: a minimal PyTorch loop over the same DataLoader settings, model
  (``method.build()``), loss (``method.training_step``), optimiser (the harness's
  ``build_optimizer``) and ``method.after_step``: ``zero_grad / backward / step``, nothing else.

Both are timed with the same instrument (:class:`perf_common.StepClock`: the gap between the
starts of consecutive ``training_step`` calls is one whole iteration, data loading included);
the first ``--warmup`` gaps are dropped. images/s = batch size / mean iteration time (pool
frames consumed per second; multi-view methods process several views of each). The whole-call
wall time (Runner construction and checkpoint writes included) is reported as well.

Compute efficiency: the FLOPs of one training step (forward and backward of
``training_step`` on one batch; the optimiser's element-wise update is not counted), counted
with ``torch.utils.flop_counter.FlopCounterMode`` (PyTorch's standard counter: 2 FLOPs per
multiply-add of matmul/conv/attention ops; its convolution-backward formula is replaced by one
that honours ``groups``, see :func:`conv_backward_flops`), divided by the harness iteration
time, relative to the best FLOP/s of a large ``torch.mm`` timed in the same run.
``compute-only`` divides the same FLOPs by the time of forward + backward + optimiser step on
a fixed batch (no loading).
For the least efficient method, ``torch.profiler`` splits the step's CPU time by operator
class to say what limits it (data loading, small kernels, Python overhead).

Prints a table and writes ``benchmarks/perf/results/pretrain_throughput.json``.

    .venv/bin/python benchmarks/perf/pretrain_throughput.py --steps 12 [--methods simclr,mae]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402

from ssl_bench.engine.pretrain import build_optimizer, run_pretraining, total_steps  # noqa: E402

NAME = "pretrain_throughput"


def make_loader(method: Any, dataset: Any, seed: int) -> torch.utils.data.DataLoader:
    """The DataLoader ``run_pretraining`` builds (same arguments: the worker settings of
    :func:`ssl_bench.engine.loader.loader_options`, workers capped by the usable cores)."""
    from ssl_bench.engine.loader import loader_options

    cfg = method.config
    return torch.utils.data.DataLoader(
        dataset, batch_size=min(cfg.batch_size, len(dataset)), shuffle=True,
        drop_last=len(dataset) >= cfg.batch_size,
        generator=torch.Generator().manual_seed(seed), **loader_options(cfg.num_workers))


def to_device(batch: Any, device: torch.device) -> Any:
    return pc.map_tensors(batch, lambda t: t.to(device, non_blocking=True))


def plain_loop(method: Any, pool: Any, steps: int, seed: int, device: torch.device) -> float:
    """The minimal loop; returns its wall time (model build included). The GPU variants
    (bf16, channels-last, ``torch.compile``) are ``gpu.py``'s."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    net = method.build().to(device)
    net.train()
    optimizer = build_optimizer(method, net)
    loader = make_loader(method, method.pretrain_dataset(pool), seed)
    done = 0
    while done < steps:
        for batch in loader:
            batch = to_device(batch, device)
            loss = method.training_step(net, batch, done / steps)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            method.after_step(net, (done + 1) / steps)
            done += 1
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def harness_run(method: Any, pool: Any, seed: int) -> float:
    with tempfile.TemporaryDirectory(prefix="perf-harness-") as work_dir:
        start = time.perf_counter()
        run_pretraining(method, pool, Path(work_dir) / "run", seed, log=lambda _m: None)
        return time.perf_counter() - start


def first_batch(method: Any, pool: Any, seed: int) -> Any:
    return next(iter(make_loader(method, method.pretrain_dataset(pool), seed)))


def conv_backward_flops(grad_out_shape: Any, x_shape: Any, w_shape: Any, _bias: Any,
                        _stride: Any, _padding: Any, _dilation: Any, transposed: bool,
                        _output_padding: Any, _groups: Any, output_mask: Any, out_shape: Any = None,
                        **_kwargs: Any) -> int:
    """FLOPs of ``aten.convolution_backward``: each requested gradient (input, weight) costs
    one forward convolution. torch 2.x's own formula ignores ``groups`` and overcounts grouped
    and depthwise convolutions by the group count (163 vs 7.6 GFLOP for a SimCLR step)."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def step_flops(method: Any, batch: Any) -> tuple[int, dict[str, int]]:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    net = method.build()
    net.train()
    mapping = {torch.ops.aten.convolution_backward: conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        method.training_step(net, batch, 0.0)["loss"].backward()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


def compute_only_step(method: Any, batch: Any, repeats: int) -> float:
    """Best time of forward + backward + optimiser step on a fixed batch (no data loading)."""
    torch.manual_seed(0)
    net = method.build()
    net.train()
    optimizer = build_optimizer(method, net)
    best = float("inf")
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = method.training_step(net, batch, 0.0)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        method.after_step(net, 0.0)
        if i > 0:  # the first one warms the allocator and oneDNN caches
            best = min(best, time.perf_counter() - start)
    return best


OP_CLASSES = [
    ("convolution", ("conv",)),
    ("matmul / linear / attention", ("mm", "addmm", "bmm", "matmul", "linear",
                                     "scaled_dot_product", "attention")),
    ("normalisation", ("batch_norm", "layer_norm", "native_batch_norm", "group_norm")),
    ("optimiser update", ("_foreach", "adam", "lerp", "addcdiv", "sgd")),
]


def is_depthwise(weight_shape: Any) -> bool:
    """(C, 1, k, k) weights with k > 1: a depthwise convolution (one filter per channel)."""
    shape = list(weight_shape or [])
    return len(shape) == 4 and shape[1] == 1 and shape[0] > 1 and shape[2] * shape[3] > 1


def op_class(name: str, input_shapes: Any = None) -> str:
    lowered = name.lower()
    for label, needles in OP_CLASSES:
        if any(n in lowered for n in needles):
            if label == "convolution" and input_shapes:
                # weight: 2nd input of the forward ops, 3rd of convolution_backward
                weight = input_shapes[2 if "backward" in lowered else 1] \
                    if len(input_shapes) > 2 else None
                return ("depthwise convolution" if is_depthwise(weight)
                        else "dense convolution")
            return label
    return "element-wise / copies / other"


def conv_flop_split(method: Any, batch: Any) -> dict[str, float]:
    """Forward FLOPs of depthwise vs dense ``nn.Conv2d`` modules in one training step (the
    backward costs about twice each), from the modules' own shapes."""
    torch.manual_seed(0)
    net = method.build()
    net.train()
    split = {"depthwise": 0.0, "dense": 0.0}

    def hook(module: torch.nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        w = module.weight.shape
        flops = 2.0 * output.numel() * w[1] * w[2] * w[3]
        split["depthwise" if is_depthwise(w) else "dense"] += flops

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        method.training_step(net, batch, 0.0)
    for h in handles:
        h.remove()
    return split


def profile_step(method: Any, pool: Any, seed: int, steps: int = 2) -> dict[str, Any]:
    """Split a plain-loop iteration's time into data loading, operator classes and the rest
    (Python and framework overhead between operators)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(seed)
    net = method.build()
    net.train()
    optimizer = build_optimizer(method, net)
    loader = iter(make_loader(method, method.pretrain_dataset(pool), seed))
    batch = next(loader)
    loss = method.training_step(net, batch, 0.0)["loss"]  # warm-up
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            with record_function("##data##"):
                try:
                    batch = next(loader)
                except StopIteration:
                    loader = iter(make_loader(method, method.pretrain_dataset(pool), seed))
                    batch = next(loader)
            loss = method.training_step(net, batch, 0.0)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            method.after_step(net, 0.0)
        wall = time.perf_counter() - start
    events = prof.events()
    ranges = [(e.time_range.start, e.time_range.end) for e in events if e.name == "##data##"]
    data_s = sum(b - a for a, b in ranges) / 1e6
    per_op: dict[str, float] = defaultdict(float)
    per_class: dict[str, float] = defaultdict(float)
    calls = 0
    for e in events:
        if not e.name.startswith("aten::"):
            continue
        if any(a <= e.time_range.start and e.time_range.end <= b for a, b in ranges):
            continue  # augmentation and collate operators count as data loading
        per_op[e.name] += e.self_cpu_time_total / 1e6
        per_class[op_class(e.name, e.input_shapes)] += e.self_cpu_time_total / 1e6
        calls += 1
    op_total = sum(per_op.values())
    shares = {"data loading (augmentation, collate)": data_s / wall}
    shares.update({k: v / wall for k, v in per_class.items()})
    shares["Python / framework overhead (between operators)"] = max(
        0.0, 1.0 - data_s / wall - op_total / wall)
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:8]
    return {"steps": steps, "wall_s": wall, "shares": shares,
            "aten_calls_per_step": calls / steps,
            "top_ops_s_per_step": {k: v / steps for k, v in top}}


def measure_method(method_id: str, pool: Any, args: argparse.Namespace, peak: float
                   ) -> dict[str, Any]:
    # steps, not epochs, decide (the small pool holds few batches); --steps 0: the profile's
    overrides: dict[str, Any] = {"epochs": 10_000}
    overrides["max_steps"] = args.steps or pc.make_method(method_id, "cpu").config.max_steps
    row: dict[str, Any] = {"method": method_id}
    harness_iters: list[float] = []
    plain_iters: list[float] = []
    harness_wall: list[float] = []
    plain_wall: list[float] = []
    method = pc.make_method(method_id, "cpu", **overrides)
    steps = total_steps(method, len(method.pretrain_dataset(pool)))
    batch_size = method.config.batch_size
    for _ in range(args.repeats):  # alternate so both see the same machine load
        method = pc.make_method(method_id, "cpu", **overrides)
        clock = pc.StepClock(method)
        harness_wall.append(harness_run(method, pool, args.seed))
        harness_iters.extend(clock.intervals(args.warmup))
        method = pc.make_method(method_id, "cpu", **overrides)
        clock = pc.StepClock(method)
        plain_wall.append(plain_loop(method, pool, steps, args.seed, torch.device("cpu")))
        plain_iters.extend(clock.intervals(args.warmup))
    h_mean, p_mean = statistics.fmean(harness_iters), statistics.fmean(plain_iters)
    row.update({
        "steps": steps, "batch_size": batch_size, "image_size": method.config.image_size,
        "harness_iter_s": harness_iters, "plain_iter_s": plain_iters,
        "harness_img_s": batch_size / h_mean, "plain_img_s": batch_size / p_mean,
        "ratio": p_mean / h_mean,
        "ratio_median": statistics.median(plain_iters) / statistics.median(harness_iters),
        "harness_wall_s": min(harness_wall), "plain_wall_s": min(plain_wall),
        "wall_ratio": min(plain_wall) / min(harness_wall),
    })
    batch = first_batch(method, pool, args.seed)
    flops, by_op = step_flops(pc.make_method(method_id, "cpu", **overrides), batch)
    split = conv_flop_split(pc.make_method(method_id, "cpu", **overrides), batch)
    compute_s = compute_only_step(pc.make_method(method_id, "cpu", **overrides), batch,
                                  args.compute_repeats)
    row.update({
        "step_gflop": flops / 1e9, "flops_by_op": by_op,
        # forward + input and weight gradients: about 3x the forward FLOPs of each conv
        "depthwise_flop_share": 3 * split["depthwise"] / flops if flops else 0.0,
        "achieved_gflops": flops / h_mean / 1e9, "efficiency": flops / h_mean / peak,
        "compute_only_s": compute_s, "compute_only_efficiency": flops / compute_s / peak,
        "data_share": max(0.0, 1.0 - compute_s / p_mean),
    })
    return row


COLUMNS = [("method", "method", ""), ("harness_img_s", "harness img/s", ".1f"),
           ("plain_img_s", "plain img/s", ".1f"), ("ratio", "harness / plain", ".2f"),
           ("wall_ratio", "whole call ratio", ".2f"), ("step_gflop", "GFLOP / step", ".2f"),
           ("achieved_gflops", "GFLOP/s", ".2f"), ("efficiency", "% of mm peak", ".1%"),
           ("compute_only_efficiency", "compute-only %", ".1%")]


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    low_ratio = [r["method"] for r in rows if r["ratio"] < 0.9]
    default = [r for r in rows if r["method"] == "simclr"]
    lines = [
        "Images/s of pretraining at the `cpu` profile (pool frames consumed per second, batch "
        "size / mean iteration time, data loading included), through the harness "
        "(`run_pretraining` on mmengine's Runner) and through a minimal plain-PyTorch loop "
        "with the same model, loss, DataLoader and optimiser, alternated in one process; the "
        f"first {result['warmup']} iterations of each run are dropped. `whole call ratio` "
        "compares the full calls (Runner construction and checkpoint writes included). "
        "GFLOP / step: forward + backward of one step counted with "
        "`torch.utils.flop_counter.FlopCounterMode`; `% of mm peak` divides the step's FLOP/s "
        "(harness iteration time) by the best FLOP/s of a 2048x2048 `torch.mm` timed in the "
        f"same run ({result['mm_peak_gflops']:.1f} GFLOP/s before the methods, "
        f"{result['mm_peak_after_gflops']:.1f} after); `compute-only %` uses the time of "
        "forward + backward + optimiser step on a fixed batch instead (no loading). Targets: "
        "harness / plain >= 0.9; >= 35 % of the matmul peak for the default backbone "
        "(efficientnet_lite0).", "",
        f"    {result['command']}", "",
        pc.table(rows, COLUMNS), "",
        f"Pool: {result['pool']}; {result['steps'] or 'the profile'} steps per run (the "
        "harness writes about 4 resume checkpoints per run whatever its length, every "
        "`max(1, steps // 4)` steps, so short runs pay more checkpointing per step than the "
        "profile's own runs; `--steps 0` measures each method at its profile length). "
        + pc.machine_line(result["machine"]) + ".", "",
        (f"Harness / plain: mean {statistics.fmean(r['ratio'] for r in rows):.2f} over the "
         "methods (ratio of median iterations "
         f"{statistics.fmean(r['ratio_median'] for r in rows):.2f}); "
         + ("every method is at or above 0.9. " if not low_ratio else
            f"below 0.9: {', '.join(low_ratio)}. ")
         + "What the harness adds per run: about 4 resume checkpoints (model + optimiser "
         "state through mmengine's `CheckpointHook`, every `max(1, steps // 4)` steps: the "
         "every-third-iteration spikes of `harness_iter_s` in the JSON), the Runner's "
         "construction (in the whole-call ratio) and its hooks; the rest is noise (the "
         "plain loop's own iterations vary by about 10 % within a run)."),
    ]
    if default:
        d = default[0]
        lines.append(f"Default backbone (simclr, efficientnet_lite0, 64 px, batch "
                     f"{d['batch_size']}): {d['efficiency']:.1%} of the matmul peak through "
                     f"the harness, {d['compute_only_efficiency']:.1%} compute-only "
                     f"({'meets' if d['efficiency'] >= 0.35 else 'misses'} the 35 % target).")
    prof = result.get("worst_profile")
    if prof:
        shares = sorted(prof["shares"].items(), key=lambda kv: -kv[1])
        lines += ["", f"Where the least efficient method ({prof['method']}) spends a plain-loop "
                  f"iteration (`torch.profiler`, {prof['steps']} steps, "
                  f"{prof['aten_calls_per_step']:.0f} aten operator calls per step):", "",
                  "| share | of the iteration |", "|---|---:|",
                  *(f"| {k} | {v:.1%} |" for k, v in shares)]
        worst = next(r for r in rows if r["method"] == prof["method"])
        dw_time = prof["shares"].get("depthwise convolution", 0.0)
        if "depthwise_flop_share" in worst and dw_time:
            conv_time = dw_time + prof["shares"].get("dense convolution", 0.0)
            lines += ["", f"Depthwise convolutions carry {worst['depthwise_flop_share']:.1%} of "
                      f"{prof['method']}'s step FLOPs and take {dw_time:.1%} of its iteration "
                      f"({dw_time / conv_time:.0%} of its convolution time)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=None, help="comma-separated ids (default: all "
                        "methods that pretrain on the surgical pool)")
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per run (0: "
                        "the cpu profile's max_steps of each method)")
    parser.add_argument("--warmup", type=int, default=2, help="iterations dropped from timing")
    parser.add_argument("--repeats", type=int, default=1, help="alternating harness/plain runs")
    parser.add_argument("--compute-repeats", type=int, default=2)
    parser.add_argument("--size", choices=["small", "default"], default="small",
                        help="synthetic suite size of the pool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-profile", action="store_true", help="skip the profiler pass")
    args = parser.parse_args()

    methods = args.methods.split(",") if args.methods else pc.pretraining_methods("surgical")
    pool = pc.surgical_pool(args.size, 64)
    peak = pc.matmul_peak()
    rows = []
    for method_id in methods:
        print(f"measuring {method_id} ...", file=sys.stderr, flush=True)
        rows.append(measure_method(method_id, pool, args, peak))
    peak_after = pc.matmul_peak()
    worst = min(rows, key=lambda r: r["efficiency"])
    profile = None if args.no_profile else {
        "method": worst["method"],
        **profile_step(pc.make_method(worst["method"], "cpu"), pool, args.seed)}
    result = {
        "what": "pretraining images/s, harness (mmengine Runner) vs plain PyTorch loop; FLOP/s "
                "of a step relative to the measured torch.mm peak",
        "profile": "cpu", "pool": f"synthetic surgical pool ({args.size}), {len(pool)} frames",
        "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
        "mm_peak_gflops": peak / 1e9, "mm_peak_after_gflops": peak_after / 1e9,
        "rows": rows, "worst_profile": profile, "machine": pc.machine(),
        "command": "python benchmarks/perf/pretrain_throughput.py " + " ".join(sys.argv[1:]),
    }
    pc.write_result(NAME, result)
    print(pc.table(rows, COLUMNS))
    print(f"torch.mm peak {peak / 1e9:.1f} GFLOP/s (before), {peak_after / 1e9:.1f} (after); "
          f"load {result['machine']['loadavg_1min']}")
    if profile:
        print(f"profile of {profile['method']} (share of a plain-loop iteration):")
        for k, v in sorted(profile["shares"].items(), key=lambda kv: -kv[1]):
            print(f"  {k:<50}{v:>7.1%}")


if __name__ == "__main__":
    main()
