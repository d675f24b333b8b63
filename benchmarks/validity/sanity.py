"""Does a results folder's board make the claims a working benchmark must make? Four sanity
orderings, each checked on every benchmark of the board (default ``results/``, the folder of
``make run``), with the board's own paired statistics (Δ vs ``random-init`` with its 95% CI and
Holm-adjusted p from the hierarchical bootstrap):

1. **The collapsed control is significantly below random-init** (phase recognition too).
   ``simclr-collapsed`` (:func:`ssl_bench.testing.collapsed` of SimCLR, registered as
   ``validity.py`` does) is not part of the default run: the folder's records are copied into
   a work folder, the control is run there with the records' seeds, profile and label
   fractions, and pretraining seeds when the records say them (resume computes only the
   control's cells), and that board is read. The results folder itself is never written.
2. **imagenet is significantly above random-init.**
3. **supervised fine-tuning is not significantly below random-init** (a frozen random
   encoder), on every benchmark where the ``supervised`` row has scores.
4. **Each semi-supervised row is not below its own labels-only network** (``mms``: network 1,
   trained with the unlabelled terms, against network 2, trained on its labelled half only).
   The record scores network 2 on the same test units (``details.extra_predictors``) but keeps
   no per-unit parts of it, so this one is paired by seed: mean Δ with a Student-t CI and a
   t-test over seeds; it fails only when the row is significantly below. Records without
   network 2's test score are compared on val scores, labelled so.

Orderings 2-4 are read from the results folder's board as it is (the control would add one
hypothesis to every Holm family); ordering 1 from the work folder's board.

    .venv/bin/python benchmarks/validity/sanity.py [--results results]
        [--work benchmarks/validity/results/sanity-board] [--skip-run] [--no-fail]

Output: ``sanity.json`` next to this script, each ordering as ``{name, benchmark, holds,
figures, why}``, and the generated section of ``README.md`` (for another ``--results`` folder
or bootstrap size: ``results/sanity_custom.json`` only). The exit status is 1 when an ordering
does not hold (``--no-fail``: 0).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "perf"))
sys.path.insert(0, str(HERE))
import calls as cv  # noqa: E402
import perf_common as pc  # noqa: E402

REPO = HERE.parents[1]
WORK = HERE / "results"


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it (the JSON is committed)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def run_settings(records: Sequence[Any]) -> dict[str, Any]:
    """The seeds, profile, label settings, benchmarks and pretraining seeds of a board's run, read
    from its ``random-init`` records (the row every comparison needs)."""
    base = [r for r in records if r.method.id == cv.BASELINE and r.status == "ok"] or list(records)
    profiles = sorted({r.profile for r in base})
    if len(profiles) != 1:
        raise SystemExit(f"the {cv.BASELINE} records were made with profiles "
                         f"{', '.join(profiles)}; sanity checks one board at a time")
    return {
        "seeds": sorted({r.seed for r in base}),
        "profile": profiles[0],
        "label_fracs": sorted({r.label_frac for r in base if r.label_setting == "frac"}),
        "label_counts": sorted({r.label_count for r in base
                                if r.label_setting == "count" and r.label_count is not None}),
        "benchmarks": sorted({r.benchmark for r in records}),
        "synthetic": any(r.synthetic for r in base),
        "pretraining": pretraining_mode(records),
    }


def pretraining_mode(records: Sequence[Any]) -> str | None:
    """``per-seed`` when every pretrained row's seed s read the pretraining run of seed s,
    ``shared`` when all seeds read one run; None when the records do not say (older records)
    or mix both."""
    pairs = {(r.seed, getattr(r.identity.method, "pretrain_seed", None)) for r in records
             if r.status == "ok" and r.method_kind == "pretrain" and r.identity is not None}
    if not pairs or any(p is None for _, p in pairs):
        return None
    if all(s == p for s, p in pairs):
        return "per-seed"
    if len({p for _, p in pairs}) == 1 and len({s for s, _ in pairs}) > 1:
        return "shared"
    return None


def prepare_work(results: Path, work: Path) -> None:
    """Copy the folder's records into ``work``; the control's own records (and the work cache)
    stay, so a second run reuses them."""
    records = work / "records"
    if records.exists():
        for method_dir in records.glob("*/*"):
            if method_dir.is_dir() and method_dir.name != cv.COLLAPSED:
                shutil.rmtree(method_dir)
    shutil.copytree(Path(results) / "records", records, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".tmp-*", "*.lock"))


def control_command(settings: dict[str, Any], work: Path, jobs: str,
                    data_root: Path | None, synthetic_size: str | None) -> list[str]:
    args = ["run", "--methods", cv.COLLAPSED, "--benchmarks", ",".join(settings["benchmarks"]),
            "--seeds", ",".join(map(str, settings["seeds"])), "--profile", settings["profile"],
            "--results", str(work), "--jobs", jobs, "--quiet"]
    if settings["label_fracs"]:
        args += ["--label-frac", ",".join(f"{f:g}" for f in settings["label_fracs"])]
    if settings["label_counts"]:
        args += ["--label-count", ",".join(map(str, settings["label_counts"]))]
    if settings["pretraining"]:
        args += ["--pretraining", settings["pretraining"]]
    if data_root is not None:
        args += ["--data-root", str(data_root)]
    if synthetic_size and data_root is None:
        args += ["--synthetic-size", synthetic_size]
    return args


def run_control(args: list[str]) -> float:
    """Run the collapsed control in this process (its plugin registered here and, through the
    plugin set-up, in the workers); its wall seconds."""
    from validity import ControlPlugin

    from ssl_bench import plugins
    from ssl_bench.cli import main as ssl_bench_main

    if plugins.get_plugin_manager().get_plugin("validity-control") is None:
        plugins.register_plugin(ControlPlugin(), "validity-control", "benchmarks/validity")
    print("$ ssl-bench " + " ".join(args), file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        ssl_bench_main(args)
    except SystemExit as exc:
        if exc.code:
            raise SystemExit(f"ssl-bench run of the control failed ({exc.code})") from None
    return time.perf_counter() - start


def check(records: Sequence[Any], control_records: Sequence[Any] | None,
          n_boot: int) -> list[cv.Ordering]:
    """Every ordering; ``control_records`` is the board with the control (None: not run)."""
    tables = cv.main_tables(records, cv.BASELINE, n_boot)
    out: list[cv.Ordering] = []
    name = "collapsed control significantly below random-init"
    if control_records is None:
        out += [cv.Ordering(name, bench, False, {}, "the control was not run (--skip-run "
                            "without a work folder)") for bench in sorted(tables)]
    else:
        found = cv.baseline_orderings(cv.main_tables(control_records, cv.BASELINE, n_boot),
                                      cv.COLLAPSED, "significantly below", name)
        other_data = other_data_benchmarks(control_records)
        for o in found:
            if not o.holds and o.benchmark in other_data:
                o.why += f" ({other_data[o.benchmark]})"
        out += found
    out += cv.baseline_orderings(tables, cv.IMAGENET, "significantly above",
                                 "imagenet significantly above random-init")
    out += cv.baseline_orderings(tables, cv.SUPERVISED, "not significantly below",
                                 "supervised fine-tuning not significantly below random-init "
                                 "(frozen)", only_where_present=True)
    out += cv.labels_only_orderings(records)
    return out


def other_data_benchmarks(records: Sequence[Any]) -> dict[str, str]:
    """benchmark -> a note where the control's records were computed on other data than the
    random-init row's (their rows then form a table of their own)."""
    def prints(method: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in records:
            if r.method.id == method and r.identity is not None:
                out.setdefault(r.benchmark, set()).add(r.identity.dataset.fingerprint)
        return out

    control, base = prints(cv.COLLAPSED), prints(cv.BASELINE)
    return {bench: ("the control ran on other data than the board: pass the board's "
                    "--synthetic-size or --data-root")
            for bench in control if bench in base and control[bench] != base[bench]}


def readme_section(result: dict[str, Any]) -> str:
    m = result["machine"]
    s = result["settings"]
    run = result["control_run"]
    lines = [f"`{result['command']}` took {result['seconds'] / 60:.1f} min; machine: `nproc` "
             f"{m['nproc']}, {m['cpu']}, torch {m['torch']}; 1-min load average "
             f"{m['loadavg_1min']} at the start, {result['loadavg_end']} at the end; "
             f"{m['date']}.", "",
             f"Board: `{result['results']}` ({result['records']} records; seeds "
             f"{', '.join(map(str, s['seeds']))}, profile `{s['profile']}`). The collapsed "
             f"control ran in `{result['work']}`"
             + (f" in {run['seconds'] / 60:.1f} min: `ssl-bench {' '.join(run['args'])}`"
                if run["seconds"] is not None else " earlier (`--skip-run`)") + ".", "",
             f"**{sum(o['holds'] for o in result['orderings'])} of {len(result['orderings'])} "
             f"orderings hold.**", ""]
    rows = []
    for o in result["orderings"]:
        f = o["figures"]
        rows.append({"name": o["name"], "benchmark": o["benchmark"],
                     "holds": "yes" if o["holds"] else "NO", "delta": f.get("delta"),
                     "ci": (f"[{f['ci_low']:+.2f}, {f['ci_high']:+.2f}]"
                            if f.get("ci_low") is not None and f.get("ci_high") is not None
                            else "n/a"),
                     "p": f.get("p_holm", f.get("p_seed_t_test")), "why": o["why"]})
    lines.append(pc.table(rows, [("name", "ordering", "s"), ("benchmark", "benchmark", "s"),
                                 ("holds", "holds", "s"), ("delta", "Δ", "+.2f"),
                                 ("ci", "95% CI", "s"), ("p", "p", ".3f"), ("why", "why", "s")]))
    lines += ["", "p: Holm-adjusted bootstrap p against random-init; for the labels-only "
              "ordering a t-test over seeds (network 2 has no per-unit scores in the record)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "results",
                        help="The board's results folder (read only).")
    parser.add_argument("--work", type=Path, default=WORK / "sanity-board",
                        help="Work folder: a copy of the records plus the collapsed control.")
    parser.add_argument("--skip-run", action="store_true",
                        help="Do not run the control; read the work folder as it is.")
    parser.add_argument("--no-fail", action="store_true",
                        help="Exit 0 even when an ordering does not hold.")
    parser.add_argument("--jobs", default="auto", help="--jobs of the control's run.")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="--data-root of the control's run (boards on real data).")
    parser.add_argument("--synthetic-size", default=None, choices=["small", "default"],
                        help="--synthetic-size of the control's run (default: ssl-bench's, "
                             "that of make run).")
    parser.add_argument("--n-boot", type=int, default=cv.N_BOOT,
                        help="Bootstrap replicates of the boards' paired statistics.")
    args = parser.parse_args(argv)
    official = (args.results.resolve() == (REPO / "results").resolve()
                and args.n_boot == cv.N_BOOT)
    if args.results.resolve() == args.work.resolve():
        raise SystemExit("--work must be another folder than --results")
    machine = pc.machine()
    start = time.perf_counter()
    records = cv.load_records(args.results)
    settings = run_settings(records)
    control_args = control_command(settings, args.work, args.jobs, args.data_root,
                                   args.synthetic_size)
    seconds = None
    if not args.skip_run:
        prepare_work(args.results, args.work)
        seconds = run_control(control_args)
    control_records = (cv.load_records(args.work) if (args.work / "records").exists() else None)
    orderings = check(records, control_records, args.n_boot)
    result: dict[str, Any] = {
        "holds": all(o.holds for o in orderings),
        "orderings": [o.as_json() for o in orderings],
        "results": shown_path(args.results), "work": shown_path(args.work),
        "records": len(records), "settings": settings,
        "control_run": {"args": [shown_path(Path(a)) if a == str(args.work) else a
                                 for a in control_args], "seconds": seconds},
        "machine": machine, "loadavg_end": round(os.getloadavg()[0], 2),
        "seconds": time.perf_counter() - start,
        "command": " ".join(["python benchmarks/validity/sanity.py",
                             *(argv if argv is not None else sys.argv[1:])]),
    }
    out = HERE / "sanity.json" if official else WORK / "sanity_custom.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from ssl_bench import atomic

    atomic.write_json(out, result)
    if official:
        pc.replace_section("sanity", readme_section(result), "Sanity orderings",
                           readme=HERE / "README.md")
    for o in orderings:
        print(f"{'ok  ' if o.holds else 'FAIL'} {o.name} | {o.benchmark}: {o.why}")
    print(f"written: {out}", file=sys.stderr)
    if not result["holds"] and not args.no_fail:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
