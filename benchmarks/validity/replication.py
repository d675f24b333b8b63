"""Do the leaderboard's significance calls replicate? The default board (`ssl-bench run
--methods all --label-frac 0.01`, default benchmarks, `cpu` profile) is run twice, with
disjoint seed sets (A: 0-4, the default run's; B: 5-9 by default), each into its own results
folder, and the two boards' calls against ``random-init`` (and against ``bn-adapt`` when both
boards have that row) are compared.

Per benchmark and baseline it reports the number of calls (one per non-baseline row compared in
both boards: better / no difference / worse, from the Holm-adjusted ``significant`` flag and
the sign of Δ), the share that agree, the sign flips (better in one board, worse in the
other), Kendall's τ between the two orders of the rows by mean score (with its p-value), and
every disagreeing call with both Δ and p. The verdict is the target of :mod:`calls`: on every
benchmark at least 90 % of the calls agree and none flips, and both boards still decide
things (``imagenet`` significantly above ``random-init`` on every benchmark, and at least
three SSL rows significant against it, the same way, on one benchmark in both boards).

Whether disjoint seeds also mean disjoint pretraining runs depends on the run's pretraining
seeds: when seed s pretrains with seed s they do; when every seed reads one pretraining run per
method (a fixed pretraining seed), A and B read the same checkpoints (bit for bit at equal
thread counts) and only the label subsets, heads and test units are resampled. The output
counts, per benchmark, the rows whose checkpoint is the same in both boards. ``--threads-b N``
runs B in one process with N torch threads (``OMP_NUM_THREADS``), which changes the last bits
of every pretraining and training step (``docs/reliability.md``); ``--pretraining`` passes
``ssl-bench run --pretraining`` to both runs.

    .venv/bin/python benchmarks/validity/replication.py [--results-a results]
        [--seeds-a 0,1,2,3,4 --seeds-b 5,6,7,8,9] [--threads-b 2] [--skip-runs]

``--results-a results`` reuses the folder of a ``make run`` (seeds 0-4): resume recomputes
nothing there when the code is unchanged. ``--skip-runs`` only compares the two folders as
they are. With the default run options the figures go to ``replication.json`` next to this
script (``replication_threads<N>.json`` with ``--threads-b``) and to the generated section of
``README.md``; ``--threads-b N --seeds-b 0,1,2,3,4`` (A's seeds) isolates the thread count
(``replication_threads<N>_same_seeds.json``). With other options (profile, size, methods,
benchmarks, label fraction, seeds, bootstrap replicates) the figures go to
``results/replication_custom*.json`` only.

Another machine: ``--results-a results --results-b OTHER --skip-runs --seeds-b 0,1,2,3,4
--machine-b 'its CPU'`` compares this machine's board with one made elsewhere (e.g. the
committed bundle, imported with ``ssl-bench import``) on the same seeds
(``replication_other_machine_same_seeds.json``). Whenever the two boards hold the same cells
(equal identity and seeds), the output also gives, per benchmark, how far those cells' main
scores lie apart: the environment's share of a score, from which the tasks' verification
tolerances are read.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "perf"))
sys.path.insert(0, str(HERE))
import calls as cv  # noqa: E402
import perf_common as pc  # noqa: E402

REPO = HERE.parents[1]
WORK = HERE / "results"
#: the options that define the committed measurement (the others only say where and how)
OFFICIAL = ("methods", "benchmarks", "label_frac", "profile", "synthetic_size", "seeds_a",
            "pretraining", "n_boot")


def run_command(args: argparse.Namespace, seeds: str, results: Path,
                threads: int | None) -> tuple[list[str], dict[str, str]]:
    """The ``ssl-bench run`` command line of one board and the environment it adds."""
    command = [sys.executable, "-m", "ssl_bench", "run", "--methods", args.methods,
               "--benchmarks", args.benchmarks, "--label-frac", args.label_frac,
               "--seeds", seeds, "--profile", args.profile,
               "--synthetic-size", args.synthetic_size, "--results", str(results),
               "--jobs", "1" if threads else args.jobs]
    if args.pretraining:
        command += ["--pretraining", args.pretraining]
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {}
    return command, env


def shown(command: list[str], env: dict[str, str]) -> str:
    """The command as one would type it in the repository root (paths inside it relative)."""
    words = ["ssl-bench", *command[3:]] if command[1:3] == ["-m", "ssl_bench"] else command
    prefix = [f"{k}={v}" for k, v in env.items()]
    text = " ".join(shlex.quote(w) for w in prefix + words)
    return text.replace(f"{REPO}/", "")


def run_board(command: list[str], env: dict[str, str]) -> float:
    """Run one board; its wall seconds."""
    print(f"$ {shown(command, env)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env})
    if done.returncode:
        raise SystemExit(f"ssl-bench run failed ({done.returncode}): {shown(command, env)}")
    return time.perf_counter() - start


def board_records(results: Path, seeds: str, label_frac: str) -> list[Any]:
    """The folder's records of the given seeds and label fractions (a reused folder may hold
    others)."""
    wanted_seeds = {int(s) for s in seeds.split(",") if s.strip()}
    fracs = [float(f) for f in label_frac.split(",") if f.strip()]
    return [r for r in cv.load_records(results) if r.seed in wanted_seeds
            and (r.label_setting == "frac" and any(abs(r.label_frac - f) < 1e-12 for f in fracs))]


def shared_checkpoints(records_a: list[Any], records_b: list[Any]) -> dict[str, dict[str, Any]]:
    """Per benchmark, how many rows read a pretraining checkpoint (or built weights) of the
    same id in both boards: the pretraining runs the two boards share."""
    a, b = cv.checkpoints(records_a), cv.checkpoints(records_b)
    out: dict[str, dict[str, Any]] = {}
    for bench, method in sorted(set(a) & set(b)):
        entry = out.setdefault(bench, {"rows": 0, "same": 0, "shared": []})
        entry["rows"] += 1
        if a[(bench, method)] & b[(bench, method)]:
            entry["same"] += 1
            entry["shared"].append(method)
    return out


def cell_differences(records_a: list[Any], records_b: list[Any]) -> dict[str, dict[str, Any]]:
    """Per benchmark, how far the main scores of the same cells lie apart in the two boards.

    A cell is the same when its identity (everything that can change its score, the machine
    excepted) and its seeds are equal; with the same seeds on two machines or thread counts this
    is the environment's share of a score. The largest difference per task is what
    ``TaskMeta.verify_tolerance`` is read from."""
    def keyed(records: list[Any]) -> dict[str, Any]:
        return {f"{r.seed}|{r.cell_seed}|{r.identity.model_dump_json()}": r for r in records
                if r.identity is not None and r.status == "ok" and r.main_score is not None}

    a, b = keyed(records_a), keyed(records_b)
    diffs: dict[str, list[float]] = {}
    tasks: dict[str, str] = {}
    for key in sorted(set(a) & set(b)):
        bench = a[key].benchmark
        tasks[bench] = a[key].task.id
        diffs.setdefault(bench, []).append(abs(a[key].main_score - b[key].main_score))
    out: dict[str, dict[str, Any]] = {}
    for bench, values in sorted(diffs.items()):
        arr = np.asarray(values)
        out[bench] = {"task": tasks[bench], "cells": len(values),
                      "identical": int((arr == 0).sum()),
                      "median_abs": float(np.median(arr)),
                      "p95_abs": float(np.percentile(arr, 95)), "max_abs": float(arr.max())}
    return out


def compare(records_a: list[Any], records_b: list[Any], n_boot: int) -> dict[str, Any]:
    """Both boards' tables against each baseline, the agreements and the verdict."""
    tables_a = cv.main_tables(records_a, cv.BASELINE, n_boot)
    tables_b = cv.main_tables(records_b, cv.BASELINE, n_boot)
    agreements = cv.compare_boards(tables_a, tables_b, cv.BASELINE)
    baselines = [cv.BASELINE]
    if cv.has_row(records_a, cv.BN_ADAPT) and cv.has_row(records_b, cv.BN_ADAPT):
        baselines.append(cv.BN_ADAPT)
        agreements += cv.compare_boards(cv.main_tables(records_a, cv.BN_ADAPT, n_boot),
                                        cv.main_tables(records_b, cv.BN_ADAPT, n_boot),
                                        cv.BN_ADAPT)
    kinds = {**cv.method_kinds(records_a), **cv.method_kinds(records_b)}
    verdict = cv.replication_verdict(agreements, tables_a, tables_b, kinds)
    return {"baselines": baselines, "agreements": [a.as_json() for a in agreements],
            "verdict": verdict, "ssl_rows": cv.ssl_rows(kinds),
            "shared_checkpoints": shared_checkpoints(records_a, records_b),
            "same_cells": cell_differences(records_a, records_b)}


