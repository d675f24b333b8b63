"""The leaderboard's data: tables built from result records only, with paired statistics.

**Tables.** One table per benchmark and protocol, split further whenever its records differ in
what makes scores incomparable: the profile, the dataset fingerprint (the data on disk) or the
task config hash; within a table each method's rows use one method config (the one of its
latest record; records of an earlier config form a table of their own). Every split table
says why it is separate. Methods are rows, label settings (fractions or unit counts) columns.

**Cells.** The main score's mean ± sample std over seeds, the number of seeds and a 95% CI of
the mean (Student t with n-1 degrees of freedom). The best mean per column is marked.

**Paired comparison.** Within a (table, label setting) and a seed all methods share the label
subset (checked: a mismatch is an error) and the test units, so each method is compared with a
baseline row (``random-init`` by default) by a paired hierarchical bootstrap over seeds and
test units (:func:`ssl_bench.stats.paired_bootstrap`): the difference with its 95% CI, a
Holm-adjusted p-value across the table's methods, a significance mark at 0.05 and a rank
interval. Rows without per-unit parts (schema-1 records), n/a or failed rows are left out of
the statistics.

**Health.** Each row carries its encoder's pretraining health (:mod:`ssl_bench.engine.health`)
and is flagged when the encoder collapsed.

**Across benchmarks.** The mean rank of the methods present in every benchmark's first table,
with an interval from the bootstraps, a Friedman test and the Nemenyi critical difference.

**Published rows.** The benchmark's reference results (carried by its records) are listed
beside the measured rows, marked as published and never ranked.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssl_bench.errors import SSLBenchError
from ssl_bench.records import CellRecord

DEFAULT_BASELINE = "random-init"
N_BOOT = 10000


@dataclass(frozen=True, order=True)
class LabelColumn:
    """A label setting: ``kind`` "count" (``value`` units) sorts before "frac" (``value``)."""

    kind: str
    value: float

    @property
    def header(self) -> str:
        if self.kind == "count":
            n = int(self.value)
            return f"{n} unit" + ("" if n == 1 else "s")
        return f"{self.value * 100:g}%"

    @property
    def text(self) -> str:
        return f"n{int(self.value)}" if self.kind == "count" else f"{self.value:g}"


def column_of(record: CellRecord) -> LabelColumn:
    if record.label_setting == "count" and record.label_count is not None:
        return LabelColumn("count", float(record.label_count))
    return LabelColumn("frac", float(record.label_frac))


@dataclass
class Stat:
    status: str  # ok | n/a | failed
    scores: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    failed: int = 0
    #: seed -> the per-unit parts of the main score (schema-2 records)
    parts: dict[int, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores)) if self.scores else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if self.n > 1 else 0.0

    @property
    def ci(self) -> tuple[float, float] | None:
        if self.n < 2:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.975, self.n - 1)) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half


@dataclass(frozen=True)
class Comparison:
    """A method's paired difference to the baseline in one column."""

    baseline: str
    delta: float
    ci_low: float
    ci_high: float
    p_holm: float
    significant: bool
    rank_low: float
    rank_high: float

    def as_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "mean": round_finite(self.delta),
                "ci_low": round_finite(self.ci_low), "ci_high": round_finite(self.ci_high),
                "p_holm": round_finite(self.p_holm), "significant": self.significant}


@dataclass(frozen=True)
class Published:
    """A published reference result shown beside the measured rows."""

    method: str
    value: float
    metric: str
    column: LabelColumn | None
    backbone: str
    citation: str
    url: str | None
    note: str


