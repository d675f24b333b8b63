"""The leaderboard's data: tables built from result records only, with paired statistics.

**Tables.** One table per benchmark and protocol, split further whenever its records differ in
what makes scores incomparable: the profile, the dataset fingerprint (the data on disk) or the
task config hash; within a table each method's rows use one method config (the one of its
latest record; records of an earlier config form a table of their own). Every split table
says why it is separate. Methods are rows, label settings (fractions or unit counts) columns.

**Same labelled units.** Label settings that selected the same labelled units (equal
``label_units`` on every seed they share; small datasets round 1 %, 5 % and 10 % to the same one
unit) are one column, headed by all of them (``1% = 5% = 10%: 1 unit``), with the records of the
first of them (per method, the first that has one) and its statistics computed once.

**Cells.** The main score's mean ± sample std over seeds, the number of seeds and a 95% CI of
the mean (Student t with n-1 degrees of freedom). The best mean per column is marked.

**Paired comparison.** Within a (table, label setting) and a seed all methods share the label
subset (checked: a mismatch is an error) and the test units, so each method is compared with
each baseline row (``random-init`` and ``bn-adapt`` by default: nothing learned, and exposure
to the domain without an objective) by a paired hierarchical bootstrap over seeds and test
units (:func:`ssl_bench.stats.paired_bootstrap`): per baseline, the difference with its 95% CI,
a p-value Holm-adjusted across the other rows compared with that baseline (each baseline is its
own family), a significance mark at 0.05 and a rank interval. A baseline without a row in a
table is skipped there with one note. Rows without per-unit parts (schema-1 records), n/a or
failed rows are left out of the statistics.

**Shared pretraining.** When two seeds of a row read the same pretraining checkpoint, the
bootstrap cannot resample the pretraining run: the table then carries a caveat that its
differences are about those checkpoints, not the methods.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssl_bench.errors import SSLBenchError
from ssl_bench.records import CellRecord

#: the baseline rows every method is compared with unless others are named: random-init
#: (nothing learned) and bn-adapt (ImageNet weights with BN statistics re-estimated on the
#: pool: domain exposure without an objective); the first is :attr:`BoardTable.baseline`
DEFAULT_BASELINES: tuple[str, ...] = ("random-init", "bn-adapt")
N_BOOT = 10000
#: the caveat of a table whose seeds share a pretraining run
SHARED_PRETRAINING = ("one pretraining run per method: Δ is about these checkpoints, not the "
                      "methods")


@dataclass(frozen=True, order=True)
class LabelColumn:
    """A label setting: ``kind`` "count" (``value`` units) sorts before "frac" (``value``).

    ``same_as`` names the other settings merged into this column because they selected the
    same labelled units, ``n_units`` how many units that is; neither is part of the column's
    identity (equality, hash and order are those of ``kind`` and ``value``)."""

    kind: str
    value: float
    same_as: tuple[LabelColumn, ...] = field(default=(), compare=False)
    n_units: int | None = field(default=None, compare=False)

    @property
    def setting(self) -> str:
        """This setting alone: ``1%`` or ``4 units``."""
        if self.kind == "count":
            n = int(self.value)
            return f"{n} unit" + ("" if n == 1 else "s")
        return f"{self.value * 100:g}%"

    @property
    def header(self) -> str:
        """The column's heading: the setting, or every merged setting and their units
        (``1% = 5% = 10%: 1 unit``)."""
        if not self.same_as:
            return self.setting
        names = " = ".join(c.setting for c in (self, *self.same_as))
        n = self.n_units or 0
        return f"{names}: {n} unit" + ("" if n == 1 else "s")

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
    """A method's paired difference to one baseline in one column.

    ``p_value`` is the raw two-sided bootstrap p-value; ``p_holm`` is Holm-adjusted over the
    family of this baseline and column (the ``family_size`` other rows compared with it; the
    baseline's own row is not in it). ``n_seeds`` and ``n_boot`` are the seeds and replicates
    the bootstrap drew from: they bound the smallest p-value it can give.
    """

    baseline: str
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    significant: bool
    rank_low: float
    rank_high: float
    family_size: int
    n_seeds: int
    n_boot: int

    def as_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "mean": round_finite(self.delta),
                "ci_low": round_finite(self.ci_low), "ci_high": round_finite(self.ci_high),
                "p": round_finite(self.p_value), "p_holm": round_finite(self.p_holm),
                "significant": self.significant, "rank_low": round_finite(self.rank_low),
                "rank_high": round_finite(self.rank_high), "family_size": self.family_size,
                "n_seeds": self.n_seeds, "n_boot": self.n_boot}


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
    #: the baselines asked for, in order (those without a row here are skipped with a note);
    #: the first is :attr:`baseline`
    requested_baselines: tuple[str, ...] = ()
    #: per baseline with statistics in this table (in the requested order), its comparisons
    baseline_comparisons: dict[str, dict[tuple[str, LabelColumn], Comparison]] = field(
        default_factory=dict)
    #: one line naming the requested baselines this table has no statistics against ("" if none)
    baseline_note: str = ""
    #: per column, why some statistics are missing there (rows left out, a baseline absent)
    stats_notes: dict[LabelColumn, str] = field(default_factory=dict)
    #: the rows two of whose seeds read the same pretraining checkpoint
    shared_pretraining: list[str] = field(default_factory=list)
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    #: per column, the bootstrap of the paired comparison (for the summary across benchmarks)
    bootstraps: dict[LabelColumn, Any] = field(default_factory=dict, repr=False)
    #: per row, the sources its records come from and their agreement where cells were in
    #: several (:func:`ssl_bench.board_sources.annotate`); empty for a one-folder board
    sources: dict[str, str] = field(default_factory=dict)
    #: whether the board was merged from several sources (then md, html and latex name them)
    merged: bool = False
    #: the records this table was made from (which sources a merged board's rows name)
    records: list[CellRecord] = field(default_factory=list, repr=False, compare=False)

    @property
    def fracs(self) -> list[float]:
        """The label fractions of the fraction columns."""
        return [c.value for c in self.columns if c.kind == "frac"]

    @property
    def mixed_environment(self) -> bool:
        return len(self.environments) > 1

    @property
    def baselines(self) -> list[str]:
        """The baselines this table has statistics against, in the requested order."""
        return list(self.baseline_comparisons)

    @property
    def baseline(self) -> str | None:
        """The first baseline asked for (None before statistics were requested)."""
        return self.requested_baselines[0] if self.requested_baselines else None

    @property
    def comparisons(self) -> dict[tuple[str, LabelColumn], Comparison]:
        """The comparisons with :attr:`baseline` (empty when it has no row here)."""
        return self.baseline_comparisons.get(self.baseline or "", {})

    def comparison(self, method: str, column: LabelColumn,
                   baseline: str | None = None) -> Comparison | None:
        """``method``'s comparison with ``baseline`` (default: the first) in ``column``."""
        base = baseline if baseline is not None else self.baseline
        return self.baseline_comparisons.get(base or "", {}).get((method, column))

    def rank_comparison(self, method: str, column: LabelColumn) -> Comparison | None:
        """The comparison whose bootstrap gives the row's rank interval in ``column``: that
        of the first baseline that compared it."""
        for comps in self.baseline_comparisons.values():
            if (method, column) in comps:
                return comps[(method, column)]
        return None

    @property
    def caveat(self) -> str:
        """The shared-pretraining line ("" when every row's seeds have their own checkpoint);
        it names the rows when it does not apply to all of them."""
        if not self.shared_pretraining:
            return ""
        if set(self.shared_pretraining) >= set(self.methods):
            return SHARED_PRETRAINING
        return f"{SHARED_PRETRAINING} (rows: {', '.join(self.shared_pretraining)})"

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


def partition_key(r: CellRecord) -> tuple[str, ...]:
    """What records must share to be ranked in one table: benchmark, protocol, profile, data
    fingerprint, task config hash, and the benchmark and task versions."""
    ident = r.identity
    fingerprint = ident.dataset.fingerprint if ident else (r.dataset.fingerprint or "")
    task_hash = ident.task.config_hash if ident else ""
    versions = (f"benchmark {ident.benchmark_version}, task {ident.task.version}" if ident
                else f"task {r.task.version}")
    return (r.benchmark, r.protocol, r.profile, fingerprint, task_hash, versions)



def _method_config(r: CellRecord) -> str:
    return r.identity.method.config_hash if r.identity else ""


def _split_note(key: tuple[str, ...], others: list[tuple[str, ...]], earlier: bool) -> str:
    """Why a table differs from the other tables of its benchmark."""
    _bench, protocol, profile, fingerprint, task_hash, versions = key
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
        if len({o[5] for o in others}) > 1:
            why.append(versions)
    if earlier:
        why.append("earlier method configs (rows whose method config differs from its latest "
                    "records)")
    return "; ".join(why)


def parse_baselines(baseline: str | Sequence[str]) -> tuple[str, ...]:
    """The baseline ids of ``baseline``: one id, comma-separated ids, or a list of ids; each
    once, in order. Raises when none is named."""
    items = baseline.split(",") if isinstance(baseline, str) else list(baseline)
    ids = tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    if not ids:
        raise SSLBenchError(f"--baseline {baseline!r} names no method; pass method ids "
                            f"separated by commas, e.g. {','.join(DEFAULT_BASELINES)}")
    return ids


def build_tables(records: list[CellRecord], benchmarks: list[str] | None = None,
                 baseline: str | Sequence[str] = DEFAULT_BASELINES,
                 n_boot: int = N_BOOT) -> list[BoardTable]:
    """Tables of the records (of ``benchmarks`` when given), with paired statistics against
    each baseline of ``baseline`` (one id, comma-separated ids or a list; see
    :func:`parse_baselines`). A baseline without a row in a table is skipped there with a
    note, never an error."""
    baselines = parse_baselines(baseline)
    partitions: dict[tuple[str, ...], list[CellRecord]] = defaultdict(list)
    loose = []  # n/a records and cells that failed before their inputs were known
    for r in records:
        if benchmarks is None or r.benchmark in benchmarks:
            if r.identity is None and r.status != "ok" and r.schema_version >= 2:
                loose.append(r)
            else:
                partitions[partition_key(r)].append(r)
    for r in loose:  # into the (first) table of their benchmark, protocol and profile
        home = sorted(k for k in partitions if k[:3] == (r.benchmark, r.protocol, r.profile))
        partitions[home[0] if home else partition_key(r)].append(r)
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
                    tables.append(_table(group, _split_note(key, keys, is_earlier),
                                         baselines, n_boot))
    return tables


def _table(recs: list[CellRecord], split: str, baselines: tuple[str, ...],
           n_boot: int) -> BoardTable:
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
    columns = _merge_same_units(cells, subsets, sorted({column_of(r) for r in recs}))
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
        shared_pretraining=_shared_pretraining(recs, methods), records=list(recs),
    )
    _compare(table, baselines, n_boot)
    return table