def call_text(call: dict[str, Any]) -> str:
    """``better +1.23 (p 0.004)``: a call with its Δ and Holm p."""
    delta = "n/a" if call["delta"] is None else f"{call['delta']:+.2f}"
    p = "n/a" if call["p_holm"] is None else f"{call['p_holm']:.3f}"
    return f"{call['call']} {delta} (p {p})"


def readme_section(result: dict[str, Any]) -> str:
    m = result["machine"]
    verdict = result["verdict"]
    runs = result["runs"]
    lines = [f"`{result['command']}` took {result['seconds'] / 60:.1f} min "
             + ("(boards compared as found: `--skip-runs`)" if result["skip_runs"] else "")
             + f"; machine: `nproc` {m['nproc']}, {m['cpu']}, torch {m['torch']}; 1-min load "
             f"average {m['loadavg_1min']} at the start, {result['loadavg_end']} at the end; "
             f"{m['date']}.", ""]
    for name in ("a", "b"):
        run = runs[name]
        lines.append(f"* Board {name.upper()}: seeds {run['seeds']} (found: "
                     f"{', '.join(map(str, run['seeds_found'])) or 'none'}), "
                     f"{run['records']} records, torch threads per process "
                     f"{', '.join(map(str, run['threads'])) or 'unknown'}, "
                     + (f"made on {run['machine']}, " if run.get("machine", "this machine")
                        != "this machine" else "")
                     + (f"run in {run['seconds'] / 60:.1f} min: " if run["seconds"] is not None
                        else "not run here: ")
                     + f"`{run['command']}`")
    lines += ["", f"**Verdict: {'PASSES' if verdict['passes'] else 'FAILS'}** the target "
              f"(calls replicate: {'yes' if verdict['replicates'] else 'no'}; the boards still "
              f"decide: {'yes' if verdict['decides'] else 'no'}).", ""]
    lines += [f"* {reason}" for reason in verdict["reasons"]]
    rows = []
    for ag in result["agreements"]:
        rows.append({**ag, "agreement_pct": None if ag["agreement"] is None
                     else 100 * ag["agreement"], "flips": ", ".join(ag["sign_flips"]) or "none",
                     "met": "yes" if ag["meets_target"] else "no"})
    lines += ["", "Calls: one per non-baseline row compared in both boards (better / no "
              "difference / worse: Holm-adjusted p < 0.05 and the sign of Δ). τ: Kendall's "
              "tau-b between the two orders of the rows by mean score.", "",
              pc.table(rows, [("baseline", "baseline", "s"), ("benchmark", "benchmark", "s"),
                              ("column", "labels", "s"), ("calls", "calls", "d"),
                              ("agree", "agree", "d"), ("agreement_pct", "agree %", ".0f"),
                              ("flips", "sign flips", "s"), ("kendall_tau", "τ", ".2f"),
                              ("kendall_p", "p (τ)", ".3f"), ("ranked_rows", "rows", "d"),
                              ("met", "target met", "s")])]
    disagreements = []
    for ag in result["agreements"]:
        for d in ag["disagreements"]:
            disagreements.append({
                "baseline": ag["baseline"], "benchmark": ag["benchmark"], "method": d["method"],
                "a": call_text(d["a"]), "b": call_text(d["b"])})
    if disagreements:
        lines += ["", "Disagreeing calls (call, Δ, Holm p):", "",
                  pc.table(disagreements, [("baseline", "baseline", "s"),
                                           ("benchmark", "benchmark", "s"),
                                           ("method", "method", "s"), ("a", "board A", "s"),
                                           ("b", "board B", "s")])]
    imagenet = verdict["imagenet_vs_random_init"]
    lines += ["", "imagenet vs random-init: " + "; ".join(
        f"{bench} A {imagenet['a'].get(bench) or 'n/a'}, B {imagenet['b'].get(bench) or 'n/a'}"
        for bench in sorted(set(imagenet["a"]) | set(imagenet["b"]))) + ".",
        "SSL rows significant vs random-init the same way in both boards: " + ("; ".join(
            f"{m} ({', '.join(where)})" for m, where in sorted(verdict["ssl_rows_decided"].items()))
            or "none") + "."]
    shared = result["shared_checkpoints"]
    if shared:
        lines += ["", "Rows reading the same pretraining checkpoint (or built weights) in both "
                  "boards: " + "; ".join(f"{bench} {s['same']} of {s['rows']}"
                                         for bench, s in sorted(shared.items())) + "."]
    same = result.get("same_cells") or {}
    if same:
        rows = [{"benchmark": bench, **entry} for bench, entry in same.items()]
        lines += ["", "The same cells in both boards (equal identity and seeds): how far their "
                  "main scores lie apart, |A − B| in score points.", "",
                  pc.table(rows, [("benchmark", "benchmark", "s"), ("task", "task", "s"),
                                  ("cells", "cells", "d"), ("identical", "identical", "d"),
                                  ("median_abs", "median", ".2f"), ("p95_abs", "95th pct", ".2f"),
                                  ("max_abs", "max", ".2f")])]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, bool]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds-a", default="0,1,2,3,4")
    parser.add_argument("--seeds-b", default="5,6,7,8,9")
    parser.add_argument("--results-a", type=Path, default=None,
                        help="Results folder of board A (e.g. the results/ of a make run); "
                             "default benchmarks/validity/results/replication-a.")
    parser.add_argument("--results-b", type=Path, default=None,
                        help="Results folder of board B; default "
                             "benchmarks/validity/results/replication-b[-threadsN].")
    parser.add_argument("--threads-b", type=int, default=None,
                        help="Run board B in one process (--jobs 1) with this many torch "
                             "threads (OMP_NUM_THREADS).")
    parser.add_argument("--skip-runs", action="store_true",
                        help="Compare the two folders as they are; run nothing.")
    parser.add_argument("--machine-b", default=None,
                        help="Board B's records come from another machine, named here (e.g. "
                             "'2-core AMD EPYC'); needs --skip-runs and --results-b. With "
                             "--seeds-b equal to --seeds-a the comparison isolates the machine.")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--benchmarks", default="default")
    parser.add_argument("--label-frac", default="0.01")
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    parser.add_argument("--synthetic-size", default="default", choices=["small", "default"])
    parser.add_argument("--jobs", default="auto", help="--jobs of both runs (B: 1 with "
                                                       "--threads-b).")
    parser.add_argument("--pretraining", default=None, choices=["per-seed", "shared"],
                        help="ssl-bench run --pretraining of both runs (default: the "
                             "profile's).")
    parser.add_argument("--n-boot", type=int, default=cv.N_BOOT,
                        help="Bootstrap replicates of the boards' paired statistics.")
    args = parser.parse_args(argv)
    if args.machine_b and not (args.skip_runs and args.results_b):
        parser.error("--machine-b compares a board made elsewhere: give it --results-b and "
                     "--skip-runs")
    defaults = vars(parser.parse_args([]))
    # seeds B: the default, or (with --threads-b) A's seeds, which isolates the thread count
    official = (all(getattr(args, k) == defaults[k] for k in OFFICIAL)
                and (args.seeds_b == defaults["seeds_b"]
                     or ((args.threads_b is not None or bool(args.machine_b))
                         and args.seeds_b == args.seeds_a)))
    return args, official