@dataclass
class BoardTable:
    benchmark: str
    task: str
    protocol: str
    main_score: str
    higher_is_better: bool
    dataset: str
    synthetic: bool
    profiles: list[str]
    versions: dict[str, str]
    date: str
    columns: list[LabelColumn]
    methods: list[str]
    cells: dict[tuple[str, LabelColumn], Stat]
    ranks: dict[str, float | None]
    #: why this table is separate from the other tables of its benchmark ("" if it is not)
    split: str = ""
    environments: list[str] = field(default_factory=list)
    baseline: str | None = None
    comparisons: dict[tuple[str, LabelColumn], Comparison] = field(default_factory=dict)
    #: per column, why no statistics could be computed (e.g. no baseline row)
    stats_notes: dict[LabelColumn, str] = field(default_factory=dict)
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    #: per column, the bootstrap of the paired comparison (for the summary across benchmarks)
    bootstraps: dict[LabelColumn, Any] = field(default_factory=dict, repr=False)

    @property
    def fracs(self) -> list[float]:
        """The label fractions of the fraction columns."""
        return [c.value for c in self.columns if c.kind == "frac"]

    @property
    def mixed_environment(self) -> bool:
        return len(self.environments) > 1

    def best(self, column: LabelColumn) -> set[str]:
        """The method(s) with the best mean in a column (ties are all best)."""
        scored = {m: self.cells[(m, column)].mean for m in self.methods
                  if (m, column) in self.cells and self.cells[(m, column)].n}
        if not scored:
            return set()
        top = (max if self.higher_is_better else min)(scored.values())
        return {m for m, v in scored.items() if v == top}

    def collapsed(self, method: str) -> bool:
        return bool(self.health.get(method, {}).get("collapsed"))


@dataclass
class Summary:
    """Mean ranks over benchmarks (first table of each), Friedman test, critical difference."""

    benchmarks: list[str]
    methods: list[str]
    mean_rank: dict[str, float]
    rank_low: dict[str, float]
    rank_high: dict[str, float]
    excluded: dict[str, tuple[str, ...]]
    friedman_statistic: float | None
    friedman_p: float | None
    friedman_note: str
    critical_difference: float | None