def checkpoint_of(record: CellRecord) -> str:
    """The pretraining checkpoint a record's cell read ("" if none is recorded)."""
    return record.identity.method.checkpoint if record.identity else record.checkpoint


def _shared_pretraining(recs: list[CellRecord], methods: list[str]) -> list[str]:
    """The rows (in table order) with two scored seeds that read the same non-empty checkpoint:
    their seeds do not vary the pretraining run, so the bootstrap cannot resample it."""
    seeds_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    for r in recs:
        checkpoint = checkpoint_of(r)
        if r.status == "ok" and r.main_score is not None and checkpoint:
            seeds_of[(r.method.id, checkpoint)].add(r.seed)
    shared = {m for (m, _), seeds in seeds_of.items() if len(seeds) >= 2}
    return [m for m in methods if m in shared]


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


def same_units_groups(subsets: dict[tuple[LabelColumn, int], dict[str, tuple[str, ...]]],
                      columns: list[LabelColumn]) -> list[list[LabelColumn]]:
    """``columns`` grouped by the labelled units they selected, in order: two columns are in
    one group when they share a seed with scored records and every shared seed gave both the
    same non-empty units (the subsets are a prefix of one ordering per seed, so equal sizes
    mean equal units on every seed)."""
    units: dict[LabelColumn, dict[int, tuple[str, ...]]] = defaultdict(dict)
    for (col, seed), by_method in subsets.items():
        units[col][seed] = next(iter(by_method.values()))
    groups: list[list[LabelColumn]] = []
    for col in columns:
        for group in groups:
            head, mine = units.get(group[0], {}), units.get(col, {})
            shared = set(head) & set(mine)
            if shared and all(head[s] and head[s] == mine[s] for s in shared):
                group.append(col)
                break
        else:
            groups.append([col])
    return groups


