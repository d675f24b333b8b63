"""The performance suite (``make bench``): every script of ``benchmarks/perf/`` in sequence,
each with a short default run, then the README figures refreshed from their JSON.

Scripts (each prints its table and writes ``results/<script>.json``):

* ``frame_cache.py``: frame cache vs PyAV decoding (frames/s);
* ``mms_inference.py``: MMS predictor frames/s;
* ``pretrain_throughput.py``: harness vs plain-loop images/s, FLOP/s vs the matmul peak;
* ``data_path.py``: pretraining loader vs training-step images/s;
* ``feature_reuse.py``: feature cache vs recompute; sweep of 12 cells vs one cell;
* ``gpu.py``: the pretraining figures on a CUDA GPU (bf16, channels-last, ``torch.compile``,
  loader vs compute); says so and measures nothing without one;
* ``startup.py``: ``ssl-bench --help``, ``list`` and ``leaderboard`` wall time in fresh
  processes, and whether they import torch;
* ``end_to_end.py``: ``make run`` wall time and peak memory (long: only with ``--with-e2e``);
* ``full_scale.py``: Cholec80 at its real size: prepare time, cache disk, memory, pool,
  paper-profile loader, full-resolution projection (up to 15 minutes: only with
  ``--with-full-scale``).

Sections of ``README.md`` between ``<!-- perf:NAME -->`` markers are rewritten from the JSON
of the scripts that own them (the frame-cache and MMS sections are written by hand and left
as they are). ``--readme-only`` refreshes them from the existing JSON without measuring.

    .venv/bin/python benchmarks/perf/run_all.py [--with-e2e] [--with-full-scale]
        [--only data_path,feature_reuse]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402

#: (script, extra arguments of the short default run, README section title or None)
SCRIPTS: list[tuple[str, list[str], str | None]] = [
    ("frame_cache", ["--size", "small", "--epochs", "2"], None),
    ("mms_inference", ["--min-seconds", "2"], None),
    ("pretrain_throughput", ["--steps", "12", "--warmup", "2"],
     "Pretraining throughput and compute efficiency"),
    ("data_path", ["--batches", "3"], "Data path: loader vs training step"),
    ("feature_reuse", [], "Reuse: feature cache and sweep"),
    ("gpu", [], "GPU: mixed precision, channels-last, torch.compile"),
    ("startup", [], "Start-up: `--help`, `list`, `leaderboard`"),
    ("end_to_end", [], "End to end: `make run`"),
    ("full_scale", [], "Full scale: Cholec80 at its real size"),
]
#: scripts run only when asked for (by their flag or by --only)
LONG = {"end_to_end": "with_e2e", "full_scale": "with_full_scale"}
BUDGET_S = 15 * 60


def refresh_readme() -> list[str]:
    refreshed = []
    for name, _args, title in SCRIPTS:
        result = pc.read_result(name)
        if title is None or result is None:
            continue
        module = importlib.import_module(name)
        pc.replace_section(name, module.render(result), title)
        refreshed.append(name)
    return refreshed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-e2e", action="store_true", help="also run end_to_end.py "
                        "(the whole `make run`: up to 20 minutes)")
    parser.add_argument("--with-full-scale", action="store_true", help="also run "
                        "full_scale.py (Cholec80 at its real size: up to 15 minutes)")
    parser.add_argument("--only", default=None, help="comma-separated script names")
    parser.add_argument("--readme-only", action="store_true",
                        help="refresh README.md from the existing JSON, measure nothing")
    args = parser.parse_args()

    only = set(args.only.split(",")) if args.only else None
    timings: list[tuple[str, float, int]] = []
    if not args.readme_only:
        start_all = time.perf_counter()
        for name, extra, _title in SCRIPTS:
            if only is not None and name not in only:
                continue
            if name in LONG and not getattr(args, LONG[name]) and only is None:
                continue
            print(f"== {name} {' '.join(extra)}", flush=True)
            start = time.perf_counter()
            code = subprocess.call([sys.executable, str(pc.HERE / f"{name}.py"), *extra],
                                   cwd=pc.REPO)
            timings.append((name, time.perf_counter() - start, code))
        total = time.perf_counter() - start_all
        print("\n| script | seconds | exit |\n|---|---:|---:|")
        for name, seconds, code in timings:
            print(f"| {name} | {seconds:.0f} | {code} |")
        print(f"total {total / 60:.1f} min (budget {BUDGET_S // 60} min); "
              f"load {pc.machine()['loadavg_1min']}")
    refreshed = refresh_readme()
    print(f"README sections refreshed: {', '.join(refreshed) or 'none'}")
    if any(code != 0 for _n, _s, code in timings):
        sys.exit(1)


if __name__ == "__main__":
    main()