def round_finite(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


# ---- building --------------------------------------------------------------------------------


def _partition_key(r: CellRecord) -> tuple[str, ...]:
    ident = r.identity
    fingerprint = ident.dataset.fingerprint if ident else (r.dataset.fingerprint or "")
    task_hash = ident.task.config_hash if ident else ""
    return (r.benchmark, r.protocol, r.profile, fingerprint, task_hash)


def _method_config(r: CellRecord) -> str:
    return r.identity.method.config_hash if r.identity else ""


def _split_note(key: tuple[str, ...], others: list[tuple[str, ...]], earlier: bool) -> str:
    """Why a table differs from the other tables of its benchmark."""
    _bench, protocol, profile, fingerprint, task_hash = key
    why = []
    if len(others) > 1:
        if len({o[1] for o in others}) > 1:
            why.append(f"protocol {protocol}")
        if len({o[2] for o in others}) > 1:
            why.append(f"profile {profile}")
        if len({o[3] for o in others}) > 1:
            why.append(f"data fingerprint {fingerprint or 'unknown'}")
        if len({o[4] for o in others}) > 1:
            why.append(f"task config {task_hash or 'unknown'}")
    if earlier:
        why.append("earlier method configs (rows whose method config differs from its latest "
                    "records)")
    return "; ".join(why)


def build_tables(records: list[CellRecord], benchmarks: list[str] | None = None,
                 baseline: str = DEFAULT_BASELINE, n_boot: int = N_BOOT) -> list[BoardTable]:
    """Tables of the records (of ``benchmarks`` when given), with paired statistics against
    ``baseline``."""
    partitions: dict[tuple[str, ...], list[CellRecord]] = defaultdict(list)
    loose = []  # n/a records and cells that failed before their inputs were known
    for r in records:
        if benchmarks is None or r.benchmark in benchmarks:
            if r.identity is None and r.status != "ok" and r.schema_version >= 2:
                loose.append(r)
            else:
                partitions[_partition_key(r)].append(r)
    for r in loose:  # into the (first) table of their benchmark, protocol and profile
        home = sorted(k for k in partitions if k[:3] == (r.benchmark, r.protocol, r.profile))
        partitions[home[0] if home else _partition_key(r)].append(r)
    by_bench: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for key in partitions:
        by_bench[key[0]].append(key)
    tables = []
    for bench in sorted(by_bench):
        keys = sorted(by_bench[bench])
        for key in keys:
            recs = partitions[key]
            latest: dict[str, CellRecord] = {}
            for r in recs:
                if r.method.id not in latest or r.date > latest[r.method.id].date:
                    latest[r.method.id] = r
            current = [r for r in recs if _method_config(r) == _method_config(latest[r.method.id])]
            earlier = [r for r in recs if _method_config(r) != _method_config(latest[r.method.id])]
            for group, is_earlier in ((current, False), (earlier, True)):
                if group:
                    tables.append(_table(group, _split_note(key, keys, is_earlier), baseline,
                                         n_boot))
    return tables


def _table(recs: list[CellRecord], split: str, baseline: str, n_boot: int) -> BoardTable:
    first = recs[0]
    main = first.task.main_score
    hib = first.task.higher_is_better.get(main, True)
    cells: dict[tuple[str, LabelColumn], Stat] = {}
    subsets: dict[tuple[LabelColumn, int], dict[str, tuple[str, ...]]] = defaultdict(dict)
    health: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    links: dict[str, dict[str, str]] = {}
    from ssl_bench.unit_scores import UnitParts

    for r in sorted(recs, key=lambda r: (r.method.id, column_of(r), r.seed)):
        col = column_of(r)
        stat = cells.setdefault((r.method.id, col), Stat(status="n/a"))
        if r.status == "ok" and r.main_score is not None:
            stat.scores.append(float(r.main_score))
            stat.seeds.append(r.seed)
            stat.status = "ok"
            if r.main_parts is not None:
                stat.parts[r.seed] = UnitParts.from_json(r.main_parts)
            subsets[(col, r.seed)][r.method.id] = tuple(sorted(r.label_units))
            if r.health is not None:
                health[r.method.id] = r.health
            note = r.details.get("row_note") if isinstance(r.details, dict) else None
            if note:
                notes[r.method.id] = str(note)
        elif r.status == "failed":
            stat.failed += 1
            if stat.status != "ok":
                stat.status = "failed"
        method_links = {k: v for k, v in (("paper", r.method.url), ("plugin", r.method.plugin_url))
                        if v}
        if method_links:
            links[r.method.id] = method_links
    _check_shared_subsets(first.benchmark, subsets)
    columns = sorted({column_of(r) for r in recs})
    methods = sorted({r.method.id for r in recs})
    ranks = _mean_ranks(cells, methods, columns, hib)
    methods.sort(key=lambda m: (ranks[m] is None, ranks[m] or 0.0, m))
    versions = {f"{r.method.id}": r.method.version for r in recs}
    versions["ssl-bench"] = ",".join(sorted({r.ssl_bench_version for r in recs}))
    versions[f"task:{first.task.id}"] = first.task.version
    versions[f"dataset:{first.dataset.id}"] = first.dataset.version
    environments = sorted({r.environment.summary() for r in recs if r.environment is not None})
    table = BoardTable(
        benchmark=first.benchmark, task=first.task.id, protocol=first.protocol, main_score=main,
        higher_is_better=hib, dataset=first.dataset.id,
        synthetic=any(r.synthetic for r in recs), profiles=sorted({r.profile for r in recs}),
        versions=versions, date=max(r.date for r in recs), columns=columns, methods=methods,
        cells=cells, ranks=ranks, split=split, environments=environments, health=health,
        notes=notes, links=links, published=_published(recs),
    )
    _compare(table, baseline, n_boot)
    return table


def _check_shared_subsets(benchmark: str,
                          subsets: dict[tuple[LabelColumn, int], dict[str, tuple[str, ...]]]
                          ) -> None:
    """Within a column and seed every method must have been given the same labelled units."""
    for (col, seed), by_method in subsets.items():
        distinct = set(by_method.values())
        if len(distinct) > 1:
            groups = defaultdict(list)
            for m, units in by_method.items():
                groups[units].append(m)
            listing = "; ".join(f"{', '.join(sorted(ms))}: {', '.join(units) or 'none'}"
                                for units, ms in sorted(groups.items(), key=lambda g: g[1]))
            raise SSLBenchError(f"benchmark {benchmark!r}, label {col.header}, seed {seed}: "
                                f"methods were given different label subsets ({listing}); "
                                "their records come from different data or code: rerun them")


def _published(recs: list[CellRecord]) -> list[Published]:
    seen: dict[tuple[Any, ...], Published] = {}
    for r in recs:
        for ref in r.references:
            count, frac = ref.get("label_count"), ref.get("label_frac")
            col = (LabelColumn("count", float(count)) if count is not None else
                   LabelColumn("frac", float(frac)) if frac is not None else None)
            pub = Published(method=str(ref.get("method", "")), value=float(ref["value"]),
                            metric=str(ref.get("metric", "")), column=col,
                            backbone=str(ref.get("backbone", "")),
                            citation=str(ref.get("citation", "")), url=ref.get("url"),
                            note=str(ref.get("note", "")))
            seen[(pub.method, pub.metric, col, pub.value, pub.citation)] = pub
    return sorted(seen.values(), key=lambda p: (p.method, p.column or LabelColumn("", 0.0)))


def _mean_ranks(cells: dict[tuple[str, LabelColumn], Stat], methods: list[str],
                columns: list[LabelColumn], higher_is_better: bool) -> dict[str, float | None]:
    """Mean over columns of each method's rank in the column; tied means share the average
    of the ranks they span (competition ranking would favour name order)."""
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    for col in columns:
        scored = [(cells[(m, col)].mean, m) for m in methods
                  if (m, col) in cells and cells[(m, col)].n]
        sign = -1.0 if higher_is_better else 1.0
        values = sorted(sign * v for v, _ in scored)
        for value, m in scored:
            first = values.index(sign * value)
            last = len(values) - 1 - values[::-1].index(sign * value)
            ranks[m].append((first + last) / 2 + 1.0)
    return {m: (float(np.mean(r)) if r else None) for m, r in ranks.items()}


def _compare(table: BoardTable, baseline: str, n_boot: int) -> None:
    """Fill the table's paired comparisons, column by column."""
    from ssl_bench.stats import paired_bootstrap, table_seed

    table.baseline = baseline
    for col in table.columns:
        base = table.cells.get((baseline, col))
        if base is None or not base.parts:
            table.stats_notes[col] = (f"no statistics: no {baseline} row with per-unit scores "
                                      "(choose another --baseline)")
            continue
        seeds = sorted(base.parts)
        methods = [m for m in table.methods
                   if (m, col) in table.cells and table.cells[(m, col)].status == "ok"
                   and all(s in table.cells[(m, col)].parts for s in seeds)]
        left_out = [m for m in table.methods if m not in methods
                    and (m, col) in table.cells and table.cells[(m, col)].status == "ok"]
        if left_out:
            table.stats_notes[col] = (f"not compared (seeds or per-unit scores missing): "
                                      f"{', '.join(left_out)}")
        parts = {(m, s): table.cells[(m, col)].parts[s] for m in methods for s in seeds}
        result = paired_bootstrap(parts, methods, baseline, table.higher_is_better,
                                  n_boot=n_boot,
                                  seed=table_seed(table.benchmark, table.protocol, col.text,
                                                  table.split))
        table.bootstraps[col] = result
        for m, c in result.comparisons.items():
            table.comparisons[(m, col)] = Comparison(
                baseline=baseline, delta=c.delta, ci_low=c.ci_low, ci_high=c.ci_high,
                p_holm=c.p_holm, significant=c.significant, rank_low=c.rank_low,
                rank_high=c.rank_high)


def summarise(tables: list[BoardTable]) -> Summary | None:
    """Mean ranks over benchmarks from the first table and column of each benchmark that has
    a bootstrap; None with fewer than two such benchmarks."""
    from ssl_bench.stats import critical_difference, friedman, rank_summary

    chosen: dict[str, Any] = {}
    for t in tables:
        if t.benchmark in chosen or t.split:
            continue
        for col in t.columns:
            if col in t.bootstraps:
                chosen[t.benchmark] = t.bootstraps[col]
                break
    if len(chosen) < 2:
        return None
    summary = rank_summary(chosen)
    test = friedman(summary.scores)
    cd = (critical_difference(len(summary.methods), len(summary.benchmarks))
          if len(summary.methods) >= 2 else None)
    return Summary(
        benchmarks=list(summary.benchmarks), methods=sorted(summary.methods,
                                                            key=lambda m: summary.mean_rank[m]),
        mean_rank=summary.mean_rank, rank_low=summary.rank_low, rank_high=summary.rank_high,
        excluded=summary.excluded, friedman_statistic=test.statistic, friedman_p=test.p_value,
        friedman_note=test.reason, critical_difference=cd)


__all__ = ["BoardTable", "Comparison", "DEFAULT_BASELINE", "LabelColumn", "N_BOOT", "Published",
           "Stat", "Summary", "build_tables", "column_of", "round_finite", "summarise"]