def output_name(args: argparse.Namespace) -> str:
    """``replication``, ``replication_threads<N>``, ``replication_other_machine`` and either
    with ``_same_seeds`` when B has A's seeds."""
    name = "replication"
    if args.machine_b:
        name += "_other_machine"
        if args.seeds_b == args.seeds_a:
            name += "_same_seeds"
    elif args.threads_b:
        name += f"_threads{args.threads_b}"
        if args.seeds_b == args.seeds_a:
            name += "_same_seeds"
    return name


def main(argv: list[str] | None = None) -> None:
    args, official = parse(argv)
    name = output_name(args)
    results_a = args.results_a or WORK / "replication-a"
    results_b = args.results_b or WORK / name.replace("replication", "replication-b", 1)
    if results_a.resolve() == results_b.resolve():
        raise SystemExit("--results-a and --results-b must be different folders")
    machine = pc.machine()
    start = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    for board, seeds, results, threads in (("a", args.seeds_a, results_a, None),
                                           ("b", args.seeds_b, results_b, args.threads_b)):
        command, env = run_command(args, seeds, results, threads)
        seconds = None if args.skip_runs else run_board(command, env)
        runs[board] = {"seeds": seeds, "results": str(results).replace(f"{REPO}/", ""),
                       "command": shown(command, env), "seconds": seconds,
                       "machine": args.machine_b if board == "b" and args.machine_b
                       else "this machine"}
    records = {board: board_records(results, runs[board]["seeds"], args.label_frac)
               for board, results in (("a", results_a), ("b", results_b))}
    for board, recs in records.items():
        runs[board].update({"records": len(recs), "seeds_found": sorted({r.seed for r in recs}),
                            "threads": cv.board_threads(recs)})
    result: dict[str, Any] = {
        "target": (f"on every benchmark and baseline >= {cv.AGREEMENT_TARGET:.0%} of the calls "
                   "agree and no sign flips; imagenet significantly above random-init on every "
                   f"benchmark in both boards; >= {cv.MIN_DECIDED_SSL_ROWS} SSL rows significant "
                   "vs random-init (same direction, same benchmark) in both boards"),
        **compare(records["a"], records["b"], args.n_boot),
        "runs": runs, "skip_runs": args.skip_runs, "machine": machine,
        "loadavg_end": round(os.getloadavg()[0], 2),
        "seconds": time.perf_counter() - start,
        "command": shlex.join(["python", "benchmarks/validity/replication.py",
                             *(argv if argv is not None else sys.argv[1:])]),
    }
    out = (HERE / f"{name}.json" if official
           else WORK / f"{name.replace('replication', 'replication_custom', 1)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    from ssl_bench import atomic

    atomic.write_json(out, result)
    if official:
        seeds_text = "the same seeds" if args.seeds_b == args.seeds_a else "disjoint seeds"
        if args.machine_b:
            title = f"Replication: board B on another machine, {seeds_text}"
        elif args.threads_b:
            title = f"Replication: board B on {args.threads_b} torch thread(s), {seeds_text}"
        else:
            title = "Replication: disjoint seeds"
        pc.replace_section(name, readme_section(result), title, readme=HERE / "README.md")
    verdict = result["verdict"]
    print(json.dumps({"passes": verdict["passes"], "reasons": verdict["reasons"],
                      "agreement": {f"{a['baseline']}|{a['benchmark']}|{a['column']}":
                                    f"{a['agree']}/{a['calls']}" for a in result["agreements"]}},
                     indent=1))
    print(f"written: {out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
