"""Does the harness see learning? Two measurements through the real pipeline (`ssl-bench run`
on the embedded synthetic suite, `cpu` profile, then the leaderboard's paired statistics):

1. **Dose-response.** The paired difference to ``random-init`` (hierarchical bootstrap over
   seeds and test units, 95% CI, Holm p) of ``simclr`` and ``mae`` on one benchmark, as a
   function of their pretraining steps (at least five points). A harness that measures
   learning shows the difference move with the steps; a flat line at 0 would mean the
   benchmark cannot tell a trained encoder from a random one.
2. **Broken control.** ``simclr`` with a collapsed encoder (:func:`ssl_bench.testing.collapsed`:
   the same pretraining, then an encoder that outputs a constant plus 1e-4 of the trained
   one), the state a silently broken SSL loss drives an encoder into. It must show no
   significant gain over random init and be flagged by the health check.

Every step count gets its own results folder (the step count is a config override, so it is a
different cell identity). Figures go to ``results/validity.json``, a PNG and the generated
section of ``README.md`` next to this script. With other options than the defaults (another
benchmark, methods, steps, seeds, profile or size) only ``results/validity_<benchmark>.json``
is written and the figures are printed; the README and the PNG are kept.

    .venv/bin/python benchmarks/validity/validity.py [--benchmark cholecseg8k-seg]
        [--methods simclr,mae] [--steps 6,12,24,48,96] [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "perf"))
import perf_common as pc  # noqa: E402

METHODS = ("simclr", "mae")
CONTROL = "simclr-collapsed"


class ControlPlugin:
    """Registers the broken control (a module-level class, so worker processes can load it)."""

    from ssl_bench import hookimpl

    @hookimpl
    def register_methods(self, register: Any) -> None:
        from ssl_bench.default_plugins.methods.simclr import SimCLR
        from ssl_bench.testing import collapsed

        register(collapsed(SimCLR, CONTROL))


def run_point(results: Path, benchmark: str, steps: int, seeds: str, profile: str,
              size: str, control: bool, trained: tuple[str, ...] = METHODS) -> None:
    from ssl_bench.cli import main

    methods = ["random-init", *trained] + ([CONTROL] if control else [])
    args = ["run", "--methods", ",".join(methods), "--benchmarks", benchmark,
            "--label-frac", "0.01", "--seeds", seeds, "--profile", profile,
            "--synthetic-size", size, "--results", str(results), "--quiet"]
    for method in (*trained, CONTROL):
        # max_steps is a cap on epochs x steps per epoch: open the epochs so it decides
        args += ["-o", f"{method}.max_steps={steps}", "-o", f"{method}.epochs=10000"]
    try:
        main(args)
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"ssl-bench run failed for {steps} steps ({exc.code})") from None


def read_point(results: Path, benchmark: str) -> dict[str, Any]:
    from ssl_bench.board import build_tables
    from ssl_bench.records import iter_records

    records, _ = iter_records(results)
    (table,) = [t for t in build_tables(records, [benchmark]) if not t.split]
    (column,) = table.columns
    out: dict[str, Any] = {"benchmark": benchmark, "column": column.header, "rows": {}}
    for method in table.methods:
        stat = table.cells[(method, column)]
        comp = table.comparisons.get((method, column))
        health = table.health.get(method, {})
        out["rows"][method] = {
            "mean": stat.mean, "n": stat.n,
            "delta": comp.delta if comp else None, "ci_low": comp.ci_low if comp else None,
            "ci_high": comp.ci_high if comp else None, "p_holm": comp.p_holm if comp else None,
            "significant": comp.significant if comp else None,
            "embedding_std_ratio": health.get("embedding_std_ratio"),
            "rankme": health.get("rankme"), "collapsed": health.get("collapsed"),
            "loss_first": health.get("loss_first"), "loss_last": health.get("loss_last"),
        }
    return out


def plot(points: list[dict[str, Any]], path: Path, trained: tuple[str, ...] = METHODS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssl_bench import atomic

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for i, method in enumerate(trained):
        xs, ys, lo, hi = [], [], [], []
        for p in points:
            row = p["rows"].get(method)
            if row and row["delta"] is not None:
                xs.append(p["steps"] * (1 + 0.04 * (i - 0.5)))  # dodge the two methods
                ys.append(row["delta"])
                lo.append(row["delta"] - row["ci_low"])
                hi.append(row["ci_high"] - row["delta"])
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=method)
    ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_xlabel("pretraining steps (cpu profile, batch as profile)")
    ax.set_ylabel(f"Δ {points[0]['benchmark']} vs random-init")
    ax.set_title("paired difference to random-init, 95% CI (hierarchical bootstrap)",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)


def readme_section(result: dict[str, Any]) -> str:
    rows = []
    for p in result["points"]:
        for method in (*result.get("methods", METHODS), CONTROL):
            row = p["rows"].get(method)
            if row is None:
                continue
            rows.append({"steps": p["steps"], "method": method, **row,
                         "sig": "yes" if row["significant"] else "no",
                         "flag": "COLLAPSED" if row["collapsed"] else "ok"})
    base = result["points"][-1]["rows"]["random-init"]
    body = [f"`{result['command']}` took {result['seconds'] / 60:.1f} min; "
            f"{pc.machine_line(result['machine'])}.", "",
            f"Benchmark `{result['benchmark']}` at 1% labels, seeds {result['seeds']}, `cpu` "
            f"profile; random-init scores {base['mean']:.2f}. Δ: paired difference to "
            "random-init [95% CI], p Holm-adjusted over the table's rows.", "",
            pc.table(rows, [("steps", "steps", "d"), ("method", "method", "s"),
                            ("mean", "score", ".2f"), ("delta", "Δ", "+.2f"),
                            ("ci_low", "CI low", "+.2f"), ("ci_high", "CI high", "+.2f"),
                            ("p_holm", "p (Holm)", ".3f"), ("sig", "significant", "s"),
                            ("embedding_std_ratio", "std ratio", ".3f"),
                            ("rankme", "RankMe", ".1f"), ("flag", "health", "s")]),
            "", "![paired difference vs pretraining steps](validity.png)"]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", default="cholecseg8k-seg")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="Trained methods compared with random-init (and the control).")
    parser.add_argument("--steps", default="6,12,24,48,96")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--size", default="default", choices=["small", "default"])
    parser.add_argument("--work", type=Path, default=None,
                        help="Folder for the runs' results (default: a temporary one).")
    parser.add_argument("--quick", action="store_true",
                        help="Two tiny points on the small suite with the smoke profile (a check "
                             "that the script works, not a measurement); the README is kept.")
    args = parser.parse_args(argv)
    defaults = vars(parser.parse_args([]))
    if args.quick:
        args.steps, args.seeds, args.profile, args.size = "1,2", "0", "smoke", "small"
    from ssl_bench import plugins

    plugins.register_plugin(ControlPlugin(), "validity-control", "benchmarks/validity")
    steps = [int(s) for s in args.steps.split(",")]
    trained = tuple(m for m in args.methods.split(",") if m)
    # only the default measurement rewrites the README and its plot
    official = not args.quick and all(getattr(args, k) == defaults[k] for k in
                                      ("benchmark", "methods", "steps", "seeds", "profile", "size"))
    work = args.work or pc.scratch("validity-")
    start = time.perf_counter()
    points = []
    for n in steps:
        results = work / f"steps-{n}"
        run_point(results, args.benchmark, n, args.seeds, args.profile, args.size,
                  control=(n == steps[-1]), trained=trained)
        points.append({"steps": n, **read_point(results, args.benchmark)})
        print(json.dumps({"steps": n, "rows": {m: {k: points[-1]["rows"][m][k]
                                                     for k in ("mean", "delta", "p_holm")}
                                                 for m in points[-1]["rows"]}}), flush=True)
    result = {"benchmark": args.benchmark, "methods": list(trained), "seeds": args.seeds,
              "profile": args.profile, "steps": steps, "points": points,
              "seconds": time.perf_counter() - start,
              "machine": pc.machine(),
              "command": " ".join(["python benchmarks/validity/validity.py", *(
                  argv if argv is not None else sys.argv[1:])])}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = ("validity_quick" if args.quick else "validity" if official
            else f"validity_{args.benchmark}")
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if official:
        plot(points, HERE / "validity.png", trained)
        pc.replace_section("validity", readme_section(result),
                           "Dose-response and the broken control", readme=HERE / "README.md")
    print(f"done in {result['seconds'] / 60:.1f} min; results in {out / (name + '.json')}",
          file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