def _merge_same_units(cells: dict[tuple[str, LabelColumn], Stat],
                      subsets: dict[tuple[LabelColumn, int], dict[str, tuple[str, ...]]],
                      columns: list[LabelColumn]) -> list[LabelColumn]:
    """Merge the columns that selected the same labelled units into their first one: ``cells``
    keeps, per method, the cell of the first member that has a score (else of the first that
    has any cell) under the first member, and loses the others. Returns the table's columns,
    a merged one naming its members (:attr:`LabelColumn.same_as`)."""
    out = []
    for group in same_units_groups(subsets, columns):
        head = group[0]
        if len(group) == 1:
            out.append(head)
            continue
        methods = sorted({m for (m, c) in cells if c in group})
        for m in methods:
            member = [cells[(m, c)] for c in group if (m, c) in cells]
            chosen = next((st for st in member if st.n), member[0])
            for c in group:
                cells.pop((m, c), None)
            cells[(m, head)] = chosen
        n_units = len(next(u for (c, _), by in subsets.items() if c == head
                           for u in by.values()))
        out.append(LabelColumn(head.kind, head.value, same_as=tuple(group[1:]),
                               n_units=n_units))
    return out


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


def _compare(table: BoardTable, baselines: tuple[str, ...], n_boot: int) -> None:
    """Fill the table's paired comparisons, baseline by baseline and column by column, and
    the notes on what could not be compared."""
    table.requested_baselines = baselines
    column_notes: dict[LabelColumn, list[str]] = defaultdict(list)
    for baseline in baselines:
        comparisons: dict[tuple[str, LabelColumn], Comparison] = {}
        left_out_by_column: dict[LabelColumn, list[str]] = {}
        absent_columns = []
        for col in table.columns:
            result = _compare_column(table, baseline, col, n_boot)
            if result is None:
                absent_columns.append(col)
                continue
            comps, left_out = result
            comparisons.update(comps)
            if left_out:
                left_out_by_column[col] = left_out
        if not comparisons:
            continue  # absent from the whole table: named once in the table's note
        table.baseline_comparisons[baseline] = comparisons
        for col in absent_columns:
            column_notes[col].append(f"no Δ vs {baseline}: no {baseline} row with per-unit "
                                     "scores in this column")
        for col, left_out in left_out_by_column.items():
            column_notes[col].append(f"not compared with {baseline} (seeds or per-unit scores "
                                     f"missing): {', '.join(left_out)}")
    table.stats_notes = {col: "; ".join(notes) for col, notes in sorted(column_notes.items())}
    table.baseline_note = _baseline_note(baselines, table.baselines)


