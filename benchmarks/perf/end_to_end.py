"""End to end: wall time and peak memory of ``make run``'s command.

Runs ``ssl-bench run --methods all --label-frac 0.01 --profile cpu --device cpu`` (what
``make run`` runs, with the profile and device spelled out) on a fresh, temporary results
directory, under ``/usr/bin/time -v`` when it exists (its "Maximum resident set size" is the
peak RSS of the largest process of the run), else with
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. The embedded synthetic suite is written
first (outside the timing) when missing, as ``make run`` would reuse it on a second run.
Targets (issue 5): <= 20 minutes and <= 6 GB on a 2-core machine.

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
    args = parser.parse_args()

    from ssl_bench.commands.data import ensure_synthetic
    from ssl_bench.paths import synthetic_root

    ensure_synthetic(synthetic_root(args.size), args.size, quiet=True)
    with tempfile.TemporaryDirectory(prefix="perf-e2e-") as tmp:
        command = [ssl_bench_exe(), "run", "--methods", args.methods, "--label-frac",
                   args.label_frac, "--profile", "cpu", "--device", "cpu", "--synthetic-size",
                   args.size, "--results", str(Path(tmp) / "results"), "--quiet"]
        timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists()
                                         else None)
        wrapped = [timer, "-v", *command] if timer else command
        start = time.perf_counter()
        proc = subprocess.run(wrapped, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - start
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak_kb = int(match.group(1)) if match else resource.getrusage(
            resource.RUSAGE_CHILDREN).ru_maxrss
        records = list((Path(tmp) / "results" / "records").rglob("*.json"))
    peak_gb = peak_kb / 1024 ** 2
    result: dict[str, Any] = {
        "what": "make run (ssl-bench run --methods all --label-frac 0.01, cpu profile) wall time "
                "and peak RSS",
        "command": " ".join(command[:-3] + ["--results", "<fresh dir>", "--quiet"]),
        "exit_code": proc.returncode, "wall_s": wall, "peak_rss_gb": peak_gb,
        "records": len(records), "meets_time": wall <= TARGET_S,
        "meets_memory": peak_gb <= TARGET_GB, "size": args.size,
        "stderr_tail": proc.stderr[-2000:], "machine": pc.machine(),
    }
    pc.write_result(NAME, result)
    print(render(result))


def render(result: dict[str, Any]) -> str:
    return f"""`make run`'s command on a fresh results directory (synthetic suite `{result['size']}`
already written), timed with `/usr/bin/time -v`; peak memory is the largest process's maximum
resident set size. Targets: <= 20 min, <= 6 GB.

    {result['command']}

| wall time | peak RSS | exit code | records |
|---:|---:|---:|---:|
| {result['wall_s'] / 60:.1f} min | {result['peak_rss_gb']:.2f} GB | {result['exit_code']} |\
 {result['records']} |

Time target {'met' if result['meets_time'] else 'missed'}; memory target
{'met' if result['meets_memory'] else 'missed'}. {pc.machine_line(result['machine'])}.
"""


if __name__ == "__main__":
    main()
