"""What a leaderboard claims, as plain data, and the checks of ``replication.py`` and
``sanity.py`` built on it.

A **significance call** is one row's verdict against the baseline row in one column of a
benchmark's table: ``better``, ``no difference`` or ``worse``, from the table's ``significant``
flag (paired hierarchical bootstrap, Holm-adjusted) and the sign of its Δ, read in the
metric's direction (for a lower-is-better score a negative Δ is better).

Two boards **agree** on a call when both say the same of the same row; a **sign flip** is a
row called better in one board and worse in the other. Kendall's τ compares the two orders of
the rows by mean score (``scipy.stats.kendalltau``, tau-b, with its p-value).

The **replication target**: on every benchmark at least 90 % of the calls agree and no call
flips sign, and both boards still decide things: ``imagenet`` is significantly above
``random-init`` on every benchmark, and at least three SSL rows (``method_kind`` ``pretrain``,
other than the controls in :data:`CONTROL_IDS`) are significant against ``random-init``, in the
same direction, on the same benchmark in both boards.

The **sanity orderings** (:func:`baseline_orderings`, :func:`labels_only_orderings`) are
claims a working board must make: a collapsed encoder below random init, ImageNet above it,
fine-tuning not below a frozen random encoder, a semi-supervised network not below its
labels-only twin. Each comes back as an :class:`Ordering` with its figures and why it holds.

Every function here takes records or tables and returns plain values, so the tests can feed
them hand-made boards; only :func:`load_records` reads files.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ssl_bench.board import N_BOOT, BoardTable, Comparison, LabelColumn, build_tables, column_of
from ssl_bench.records import CellRecord, iter_records

BASELINE = "random-init"
#: the second family of calls, compared when both boards have the row
BN_ADAPT = "bn-adapt"
IMAGENET = "imagenet"
SUPERVISED = "supervised"
#: rows that are controls, not SSL methods (named, since their kind is also "pretrain")
CONTROL_IDS = frozenset({"random-init", "imagenet", "bn-adapt", "bn-adapt-random", "supervised"})
#: the broken control of benchmarks/validity (ssl_bench.testing.collapsed(SimCLR))
COLLAPSED = "simclr-collapsed"
BETTER, SAME, WORSE = "better", "no difference", "worse"
#: the share of a benchmark's calls that must agree between two boards
AGREEMENT_TARGET = 0.9
#: SSL rows that must be significant against random-init in both boards
MIN_DECIDED_SSL_ROWS = 3
#: the labels-only network of a semi-supervised method, by method id (details.extra_predictors)
LABELS_ONLY_NETWORK = {"mms": "network-2"}
ALPHA = 0.05


def finite(value: float | None, digits: int = 6) -> float | None:
    """``value`` rounded, or None when it is missing or not finite (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


# ---- records and tables --------------------------------------------------------------------


def load_records(results: Path) -> list[CellRecord]:
    """The valid records of a results folder (bad files are reported on stderr and skipped)."""
    records, warnings = iter_records(results)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    if not records:
        raise SystemExit(f"no records under {Path(results) / 'records'}: run `ssl-bench run "
                         f"--results {results}` first")
    return records


def main_tables(records: Sequence[CellRecord], baseline: str = BASELINE,
                n_boot: int = N_BOOT) -> dict[str, BoardTable]:
    """Each benchmark's main table (the first one not split off; else its first table) with
    paired statistics against ``baseline``."""
    out: dict[str, BoardTable] = {}
    for table in build_tables(list(records), baseline=baseline, n_boot=n_boot):
        current = out.get(table.benchmark)
        if current is None or (current.split and not table.split):
            out[table.benchmark] = table
    return out


def has_row(records: Sequence[CellRecord], method: str) -> bool:
    return any(r.method.id == method and r.status == "ok" for r in records)


def method_kinds(records: Sequence[CellRecord]) -> dict[str, str]:
    """method id -> its ``method_kind`` (``pretrain`` or ``semi-supervised``)."""
    return {r.method.id: r.method_kind for r in records}


def ssl_rows(kinds: Mapping[str, str]) -> list[str]:
    """The pretraining methods that are not controls: the rows a board is about."""
    return sorted(m for m, kind in kinds.items()
                  if kind == "pretrain" and m not in CONTROL_IDS and m != COLLAPSED)


def comparison(table: BoardTable, method: str, column: LabelColumn) -> Comparison | None:
    """The row's comparison with the table's (first) baseline in ``column``, if computed."""
    return table.comparisons.get((method, column))


def board_threads(records: Sequence[CellRecord]) -> list[int]:
    """The torch thread counts that computed the records (from their environment)."""
    return sorted({r.environment.threads for r in records if r.environment is not None})


def checkpoints(records: Sequence[CellRecord]) -> dict[tuple[str, str], set[str]]:
    """(benchmark, method) -> the pretraining checkpoint ids its records read (one per
    pretraining run; rows without a checkpoint are left out)."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        if r.identity is not None and r.status == "ok" and r.identity.method.checkpoint:
            out[(r.benchmark, r.method.id)].add(r.identity.method.checkpoint)
    return dict(out)


# ---- significance calls --------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One row's verdict against the baseline in one column of one benchmark."""

    benchmark: str
    column: str
    method: str
    baseline: str
    verdict: str
    delta: float
    ci_low: float
    ci_high: float
    p_holm: float
    mean: float


def verdict_of(delta: float, significant: bool, higher_is_better: bool) -> str:
    """better / no difference / worse, in the metric's direction."""
    if not significant or delta == 0.0 or not math.isfinite(delta):
        return SAME
    return BETTER if (delta > 0) == higher_is_better else WORSE


def board_calls(tables: Mapping[str, BoardTable]) -> dict[tuple[str, str, str], Call]:
    """(benchmark, column header, method) -> the call of every compared non-baseline row."""
    calls: dict[tuple[str, str, str], Call] = {}
    for bench, table in sorted(tables.items()):
        for column in table.columns:
            for method in table.methods:
                comp = comparison(table, method, column)
                if comp is None or method == table.baseline:
                    continue
                calls[(bench, column.header, method)] = Call(
                    benchmark=bench, column=column.header, method=method,
                    baseline=comp.baseline,
                    verdict=verdict_of(comp.delta, comp.significant, table.higher_is_better),
                    delta=comp.delta, ci_low=comp.ci_low, ci_high=comp.ci_high,
                    p_holm=comp.p_holm, mean=table.cells[(method, column)].mean)
    return calls


def row_means(table: BoardTable, column: LabelColumn) -> dict[str, float]:
    """method -> mean score in ``column``, for the rows with at least one score."""
    return {m: table.cells[(m, column)].mean for m in table.methods
            if (m, column) in table.cells and table.cells[(m, column)].n}


def kendall(a: Mapping[str, float], b: Mapping[str, float]
            ) -> tuple[float | None, float | None, int]:
    """Kendall's tau-b (and its p-value) between two boards' scores of their common rows;
    None when fewer than two rows are common or the statistic is undefined."""
    from scipy.stats import kendalltau

    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None, None, len(common)
    result = kendalltau([a[m] for m in common], [b[m] for m in common])
    return finite(float(result.statistic)), finite(float(result.pvalue)), len(common)


# ---- two boards ----------------------------------------------------------------------------


@dataclass
class Agreement:
    """How two boards' calls against one baseline compare in one column of one benchmark."""

    benchmark: str
    column: str
    baseline: str
    calls: int
    agree: int
    sign_flips: list[str]
    disagreements: list[dict[str, Any]]
    kendall_tau: float | None
    kendall_p: float | None
    ranked_rows: int
    #: rows with a call in only one of the boards (not counted)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float | None:
        return self.agree / self.calls if self.calls else None

    @property
    def enough_agree(self) -> bool:
        """At least :data:`AGREEMENT_TARGET` of the calls agree (and there is a call)."""
        return self.calls > 0 and round(self.agree / self.calls, 9) >= AGREEMENT_TARGET

    @property
    def meets_target(self) -> bool:
        return self.enough_agree and not self.sign_flips

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["agreement"] = finite(self.fraction, 4)
        out["meets_target"] = self.meets_target
        return out


def _call_json(call: Call) -> dict[str, Any]:
    return {"call": call.verdict, "delta": finite(call.delta), "ci_low": finite(call.ci_low),
            "ci_high": finite(call.ci_high), "p_holm": finite(call.p_holm),
            "mean": finite(call.mean)}


def _scored(table: BoardTable, method: str, column: LabelColumn) -> bool:
    stat = table.cells.get((method, column))
    return stat is not None and stat.n > 0


def compare_boards(tables_a: Mapping[str, BoardTable], tables_b: Mapping[str, BoardTable],
                   baseline: str) -> list[Agreement]:
    """One :class:`Agreement` per (benchmark, column) that both boards have; a column where
    neither board has a ``baseline`` row is left out (that baseline does not apply there)."""
    calls_a, calls_b = board_calls(tables_a), board_calls(tables_b)
    out = []
    for bench in sorted(set(tables_a) & set(tables_b)):
        ta, tb = tables_a[bench], tables_b[bench]
        columns_b = {c.header: c for c in tb.columns}
        for column in ta.columns:
            if column.header not in columns_b:
                continue
            if not (_scored(ta, baseline, column)
                    or _scored(tb, baseline, columns_b[column.header])):
                continue
            keys_a = {k[2] for k in calls_a if k[:2] == (bench, column.header)}
            keys_b = {k[2] for k in calls_b if k[:2] == (bench, column.header)}
            agree, flips, disagreements = 0, [], []
            for method in sorted(keys_a & keys_b):
                ca, cb = calls_a[(bench, column.header, method)], calls_b[(bench, column.header,
                                                                           method)]
                if ca.verdict == cb.verdict:
                    agree += 1
                    continue
                if {ca.verdict, cb.verdict} == {BETTER, WORSE}:
                    flips.append(method)
                disagreements.append({"method": method, "a": _call_json(ca),
                                      "b": _call_json(cb)})
            tau, p, n = kendall(row_means(ta, column), row_means(tb, columns_b[column.header]))
            out.append(Agreement(benchmark=bench, column=column.header, baseline=baseline,
                                 calls=len(keys_a & keys_b), agree=agree, sign_flips=flips,
                                 disagreements=disagreements, kendall_tau=tau, kendall_p=p,
                                 ranked_rows=n, only_a=sorted(keys_a - keys_b),
                                 only_b=sorted(keys_b - keys_a)))
    return out


def imagenet_calls(tables: Mapping[str, BoardTable]) -> dict[str, str | None]:
    """benchmark -> the call of ``imagenet`` against ``random-init`` in its first column (None
    when the table has no such comparison)."""
    out: dict[str, str | None] = {}
    calls = board_calls(tables)
    for bench, table in sorted(tables.items()):
        call = calls.get((bench, table.columns[0].header, IMAGENET)) if table.columns else None
        out[bench] = call.verdict if call is not None else None
    return out


def decided_ssl_rows(tables_a: Mapping[str, BoardTable], tables_b: Mapping[str, BoardTable],
                     kinds: Mapping[str, str]) -> dict[str, list[str]]:
    """SSL row -> the benchmarks (with columns) where both boards call it significant against
    ``random-init`` in the same direction; rows with none are left out."""
    calls_a, calls_b = board_calls(tables_a), board_calls(tables_b)
    wanted = set(ssl_rows(kinds))
    out: dict[str, list[str]] = defaultdict(list)
    for key, ca in sorted(calls_a.items()):
        cb = calls_b.get(key)
        if (ca.method in wanted and cb is not None and ca.verdict != SAME
                and ca.verdict == cb.verdict):
            out[ca.method].append(f"{ca.benchmark} {ca.column} ({ca.verdict})")
    return dict(out)


def replication_verdict(agreements: Sequence[Agreement],
                        tables_a: Mapping[str, BoardTable], tables_b: Mapping[str, BoardTable],
                        kinds: Mapping[str, str]) -> dict[str, Any]:
    """The target as one verdict: ``passes`` and one line per clause that fails.

    ``agreements`` are those of every baseline compared; ``tables_a`` / ``tables_b`` are the
    boards against ``random-init``."""
    replication: list[str] = []
    missing = sorted(set(tables_a) ^ set(tables_b))
    if missing:
        replication.append(f"benchmarks in only one board: {', '.join(missing)}")
    if not agreements:
        replication.append("no benchmark is common to both boards")
    for ag in agreements:
        where = f"{ag.benchmark} {ag.column} vs {ag.baseline}"
        if ag.calls == 0:
            replication.append(f"{where}: no call in both boards")
        elif not ag.enough_agree:
            replication.append(f"{where}: {ag.agree}/{ag.calls} calls agree "
                               f"(< {AGREEMENT_TARGET:.0%})")
        if ag.sign_flips:
            replication.append(f"{where}: sign flips {', '.join(ag.sign_flips)}")
    decision: list[str] = []
    imagenet = {"a": imagenet_calls(tables_a), "b": imagenet_calls(tables_b)}
    for board, calls in imagenet.items():
        for bench, call in calls.items():
            if call != BETTER:
                decision.append(f"board {board}: imagenet is not significantly above "
                                f"random-init on {bench} ({call or 'not compared'})")
    decided = decided_ssl_rows(tables_a, tables_b, kinds)
    if len(decided) < MIN_DECIDED_SSL_ROWS:
        decision.append(f"{len(decided)} SSL rows significant vs random-init in both boards "
                        f"(need {MIN_DECIDED_SSL_ROWS}): {', '.join(sorted(decided)) or 'none'}")
    return {"passes": not replication and not decision, "replicates": not replication,
            "decides": not decision, "imagenet_vs_random_init": imagenet,
            "ssl_rows_decided": decided, "reasons": replication + decision}


# ---- sanity orderings ----------------------------------------------------------------------


@dataclass
class Ordering:
    """One ordering a working board must show, checked on one benchmark (and column)."""

    name: str
    benchmark: str
    holds: bool
    figures: dict[str, Any]
    why: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


#: what an ordering against the baseline requires of the row's call
WANTS = {"significantly below": (WORSE,), "significantly above": (BETTER,),
         "not significantly below": (BETTER, SAME)}


def baseline_orderings(tables: Mapping[str, BoardTable], method: str, want: str, name: str,
                       only_where_present: bool = False) -> list[Ordering]:
    """``method`` against each table's baseline on every benchmark: holds when its call is one
    of :data:`WANTS` [``want``]. A benchmark without the row (or without its comparison) does
    not hold, unless ``only_where_present`` and the row has no score there (it does not
    apply)."""
    out = []
    for bench, table in sorted(tables.items()):
        for column in table.columns:
            stat = table.cells.get((method, column))
            label = bench if len(table.columns) == 1 else f"{bench} {column.header}"
            if only_where_present and (stat is None or stat.n == 0):
                continue
            comp = comparison(table, method, column)
            if comp is None:
                why = (f"no {method} row" if stat is None else
                       f"{method} has no scores ({stat.status})" if stat.n == 0 else
                       f"{method} not compared with {table.baseline}: "
                       f"{table.stats_notes.get(column, 'no comparison in the table')}")
                out.append(Ordering(name, label, False, {"baseline": table.baseline}, why))
                continue
            verdict = verdict_of(comp.delta, comp.significant, table.higher_is_better)
            holds = verdict in WANTS[want]
            figures = {"baseline": comp.baseline, "metric": table.main_score,
                       "mean": finite(stat.mean if stat else None),
                       "baseline_mean": finite(table.cells[(comp.baseline, column)].mean),
                       "delta": finite(comp.delta), "ci_low": finite(comp.ci_low),
                       "ci_high": finite(comp.ci_high), "p_holm": finite(comp.p_holm),
                       "significant": comp.significant, "call": verdict, "n_seeds": stat.n
                       if stat else 0}
            why = (f"{method} vs {comp.baseline}: {verdict} (Δ {comp.delta:+.2f} "
                   f"[{comp.ci_low:+.2f}, {comp.ci_high:+.2f}], p Holm {comp.p_holm:.3f}); "
                   f"wanted {want}")
            out.append(Ordering(name, label, holds, figures, why))
    return out


def _labels_only_score(record: CellRecord, network: str) -> tuple[float | None, str]:
    """The labels-only network's score in ``record`` and the split it is from: its test score
    under the row's main metric when the record carries it, else its val score."""
    extra = record.details.get("extra_predictors", {}) if isinstance(record.details, dict) else {}
    entry = extra.get(network) if isinstance(extra, dict) else None
    if not isinstance(entry, dict):
        return None, ""
    test = entry.get("test")
    if isinstance(test, dict) and test.get(record.task.main_score) is not None:
        return float(test[record.task.main_score]), "test"
    if entry.get("val_score") is not None:
        return float(entry["val_score"]), "val"
    return None, ""


def labels_only_orderings(records: Sequence[CellRecord]) -> list[Ordering]:
    """Each semi-supervised row against its own labels-only network, per benchmark and label
    column, paired by seed.

    The record scores both networks on the same test units but carries per-unit parts for the
    row's network only, so the comparison is over seeds: mean Δ (row minus labels-only, in the
    metric's direction), a Student-t 95% CI and a one-sample t-test p-value (two-sided) of the
    per-seed Δ. Holds unless the row is significantly below (p < 0.05, Δ < 0). Where the record
    has no test score of the labels-only network the val scores are compared instead, and the
    figures say ``split: val``."""
    groups: dict[tuple[str, str, LabelColumn], list[CellRecord]] = defaultdict(list)
    for r in records:
        if r.method_kind == "semi-supervised" and r.status == "ok" and r.main_score is not None:
            groups[(r.benchmark, r.method.id, column_of(r))].append(r)
    out = []
    for (bench, method, column), recs in sorted(groups.items()):
        network = LABELS_ONLY_NETWORK.get(method)
        if network is None:
            names = {n for r in recs for n in (r.details.get("extra_predictors") or {})}
            network = next(iter(names)) if len(names) == 1 else None
        name = f"{method} not below its labels-only network"
        columns = {column_of(r) for r in records if r.benchmark == bench}
        label = bench if len(columns) == 1 else f"{bench} {column.header}"
        if network is None:
            out.append(Ordering(name, label, False, {}, f"the {method} records name no "
                                "labels-only network (details.extra_predictors)"))
            continue
        hib = recs[0].task.higher_is_better.get(recs[0].task.main_score, True)
        rows, splits = [], set()
        for r in sorted(recs, key=lambda r: r.seed):
            other, split = _labels_only_score(r, network)
            if other is None:
                continue
            splits.add(split)
            row_val = (r.details.get("best_val_score") if split == "val" else r.main_score)
            if row_val is None:
                continue
            rows.append((r.seed, float(row_val), other))
        if not rows or len(splits) != 1:
            why = (f"the {method} records carry no score of {network}" if not rows else
                   f"the {method} records mix test and val scores of {network}")
            out.append(Ordering(name, label, False, {"network": network}, why))
            continue
        (split,) = splits
        out.append(_paired_by_seed(name, label, method, network, split, rows, hib, recs))
    return out


def _paired_by_seed(name: str, label: str, method: str, network: str, split: str,
                    rows: list[tuple[int, float, float]], hib: bool,
                    recs: Sequence[CellRecord]) -> Ordering:
    import numpy as np
    from scipy import stats

    sign = 1.0 if hib else -1.0
    diffs = np.array([sign * (a - b) for _, a, b in rows])
    mean = float(diffs.mean())
    n = len(diffs)
    low = high = p = None
    if n >= 2:
        sd = float(diffs.std(ddof=1))
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        p = 1.0 if sd == 0.0 and mean == 0.0 else (
            0.0 if sd == 0.0 else float(stats.ttest_1samp(diffs, 0.0).pvalue))
    below = p is not None and p < ALPHA and mean < 0
    val_row = [r.details.get("best_val_score") for r in recs]
    val_other = [((r.details.get("extra_predictors") or {}).get(network) or {}).get("val_score")
                 for r in recs]
    figures = {
        "network": network, "split": split, "metric": recs[0].task.main_score,
        "seeds": [s for s, _, _ in rows], "row": [finite(a) for _, a, _ in rows],
        "labels_only": [finite(b) for _, _, b in rows],
        "delta": finite(mean), "ci_low": finite(low), "ci_high": finite(high),
        "p_seed_t_test": finite(p), "n_seeds": n,
        "val_row_mean": finite(_mean(val_row)), "val_labels_only_mean": finite(_mean(val_other)),
    }
    shown = "test" if split == "test" else "val (the record has no test score of it)"
    interval = (f" [{low:+.2f}, {high:+.2f}], p (t over {n} seeds) {p:.3f}"
                if low is not None and high is not None and p is not None else
                " (one seed: no interval)")
    why = (f"{method} (row) minus {network} (labels only), {shown} scores paired by seed: "
           f"Δ {mean:+.2f}{interval}; "
           + ("significantly below" if below else
              "not significantly below" + (" (numerically below)" if mean < 0 else "")))
    return Ordering(name, label, not below, figures, why)


def _mean(values: Sequence[Any]) -> float | None:
    got = [float(v) for v in values if v is not None]
    return sum(got) / len(got) if got else None


__all__ = ["AGREEMENT_TARGET", "Agreement", "BASELINE", "BN_ADAPT", "BETTER", "CONTROL_IDS",
           "COLLAPSED", "Call", "Ordering", "SAME", "WORSE", "baseline_orderings", "board_calls",
           "compare_boards", "decided_ssl_rows", "has_row", "kendall", "labels_only_orderings",
           "load_records", "main_tables", "method_kinds", "replication_verdict", "ssl_rows",
           "verdict_of"]
