"""How often would two boards of k seeds make the same significance calls? The replication
check (`replication.py`) compares one pair of boards; this script estimates, from the records
of several boards pooled (e.g. replication.py's A and B: seeds 0-4 and 5-9), the *expected*
agreement between two independent boards of k seeds, for several k, so that the number of seeds
is chosen from a measurement rather than from one pair of boards.

For every benchmark's main table (per input, its first label column), the per-unit parts of
every (method, seed) are pooled over the inputs; only methods scored on every pooled seed are
kept. For each k, pairs of boards are drawn:

* **disjoint** when 2k <= the pooled seeds: two disjoint sets of k seeds (every balanced split
  when there are at most ``--pairs`` of them, else ``--pairs`` drawn ones);
* **resampled** otherwise: each board draws k seeds with replacement from the pooled ones,
  independently (the pooled seeds stand in for the population of seeds; a seed drawn twice
  counts twice). This is an estimate beyond what was run, and it is optimistic: the pooled
  seeds' spread is all the spread there is.

Each board's calls are made exactly as the leaderboard makes them (``ssl_bench.stats.
paired_bootstrap`` with Holm over the table's rows, then :func:`calls.verdict_of`), against
``random-init`` and, where every board has it, ``bn-adapt``. Per (benchmark, baseline, k) the
output gives the mean share of identical calls, its minimum over the pairs, the share of pairs
reaching the 90 % target, the sign flips and the decided calls per board; per k, the share of
pairs in which *every* family reaches the target with no sign flip (the agreement part of
replication.py's verdict).

    .venv/bin/python benchmarks/validity/seed_budget.py --results A --results B
        [--k 3,5,8,10] [--pairs 40] [--n-boot 2000]

``--results`` takes results folders or bundles (``ssl-bench export``). With the committed
replication inputs (``benchmarks/validity/records-a.tar.gz`` and ``records-b.tar.gz``: seeds 0-4
and 5-9 of the AMD EPYC boards)
and the default options, the figures go to ``seed_budget.json`` next to this script and to the
README's generated section; otherwise to ``results/seed_budget_custom.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "perf"))
sys.path.insert(0, str(HERE))
import calls as cv  # noqa: E402
import perf_common as pc  # noqa: E402

from ssl_bench.stats import paired_bootstrap, table_seed  # noqa: E402
from ssl_bench.unit_scores import UnitParts  # noqa: E402

REPO = HERE.parents[1]
WORK = HERE / "results"
COMMITTED_INPUTS = (HERE / "records-a.tar.gz", HERE / "records-b.tar.gz")
DEFAULT_K = "3,5,8,10"


class Pool:
    """One benchmark's pooled per-unit parts: ``parts[(method, seed)]``."""

    def __init__(self, benchmark: str, higher_is_better: bool, methods: list[str],
                 parts: dict[tuple[str, int], UnitParts]) -> None:
        self.benchmark = benchmark
        self.higher_is_better = higher_is_better
        self.parts = parts
        self.seeds = sorted({s for (_, s) in parts})
        self.methods = [m for m in methods if all((m, s) in parts for s in self.seeds)]


def read_inputs(paths: Sequence[Path], label_frac: float) -> list[list[Any]]:
    """The records of each input (folder or bundle) at the label fraction."""
    from ssl_bench.board_sources import read_source

    out = []
    for path in paths:
        records, warnings, _ = read_source(Path(path))
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        out.append([r for r in records if r.label_setting == "frac"
                    and abs(r.label_frac - label_frac) < 1e-12])
    return out


def pool_inputs(inputs: Sequence[Sequence[Any]]) -> dict[str, Pool]:
    """benchmark -> its :class:`Pool` over the inputs (each input's main table, first column).

    A seed present in two inputs is an error: the pooled seeds must be distinct runs."""
    parts: dict[str, dict[tuple[str, int], UnitParts]] = defaultdict(dict)
    methods: dict[str, list[str]] = {}
    direction: dict[str, bool] = {}
    for records in inputs:
        for bench, table in cv.main_tables(records, cv.BASELINE, n_boot=1).items():
            column = table.columns[0]
            seen = {s for (_, s) in parts[bench]}
            mine = {s for m in table.methods if (m, column) in table.cells
                    for s in table.cells[(m, column)].parts}
            if seen & mine:
                raise SystemExit(f"{bench}: seeds {sorted(seen & mine)} are in two inputs; pass "
                                 "boards with disjoint seeds")
            for m in table.methods:
                stat = table.cells.get((m, column))
                for s, p in (stat.parts.items() if stat is not None else ()):
                    parts[bench][(m, s)] = p
            methods.setdefault(bench, list(table.methods))
            direction[bench] = table.higher_is_better
    return {b: Pool(b, direction[b], methods[b], parts[b]) for b in sorted(parts)}


