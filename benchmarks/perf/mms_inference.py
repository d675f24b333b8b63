"""MMS inference speed: frames/s of the MMS segmentation predictor.

The predictor is what ``MMSMethod.fit_segmentation`` returns: one segmentation network
(``efficientnet_lite0`` encoder + U-Net decoder) wrapped in ``SegPredictor``. Speed does not
depend on the weights, so the networks are freshly built (random init) with the architecture of
each profile:

* ``cpu``: the cpu profile's network at 64x64;
* ``paper``: the paper profile's network (decoder widths 64/256/512) at 288x512 (H x W, the
  paper's 512x288 frames).

For batch 1 and batch 16, on CPU and on CUDA when ``torch.cuda.is_available()``: warm-up, then
forward passes under ``torch.inference_mode`` until ``--min-seconds`` have passed (at least
``--min-iters``); frames/s = frames / seconds. The paper claims about 40 fps on a GPU (with a
Res2Net-101 encoder). Prints a table and writes ``benchmarks/perf/results/mms_inference.json``.

    .venv/bin/python benchmarks/perf/mms_inference.py --min-seconds 3 [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402

from ssl_bench import atomic  # noqa: E402
from ssl_bench.testing import smoke_method  # noqa: E402
from ssl_bench_mms.method import MMSMethod  # noqa: E402
from ssl_bench_mms.networks import SegPredictor  # noqa: E402

RESULTS = pc.RESULTS / "mms_inference.json"
SETTINGS: list[tuple[str, tuple[int, int]]] = [("cpu", (64, 64)), ("paper", (288, 512))]


def build_predictor(profile: str, num_classes: int) -> SegPredictor:
    method = smoke_method(MMSMethod, profile, imagenet=False)
    model = method.build(num_classes)
    return SegPredictor(model.net1).eval()


def frames_per_second(predictor: SegPredictor, device: torch.device, hw: tuple[int, int],
                      batch: int, min_seconds: float, min_iters: int, warmup: int
                      ) -> dict[str, Any]:
    x = torch.rand(batch, 3, *hw, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            predictor(x)
        sync()
        iters, start = 0, time.perf_counter()
        while iters < min_iters or time.perf_counter() - start < min_seconds:
            predictor(x)
            iters += 1
        sync()
        seconds = time.perf_counter() - start
    return {"frames": iters * batch, "seconds": round(seconds, 4),
            "fps": round(iters * batch / seconds, 2),
            "ms_per_batch": round(1000 * seconds / iters, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--min-iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 avoids thread "
                             "oversubscription on a shared machine")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for profile, hw in SETTINGS:
        predictor = build_predictor(profile, args.num_classes)
        params = sum(p.numel() for p in predictor.parameters())
        for device in devices:
            predictor.to(device)
            for batch in args.batches:
                res = frames_per_second(predictor, device, hw, batch, args.min_seconds,
                                        args.min_iters, args.warmup)
                rows.append({"profile": profile, "height": hw[0], "width": hw[1],
                             "device": device.type, "batch": batch, "params": params, **res})
                print(f"{profile:6s} {hw[0]:4d}x{hw[1]:<4d} {device.type:4s} batch {batch:3d}: "
                      f"{res['fps']:9.2f} frames/s ({res['ms_per_batch']:.1f} ms/batch)",
                      flush=True)

    machine = {
        "cpu": pc.cpu_model(), "nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version(),
    }
    print()
    print("| setting | input (HxW) | device | batch | frames/s | ms/batch |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['profile']} | {r['height']}x{r['width']} | {r['device']} | {r['batch']} | "
              f"{r['fps']:.2f} | {r['ms_per_batch']:.1f} |")
    print(f"\nmachine: {machine}")
    atomic.write_json(args.output, {"method": "mms", "machine": machine, "results": rows})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
