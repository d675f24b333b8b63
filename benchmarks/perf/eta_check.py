"""The run's ETA against the truth (the target: the ETA shown after the first cell is within
2x of the time the run then takes).

Runs ``make run``'s command (``ssl-bench run --methods all --label-frac 0.01 --profile cpu
--device cpu``; smaller with the options below) on a fresh results directory, with stderr a
pipe, so the run prints its plain progress lines (as in a log), and timestamps each line as it
arrives. It records:

* the plan's estimate of the whole run (the ``run: ...; estimated H:MM:SS (...)`` line) and
  what it rested on (measured / related / guessed items);
* the ETA printed after the first cell (``[1/N] ... run ETA H:MM:SS``) and the time from that
  line to the last cell's line (the run's remaining cells; the leaderboard written after them
  is left out, as the ETA leaves it out), and their ratio.

``--rates machine`` (default) uses the rates kept on this machine (``rates.json`` in the user
cache: a first run has none and falls back to guesses, then to what the run itself measures;
every run keeps its rates, so the second run is the informed case); ``--rates cold`` gives the
run an empty rates file of its own (``SSL_BENCH_RATES``) to show the uninformed case, and
leaves the machine's rates alone.

Prints a summary and writes ``benchmarks/perf/results/eta_check.json``; with ``make run``'s
options (the defaults) it also rewrites its section of ``benchmarks/perf/README.md``.

    .venv/bin/python benchmarks/perf/eta_check.py                       # make run (minutes)
    .venv/bin/python benchmarks/perf/eta_check.py --profile smoke --size small \\
        --methods simclr,imagenet --seeds 0,1                          # a quick check
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402
from end_to_end import ssl_bench_exe  # noqa: E402

NAME = "eta_check"
TITLE = "ETA: the first cell's against the truth"
#: make run's options: only such a run writes the README section
MAKE_RUN = {"methods": "all", "benchmarks": "default", "label_frac": "0.01", "seeds": "0,1,2,3,4",
            "profile": "cpu", "size": "default"}
PLAN = re.compile(r"^run: (\d+) cells and (\d+) pretraining runs to compute; estimated "
                  r"(\d+):(\d\d):(\d\d) \((.*)\)$")
DONE = re.compile(r"^\[(\d+)/(\d+)\] .*run ETA (\d+):(\d\d):(\d\d)\)$")


def clock_seconds(h: str, m: str, s: str) -> int:
    return int(h) * 3600 + int(m) * 60 + int(s)


def parse(lines: list[tuple[float, str]], start: float, end: float) -> dict[str, Any]:
    """The ETA figures of a run's timestamped stderr lines (``start``/``end``: the process's)."""
    out: dict[str, Any] = {"wall_s": end - start}
    cells = [(t, DONE.match(line)) for t, line in lines if DONE.match(line)]
    for t, line in lines:
        plan = PLAN.match(line)
        if plan:
            out.update(cells_planned=int(plan.group(1)), pretrainings=int(plan.group(2)),
                       plan_estimate_s=clock_seconds(*plan.group(3, 4, 5)),
                       plan_basis=plan.group(6), plan_line_after_s=t - start)
            break
    if cells:
        t_first, first = cells[0]
        t_last = cells[-1][0]
        eta = clock_seconds(*first.group(3, 4, 5))
        remaining = t_last - t_first
        out.update(first_cell_after_s=t_first - start, eta_after_first_cell_s=eta,
                   actual_remaining_s=remaining, cells_done=len(cells),
                   eta_ratio=eta / remaining if remaining > 0 else None,
                   within_2x=(remaining > 0 and 0.5 <= eta / remaining <= 2.0))
    if "plan_estimate_s" in out and cells:
        out["plan_ratio"] = out["plan_estimate_s"] / max(1e-9, cells[-1][0] - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="all")
    parser.add_argument("--benchmarks", default="default")
    parser.add_argument("--label-frac", default="0.01")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--profile", choices=["smoke", "cpu", "paper"], default="cpu")
    parser.add_argument("--size", choices=["small", "default"], default="default",
                        help="synthetic suite size (make run uses default)")
    parser.add_argument("--rates", choices=["machine", "cold"], default="machine")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()

    from ssl_bench.engine.rates import load_rates, rates_path
    from ssl_bench.paths import synthetic_root
    from ssl_bench.synthetic_suite import ensure_synthetic

    ensure_synthetic(synthetic_root(args.size), args.size)
    with tempfile.TemporaryDirectory(prefix="perf-eta-") as tmp:
        env = dict(os.environ)
        if args.rates == "cold":
            env["SSL_BENCH_RATES"] = str(Path(tmp) / "rates.json")
        kept = load_rates(Path(env["SSL_BENCH_RATES"]) if args.rates == "cold" else None)
        command = [ssl_bench_exe(), "run", "--methods", args.methods, "--benchmarks",
                   args.benchmarks, "--label-frac", args.label_frac, "--seeds", args.seeds,
                   "--profile", args.profile, "--device", "cpu", "--synthetic-size", args.size,
                   "--results", str(Path(tmp) / "results")]
        lines: list[tuple[float, str]] = []
        start = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=env) as proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append((time.perf_counter(), line.rstrip("\n")))
                if time.perf_counter() - start > args.timeout:
                    proc.kill()
            code = proc.wait()
        end = time.perf_counter()
    result: dict[str, Any] = {
        "what": "ETA after the first cell vs the run's remaining time",
        "command": " ".join(["ssl-bench", *command[1:-2], "--results", "<fresh dir>"]),
        "rates": args.rates, "kept_cell_rates_before": len(kept.cells),
        "kept_pretraining_rates_before": len(kept.pretraining),
        "rates_file": str(rates_path()) if args.rates == "machine" else "(a fresh one)",
        "exit_code": code, **parse(lines, start, end),
        "stderr_tail": "\n".join(line for _t, line in lines[-20:]), "machine": pc.machine(),
    }
    pc.write_result(NAME, result)
    print(render(result))
    if all(getattr(args, key) == value for key, value in MAKE_RUN.items()):
        pc.replace_section(NAME, render(result), TITLE)
    else:
        print("(not make run's command: benchmarks/perf/README.md left as it is)")


def render(result: dict[str, Any]) -> str:
    if "eta_ratio" not in result or result["eta_ratio"] is None:
        return (f"no first-cell ETA found (exit code {result['exit_code']}); stderr tail:\n"
                f"{result['stderr_tail']}")
    verdict = "within 2x" if result["within_2x"] else "NOT within 2x"
    return f"""`eta_check.py`: the ETA the run printed after its first cell against the time its
remaining cells then took (target: within 2x), in plain-line (log) mode:

    {result['command']}

Rates: `{result['rates']}` ({result['kept_cell_rates_before']} cell and
{result['kept_pretraining_rates_before']} pretraining rates kept before the run; a first run on a
machine has none and starts from guesses).

| | estimate | actual | ratio |
|---|---:|---:|---:|
| whole run, at the start ({result.get('plan_basis', '')}) | {result.get('plan_estimate_s', 'n/a')} s | {result['first_cell_after_s'] + result['actual_remaining_s']:.0f} s | {result.get('plan_ratio', float('nan')):.2f} |
| after the first cell ({result['first_cell_after_s']:.0f} s in) | {result['eta_after_first_cell_s']} s | {result['actual_remaining_s']:.0f} s | {result['eta_ratio']:.2f} ({verdict}) |

{pc.machine_line(result['machine'])}."""  # noqa: E501 (a markdown report: its table rows are one line each)


if __name__ == "__main__":
    main()