def board_verdicts(pool: Pool, seeds: Sequence[int], baseline: str, n_boot: int,
                   boot_seed: int) -> dict[str, str]:
    """method -> better / no difference / worse on a board of ``seeds`` (a seed may repeat:
    each draw is relabelled as its own seed)."""
    parts = {(m, i): pool.parts[(m, s)] for i, s in enumerate(seeds) for m in pool.methods}
    result = paired_bootstrap(parts, pool.methods, baseline, pool.higher_is_better,
                              n_boot=n_boot, seed=boot_seed)
    return {m: cv.verdict_of(c.delta, c.significant, pool.higher_is_better)
            for m, c in result.comparisons.items() if m != baseline}


def board_pairs(seeds: Sequence[int], k: int, pairs: int, rng: np.random.Generator
                ) -> tuple[str, list[tuple[list[int], list[int]]]]:
    """How the pairs of boards of ``k`` seeds are drawn, and the pairs."""
    seeds = sorted(seeds)
    if 2 * k <= len(seeds):
        splits = [(list(a), list(b)) for a in itertools.combinations(seeds, k)
                  for b in itertools.combinations([s for s in seeds if s not in a], k)
                  if a < b]  # each unordered pair once
        if len(splits) > pairs:
            picked = rng.choice(len(splits), size=pairs, replace=False)
            splits = [splits[i] for i in sorted(picked)]
        return "disjoint", splits
    return "resampled", [([int(s) for s in rng.choice(seeds, size=k)],
                          [int(s) for s in rng.choice(seeds, size=k)]) for _ in range(pairs)]


def expected_agreement(pools: Mapping[str, Pool], ks: Sequence[int], pairs: int, n_boot: int,
                       seed: int = 0) -> dict[str, Any]:
    """Per k: the families' agreement statistics and the share of pairs passing in full."""
    baselines = [cv.BASELINE] + ([cv.BN_ADAPT] if all(cv.BN_ADAPT in p.methods
                                                       for p in pools.values()) else [])
    common = sorted(set.intersection(*(set(p.seeds) for p in pools.values())))
    out: list[dict[str, Any]] = []
    for k in ks:
        rng = np.random.default_rng([seed, k])
        how, drawn = board_pairs(common, k, pairs, rng)
        passes = np.ones(len(drawn), dtype=bool)
        families = []
        for bench, pool in pools.items():
            for baseline in baselines:
                if baseline not in pool.methods:
                    continue
                shares, flips, decided = [], 0, []
                for i, (a, b) in enumerate(drawn):
                    boot = table_seed(bench, baseline, str(k), str(i))
                    va = board_verdicts(pool, a, baseline, n_boot, boot)
                    vb = board_verdicts(pool, b, baseline, n_boot, boot + 1)
                    share = float(np.mean([va[m] == vb[m] for m in va]))
                    flip = sum({va[m], vb[m]} == {cv.BETTER, cv.WORSE} for m in va)
                    shares.append(share)
                    flips += flip
                    decided += [sum(v != cv.SAME for v in va.values()),
                                sum(v != cv.SAME for v in vb.values())]
                    passes[i] &= round(share, 9) >= cv.AGREEMENT_TARGET and flip == 0
                families.append({
                    "benchmark": bench, "baseline": baseline, "calls": len(pool.methods) - 1,
                    "agreement_mean": round(float(np.mean(shares)), 4),
                    "agreement_min": round(float(np.min(shares)), 4),
                    "pairs_reaching_target": round(float(np.mean(
                        np.round(shares, 9) >= cv.AGREEMENT_TARGET)), 4),
                    "sign_flips": flips, "decided_per_board": round(float(np.mean(decided)), 2)})
        out.append({"k": k, "pairs": len(drawn), "drawn": how,
                    "pairs_passing_every_family": round(float(passes.mean()), 4),
                    "families": families})
    return {"pooled_seeds": common, "baselines": baselines, "by_k": out}


