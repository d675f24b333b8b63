"""Frame cache vs. PyAV decoding: frames/s of reading the 1-fps frames of every video.

On the synthetic Cholec80 (``--size small|default``, written once under the synthetic root
unless ``--root`` is given), one run measures side by side:

* ``decode``: decoding every video with PyAV each epoch (what a pipeline without the cache
  does): all 25-fps frames are decoded, the 1-fps ones converted and squashed;
* ``cache``: reading the same frames from the frame cache (``.npy`` memmaps), touching every
  byte; the first pass that fills the cache is timed separately.

Prints a table and writes ``benchmarks/perf/results/frame_cache.json``.

    .venv/bin/python benchmarks/perf/frame_cache.py --size default --epochs 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402

from ssl_bench import atomic  # noqa: E402
from ssl_bench.default_plugins.datasets.cholec80 import Cholec80  # noqa: E402
from ssl_bench.default_plugins.datasets.video import decode_video  # noqa: E402

RESULTS = pc.RESULTS / "frame_cache.json"


def synthetic_cholec80(size: str) -> Path:
    from ssl_bench.paths import synthetic_root
    from ssl_bench.synthetic_suite import ensure_synthetic

    return ensure_synthetic(synthetic_root(size), size, ids=["cholec80"])["cholec80"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "default"], default="small")
    parser.add_argument("--root", type=Path, default=None, help="a Cholec80-layout folder")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    root = args.root or synthetic_cholec80(args.size)
    with tempfile.TemporaryDirectory(prefix="frame-cache-bench-") as cache_dir:
        dataset = Cholec80(root, cache_dir=Path(cache_dir))
        units = dataset.units()
        videos = [dataset.video_path(u) for u in units]

        def decode_epoch() -> int:
            return sum(len(decode_video(v, args.fps, args.image_size, 25.0)[0]) for v in videos)

        def cache_epoch() -> int:
            total = 0
            for v in videos:
                frames, _ = dataset.frame_cache.load(v, args.fps, args.image_size, 25.0)
                total += len(frames)
                np.asarray(frames).sum(dtype=np.uint64)  # read every byte
            return total

        timings: dict[str, list[float]] = {"decode": [], "cache": []}
        start = time.perf_counter()
        n_frames = cache_epoch()  # fills the cache
        fill_s = time.perf_counter() - start
        for _ in range(args.epochs):
            for name, epoch in (("decode", decode_epoch), ("cache", cache_epoch)):
                start = time.perf_counter()
                assert epoch() == n_frames
                timings[name].append(time.perf_counter() - start)

    best = {k: min(v) for k, v in timings.items()}
    result = {
        "dataset": f"synthetic cholec80 ({args.size})" if args.root is None else str(root),
        "videos": len(videos),
        "frames_per_epoch": n_frames,
        "fps": args.fps,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "seconds_per_epoch": timings,
        "frames_per_s": {k: n_frames / v for k, v in best.items()},
        "speedup": best["decode"] / best["cache"],
        "first_pass_decode_and_write_s": fill_s,
        "machine": {"nproc": os.cpu_count(), "cpu": pc.cpu_model(),
                    "loadavg_1min": os.getloadavg()[0], "python": platform.python_version()},
    }
    print(f"{n_frames} frames ({args.fps:g} fps, {args.image_size}px) from {len(videos)} videos;"
          f" best of {args.epochs} epochs")
    print(f"{'path':<10}{'s/epoch':>10}{'frames/s':>12}")
    for name in ("decode", "cache"):
        print(f"{name:<10}{best[name]:>10.3f}{result['frames_per_s'][name]:>12.0f}")
    print(f"speedup {result['speedup']:.1f}x; first pass (decode + write) {fill_s:.2f}s; "
          f"nproc {os.cpu_count()}, {pc.cpu_model()}, load {os.getloadavg()[0]:.1f}")
    atomic.write_json(RESULTS, result)


if __name__ == "__main__":
    main()
