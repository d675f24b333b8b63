"""End to end: wall time and peak memory of ``make run``'s command.

Runs ``ssl-bench run --methods all --label-frac 0.01 --profile cpu --device cpu`` (what
``make run`` runs, with the profile and device spelled out) on a fresh, temporary results
directory, under ``/usr/bin/time -v`` when it exists (its "Maximum resident set size" is the
peak RSS of the largest process of the run), else with
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. The embedded synthetic suite is written
first (outside the timing) when missing, as ``make run`` would reuse it on a second run.
Targets: <= 20 minutes and <= 6 GB on a 2-core machine.

Prints a table and writes ``benchmarks/perf/results/end_to_end.json``.

    .venv/bin/python benchmarks/perf/end_to_end.py [--size default] [--methods all]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402

NAME = "end_to_end"
TARGET_S = 20 * 60
TARGET_GB = 6.0


def ssl_bench_exe() -> str:
    exe = Path(sys.executable).with_name("ssl-bench")
    return str(exe) if exe.exists() else "ssl-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="all")
    parser.add_argument("--label-frac", default="0.01")
    parser.add_argument("--size", choices=["small", "default"], default="default",
                        help="synthetic suite size (make run uses default)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep", type=Path, default=None,
                        help="results directory to keep (default: a temporary one)")
    args = parser.parse_args()

    from ssl_bench.paths import synthetic_root
    from ssl_bench.synthetic_suite import ensure_synthetic

    ensure_synthetic(synthetic_root(args.size), args.size)
    if args.keep is not None and args.keep.exists():
        raise SystemExit(f"{args.keep} exists; end_to_end.py measures a fresh results directory")
    with tempfile.TemporaryDirectory(prefix="perf-e2e-") as tmp:
        results = args.keep or Path(tmp) / "results"
        command = [ssl_bench_exe(), "run", "--methods", args.methods, "--label-frac",
                   args.label_frac, "--profile", "cpu", "--device", "cpu", "--synthetic-size",
                   args.size, "--results", str(results), "--quiet"]
        timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists()
                                         else None)
        wrapped = [timer, "-v", *command] if timer else command
        start = time.perf_counter()
        proc = subprocess.run(wrapped, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - start
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak_kb = int(match.group(1)) if match else resource.getrusage(
            resource.RUSAGE_CHILDREN).ru_maxrss
        records = list((results / "records").rglob("*.json"))
        breakdown = time_breakdown(records)
    peak_gb = peak_kb / 1024 ** 2
    result: dict[str, Any] = {
        "what": "make run (ssl-bench run --methods all --label-frac 0.01, cpu profile) wall time "
                "and peak RSS",
        "command": " ".join(["ssl-bench", *command[1:-3], "--results", "<fresh dir>",
                             "--quiet"]),
        "exit_code": proc.returncode, "wall_s": wall, "peak_rss_gb": peak_gb,
        "records": len(records), "meets_time": wall <= TARGET_S,
        "meets_memory": peak_gb <= TARGET_GB, "size": args.size,
        "stderr_tail": proc.stderr[-2000:], "machine": pc.machine(), **breakdown,
    }
    pc.write_result(NAME, result)
    print(render(result))


def time_breakdown(records: list[Path]) -> dict[str, Any]:
    """Where the run's time went, from the records' own timings: pretraining once per
    checkpoint, and each benchmark's cells (feature extraction + downstream)."""
    import json
    from collections import defaultdict

    pretrain: dict[str, float] = {}
    per_benchmark: dict[str, float] = defaultdict(float)
    per_row: dict[str, float] = defaultdict(float)
    for path in records:
        r = json.loads(path.read_text())
        t = r.get("timings") or {}
        if r.get("checkpoint") and t.get("pretrain_s") and not t.get("pretrain_cached"):
            pretrain[r["checkpoint"]] = float(t["pretrain_s"])
        cell_s = float(t.get("features_s") or 0.0) + float(t.get("downstream_s") or 0.0)
        per_benchmark[r["benchmark"]] += cell_s
        per_row[f"{r['benchmark']} / {r['method']['id']}"] += cell_s
    slowest = sorted(per_row.items(), key=lambda kv: -kv[1])[:5]
    return {"pretrain_s": sum(pretrain.values()), "pretrainings": len(pretrain),
            "cells_s_by_benchmark": dict(per_benchmark), "slowest_rows_s": dict(slowest)}


def render(result: dict[str, Any]) -> str:
    parts = ""
    if "cells_s_by_benchmark" in result:
        by_bench = ", ".join(f"{k} {v / 60:.1f} min" for k, v in
                             sorted(result["cells_s_by_benchmark"].items()))
        slow = ", ".join(f"{k} {v:.0f} s" for k, v in
                         sorted(result["slowest_rows_s"].items(), key=lambda kv: -kv[1]))
        parts = (f"\nWhere the time went (the records' own timings): pretraining "
                 f"{result['pretrain_s'] / 60:.1f} min for {result['pretrainings']} checkpoints; "
                 f"cells (features + downstream) {by_bench}. Slowest rows (all seeds): {slow}.\n")
    command = re.sub(r"^\S*ssl-bench ", "ssl-bench ", result["command"])
    return f"""`make run`'s command on a fresh results directory (synthetic suite `{result['size']}`
already written), timed with `/usr/bin/time -v`; peak memory is the largest process's maximum
resident set size. Targets: <= 20 min, <= 6 GB.

    {command}

| wall time | peak RSS | exit code | records |
|---:|---:|---:|---:|
| {result['wall_s'] / 60:.1f} min | {result['peak_rss_gb']:.2f} GB | {result['exit_code']} |\
 {result['records']} |

Time target {'met' if result['meets_time'] else 'missed'}; memory target
{'met' if result['meets_memory'] else 'missed'}. {pc.machine_line(result['machine'])}.
{parts}"""


if __name__ == "__main__":
    main()