def readme_section(result: dict[str, Any]) -> str:
    """The generated README section: one row per (k, benchmark, baseline)."""
    lines = [
        f"Pooled seeds {', '.join(map(str, result['pooled_seeds']))} "
        f"({', '.join(result['inputs'])}); {result['n_boot']} bootstrap replicates per board; "
        f"{result['machine']['cpu']}, {result['seconds']:.0f} s. Identical calls between two "
        "boards of k seeds (better / no difference / worse against the baseline, as the "
        "leaderboard calls them):", "",
        "| k | drawn | pairs passing every family | benchmark | vs | mean | min | pairs >= 90 % "
        "| flips | decided per board |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["by_k"]:
        for i, f in enumerate(row["families"]):
            head = ([str(row["k"]), f"{row['drawn']} ({row['pairs']} pairs)",
                     f"{row['pairs_passing_every_family']:.0%}"] if i == 0 else ["", "", ""])
            lines.append("| " + " | ".join(head + [
                f["benchmark"], f["baseline"], f"{f['agreement_mean']:.0%}",
                f"{f['agreement_min']:.0%}", f"{f['pairs_reaching_target']:.0%}",
                str(f["sign_flips"]), f"{f['decided_per_board']:.1f}"]) + " |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, bool]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, action="append", default=None,
                        help="A results folder or bundle of one board (repeat; seeds must be "
                             "disjoint). Default: the committed replication inputs.")
    parser.add_argument("--k", default=DEFAULT_K, help="Seeds per board, comma-separated.")
    parser.add_argument("--pairs", type=int, default=40,
                        help="Pairs of boards per k (all balanced splits when fewer).")
    parser.add_argument("--n-boot", type=int, default=2000,
                        help="Bootstrap replicates per board.")
    parser.add_argument("--label-frac", type=float, default=0.01)
    args = parser.parse_args(argv)
    defaults = vars(parser.parse_args([]))
    official = args.results is None and all(getattr(args, k) == defaults[k]
                                            for k in ("k", "pairs", "n_boot", "label_frac"))
    return args, official


def main(argv: list[str] | None = None) -> None:
    args, official = parse(argv)
    inputs = args.results or list(COMMITTED_INPUTS)
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        raise SystemExit(f"no such results: {', '.join(missing)}; pass --results FOLDER_OR_BUNDLE")
    start = time.perf_counter()
    pools = pool_inputs(read_inputs(inputs, args.label_frac))
    if not pools:
        raise SystemExit("no main table in the inputs at this label fraction")
    ks = [int(k) for k in args.k.split(",") if k.strip()]
    rows = max(len(p.methods) for p in pools.values()) - 1
    if 2.0 * rows / (args.n_boot + 1) >= cv.ALPHA:
        raise SystemExit(f"--n-boot {args.n_boot} is too few: the smallest Holm-adjusted "
                         f"bootstrap p over {rows} rows is {2.0 * rows / (args.n_boot + 1):.3f}, "
                         f"not below {cv.ALPHA}; use at least {int(2 * rows / cv.ALPHA) + 1}")
    result = expected_agreement(pools, ks, args.pairs, args.n_boot)
    result.update({
        "inputs": [str(Path(p).resolve()).replace(f"{REPO}/", "") for p in inputs],
        "n_boot": args.n_boot, "machine": pc.machine(),
        "loadavg_end": round(os.getloadavg()[0], 2), "seconds": time.perf_counter() - start,
        "command": " ".join(["python benchmarks/validity/seed_budget.py",
                             *(argv if argv is not None else sys.argv[1:])])})
    out = HERE / "seed_budget.json" if official else WORK / "seed_budget_custom.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from ssl_bench import atomic

    atomic.write_json(out, result)
    if official:
        pc.replace_section("seed_budget", readme_section(result),
                           "Replication: how many seeds", readme=HERE / "README.md")
    print(json.dumps({f"k={r['k']}": r["pairs_passing_every_family"] for r in result["by_k"]}))
    print(f"written: {out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
