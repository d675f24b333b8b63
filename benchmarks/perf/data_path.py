"""Data path: does pretraining data loading keep up with the training step?

For every pretraining method at the ``cpu`` profile (same synthetic surgical pool as
``pretrain_throughput.py``), side by side in one process:

* ``loader``: images/s of iterating the pretraining DataLoader exactly as ``run_pretraining``
  builds it (the method's ``pretrain_dataset``: frame-cache memmap reads, the method's
  augmentations, default collate; ``num_workers`` from the method's config), ``--batches``
  batches after one warm-up batch;
* ``step``: images/s the training step consumes: batch size / the best time of forward +
  backward + optimiser step on a fixed batch (no loading).

Target: loader >= 2x the step's consumption. With ``num_workers=0`` (the
``cpu`` profile) loading runs in the training process, so its time adds to every iteration:
the ``loading share`` column is the fraction of an iteration spent loading.

Prints a table and writes ``benchmarks/perf/results/data_path.json``.

    .venv/bin/python benchmarks/perf/data_path.py --batches 4 [--methods simclr,mae]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402
from pretrain_throughput import compute_only_step, first_batch, make_loader  # noqa: E402

NAME = "data_path"
TARGET = 2.0


def batch_len(batch: Any) -> int:
    """Items in a collated batch: the first dimension of its first tensor (a batch may be a
    tensor, a list / tuple of views, or a dict of fields)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, (list, tuple)):
        return batch_len(batch[0])
    if isinstance(batch, dict):
        return batch_len(next(iter(batch.values())))
    raise TypeError(f"cannot count the items of a {type(batch).__name__} batch")


def loader_images_per_s(method: Any, pool: Any, batches: int, seed: int) -> tuple[float, int]:
    loader = make_loader(method, method.pretrain_dataset(pool), seed)
    done, images, start = -1, 0, 0.0
    while done < batches:
        for batch in loader:
            if done == -1:  # warm-up batch (worker start-up, page cache)
                start = time.perf_counter()
            else:
                images += batch_len(batch)
            done += 1
            if done == batches:
                break
    return images / (time.perf_counter() - start), images


def measure(method_id: str, pool: Any, args: argparse.Namespace) -> dict[str, Any]:
    method = pc.make_method(method_id, "cpu")
    loader_rate, images = loader_images_per_s(method, pool, args.batches, args.seed)
    batch = first_batch(method, pool, args.seed)
    step_s = compute_only_step(pc.make_method(method_id, "cpu"), batch, args.step_repeats)
    step_rate = method.config.batch_size / step_s
    return {"method": method_id, "batch_size": method.config.batch_size,
            "num_workers": method.config.num_workers, "images_loaded": images,
            "loader_img_s": loader_rate, "step_img_s": step_rate,
            "ratio": loader_rate / step_rate,
            "loading_share": (1 / loader_rate) / (1 / loader_rate + 1 / step_rate),
            "meets_target": loader_rate / step_rate >= TARGET}


COLUMNS = [("method", "method", ""), ("num_workers", "workers", "d"),
           ("loader_img_s", "loader img/s", ".1f"), ("step_img_s", "step img/s", ".1f"),
           ("ratio", "loader / step", ".1f"), ("loading_share", "loading share", ".1%")]


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    low = [r["method"] for r in rows if not r["meets_target"]]
    verdict = ("every method meets the 2x target" if not low else
               f"below the 2x target: {', '.join(low)}")
    return f"""Loader throughput of each method's pretraining DataLoader (as `run_pretraining`
builds it: frame-cache memmap reads, the method's augmentations, collate; `num_workers` from the
`cpu` profile) against the images/s its training step consumes (forward + backward + optimiser
step on a fixed batch), side by side in one run. Target: loader >= 2x the step. The loading
share is the part of an iteration spent loading when, as in the `cpu` profile, loading runs in
the training process.

    {result['command']}

{pc.table(rows, COLUMNS)}

Result: {verdict}. Pool: {result['pool']}. {pc.machine_line(result['machine'])}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=None, help="comma-separated ids (default: all "
                        "methods that pretrain on the surgical pool)")
    parser.add_argument("--batches", type=int, default=3, help="timed loader batches")
    parser.add_argument("--step-repeats", type=int, default=1)
    parser.add_argument("--size", choices=["small", "default"], default="small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    methods = args.methods.split(",") if args.methods else pc.pretraining_methods("surgical")
    pools: dict[float, Any] = {}  # the pool at each method's own frame rate, as the run
    rows = []
    for method_id in methods:
        print(f"measuring {method_id} ...", file=sys.stderr, flush=True)
        fps = pc.make_method(method_id, "cpu").config.fps
        if fps not in pools:
            pools[fps] = pc.surgical_pool(args.size, 64, fps)
        rows.append({**measure(method_id, pools[fps], args), "pool_fps": fps,
                     "pool_frames": len(pools[fps])})
    sizes = ", ".join(f"{len(p)} frames at {f:g} fps" for f, p in sorted(pools.items()))
    result = {"what": "pretraining DataLoader images/s vs training-step images/s (cpu profile)",
              "target": TARGET, "pool": f"synthetic surgical pool ({args.size}): {sizes}",
              "rows": rows, "machine": pc.machine(),
              "command": "python benchmarks/perf/data_path.py " + " ".join(sys.argv[1:])}
    pc.write_result(NAME, result)
    print(pc.table(rows, COLUMNS))
    print(f"load {result['machine']['loadavg_1min']}; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