def _compare_column(table: BoardTable, baseline: str, col: LabelColumn, n_boot: int
                    ) -> tuple[dict[tuple[str, LabelColumn], Comparison], list[str]] | None:
    """The comparisons with ``baseline`` in one column and the scored rows left out (seeds or
    per-unit scores missing); None without a baseline row with per-unit scores there. The
    first baseline's bootstrap of each column is kept for the summary across benchmarks."""
    from ssl_bench.stats import paired_bootstrap, table_seed

    base = table.cells.get((baseline, col))
    if base is None or not base.parts:
        return None
    seeds = sorted(base.parts)
    scored = [m for m in table.methods
              if (m, col) in table.cells and table.cells[(m, col)].status == "ok"]
    methods = [m for m in scored if all(s in table.cells[(m, col)].parts for s in seeds)]
    left_out = [m for m in scored if m not in methods]
    parts = {(m, s): table.cells[(m, col)].parts[s] for m in methods for s in seeds}
    result = paired_bootstrap(parts, methods, baseline, table.higher_is_better, n_boot=n_boot,
                              seed=table_seed(table.benchmark, table.protocol, col.text,
                                              table.split))
    table.bootstraps.setdefault(col, result)
    family = len(methods) - 1
    comparisons = {
        (m, col): Comparison(
            baseline=baseline, delta=c.delta, ci_low=c.ci_low, ci_high=c.ci_high,
            p_value=c.p_value, p_holm=c.p_holm, significant=c.significant,
            rank_low=c.rank_low, rank_high=c.rank_high, family_size=family,
            n_seeds=len(result.seeds), n_boot=result.n_boot)
        for m, c in result.comparisons.items()}
    return comparisons, left_out


def _baseline_note(requested: tuple[str, ...], present: list[str]) -> str:
    """One line naming the requested baselines a table has no statistics against."""
    absent = [b for b in requested if b not in present]
    if not absent:
        return ""
    names = " or ".join(absent)
    if not present:
        return (f"no statistics: no {names} row with per-unit scores in this table (pass "
                "--baseline with a method of this table)")
    return f"no Δ vs {names}: no such row with per-unit scores in this table"


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


__all__ = ["BoardTable", "Comparison", "DEFAULT_BASELINES", "LabelColumn", "N_BOOT",
           "Published", "SHARED_PRETRAINING", "Stat", "Summary", "build_tables", "checkpoint_of",
           "column_of", "parse_baselines", "partition_key", "round_finite", "same_units_groups",
           "summarise"]
