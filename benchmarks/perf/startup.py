"""Start-up: wall time of ``ssl-bench --help``, ``ssl-bench list`` and ``ssl-bench
leaderboard``, each in a fresh process, and whether it imports torch.

Each command runs ``--runs`` times as the installed console script (after one untimed run that
warms the file cache), with every installed plugin loading (``SSL_BENCH_LOAD_PLUGINS`` unset),
as a user types it; the table gives the median, the fastest and the slowest run. ``python -c
pass`` is timed the same way: the interpreter's own start-up, which no change to ssl-bench can
remove. ``leaderboard`` reads a temporary results folder of 2 methods x 3 seeds of one
benchmark (records written here, no training). One more run of each command, in-process
through ``ssl_bench.cli.main``, names the heavy libraries it imported (torch, timm, monai,
mmengine, lightly). Targets: ``--help`` and ``list`` <= 1 s on an idle
machine; ``leaderboard`` imports no torch.

Prints a table, writes ``benchmarks/perf/results/startup.json`` and the ``startup`` section of
``benchmarks/perf/README.md``; ``--quick`` (3 runs, a check that the script works) writes
``results/startup_quick.json`` and leaves the README alone.

    .venv/bin/python benchmarks/perf/startup.py [--runs 7] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402

NAME = "startup"
TITLE = "Start-up: `--help`, `list`, `leaderboard`"
TARGET_S = 1.0
HEAVY = ("torch", "timm", "monai", "mmengine", "lightly")
#: runs ``ssl-bench ARGS`` in-process and prints the heavy libraries it imported
IMPORTS_PROBE = (
    "import sys\n"
    "from ssl_bench.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
)


def ssl_bench_exe() -> list[str]:
    exe = Path(sys.executable).with_name("ssl-bench")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ssl_bench"]


def write_records(results: Path) -> None:
    """2 methods x 3 seeds of one benchmark: enough for every table and plot of the page."""
    from ssl_bench.records import write_record
    from ssl_bench.testing import score_record

    for method, base in (("method-a", 70.0), ("method-b", 80.0)):
        for seed in range(3):
            write_record(results, score_record(method, seed, base + 2.0 * seed, benchmark="bench",
                                               label_frac=0.1, profile="cpu", plugin="perf"))


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("SSL_BENCH_LOAD_PLUGINS", "SSL_BENCH_DISABLE_PLUGINS")}


def time_command(command: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` fresh processes of ``command`` (after one untimed run)."""
    env = child_env()
    subprocess.run(command, capture_output=True, env=env, check=True)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, env=env, check=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def heavy_imports(args: list[str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", IMPORTS_PROBE, *args], capture_output=True,
                         text=True, env=child_env(), check=True)
    line = next(x for x in out.stderr.splitlines() if x.startswith("HEAVY="))
    return [m for m in line[len("HEAVY="):].split(",") if m]


def installed_plugins() -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group="ssl_bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command")
    parser.add_argument("--quick", action="store_true", help="3 runs per command (a check "
                        "that the script works; not figures to publish)")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs

    exe = ssl_bench_exe()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="perf-startup-") as tmp:
        results = Path(tmp) / "results"
        write_records(results)
        commands: list[tuple[str, list[str] | None, bool]] = [
            ("python -c pass", None, False),
            ("ssl-bench --help", ["--help"], True),
            ("ssl-bench list", ["list"], True),
            ("ssl-bench leaderboard", ["leaderboard", "--results", str(results), "--out",
                                       str(Path(tmp) / "board")], False),
        ]
        for label, cli_args, targeted in commands:
            command = [sys.executable, "-c", "pass"] if cli_args is None else [*exe, *cli_args]
            seconds = time_command(command, runs)
            rows.append({
                "command": label, "median_s": statistics.median(seconds),
                "min_s": min(seconds), "max_s": max(seconds), "runs": runs,
                "heavy": None if cli_args is None else (", ".join(heavy_imports(cli_args))
                                                         or "none"),
                "target": "<= 1 s" if targeted else ("no torch" if cli_args else ""),
            })
            print(f"{label}: median {rows[-1]['median_s']:.2f} s", flush=True)
    for row in rows:
        if row["target"] == "<= 1 s":
            row["meets"] = row["median_s"] <= TARGET_S
        elif row["target"] == "no torch":
            row["meets"] = "torch" not in row["heavy"]
    result = {"what": "wall time of start-up commands in fresh processes (median of runs)",
              "rows": rows, "plugins": installed_plugins(), "quick": bool(args.quick),
              "machine": pc.machine()}
    pc.write_result(f"{NAME}_quick" if args.quick else NAME, result)
    if not args.quick:
        pc.replace_section(NAME, render(result), TITLE)
    print(render(result))


def render(result: dict[str, Any]) -> str:
    rows = [{**r, "meets": {True: "yes", False: "no"}.get(r.get("meets"), "")}
            for r in result["rows"]]
    table = pc.table(rows, [("command", "command", ""), ("median_s", "median s", ".2f"),
                            ("min_s", "fastest s", ".2f"), ("max_s", "slowest s", ".2f"),
                            ("heavy", "heavy imports", ""), ("target", "target", ""),
                            ("meets", "met", "")])
    runs = result["rows"][0]["runs"]
    quick = (" Quick mode (3 runs): a check that the script works, not figures to publish."
             if result.get("quick") else "")
    return f"""Wall time of start-up commands, each in a fresh process as the console script
with every installed plugin loading; median, fastest and slowest of {runs} runs after one
untimed run. `python -c pass` is the interpreter's own start-up. Heavy imports: which of torch,
timm, monai, mmengine and lightly the command imported (the built-ins and the seed plugins
register their classes by import path with their metadata, `ssl_bench.lazy.LazyClass`, so
these commands import none of them). `leaderboard` reads 6 records (2 methods x 3 seeds).
Targets: `--help` and `list` <= 1 s on an idle machine; `leaderboard`
imports no torch.

    python benchmarks/perf/startup.py

{table}

Plugins loaded ({len(result['plugins'])} entry points): {', '.join(result['plugins'])}.
{pc.machine_line(result['machine'])}.{quick}
"""


if __name__ == "__main__":
    main()
