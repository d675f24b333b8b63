"""Paired statistics for leaderboards: bootstrap differences, Holm, ranks, Friedman, CD diagrams.

One leaderboard *table* (one benchmark, protocol and label setting) holds, for every method and
seed, the exact per-test-unit parts of its main score (:class:`ssl_bench.unit_scores.UnitParts`).
Within one seed every method is scored on the same test units and the same label subset, so
methods can be compared *paired*: :func:`paired_bootstrap` resamples seeds, then test units
within each drawn seed, and applies the same draws to every method.

Across benchmarks, :func:`rank_summary` combines the tables' bootstrap replicates into a mean
rank with an interval, :func:`friedman` tests whether the methods' ranks differ at all and
:func:`critical_difference` / :func:`plot_cd_diagram` give the Nemenyi post-hoc view of
Demšar (2006), "Statistical comparisons of classifiers over multiple data sets", JMLR 7:1-30.

Everything here takes plain inputs (names, numbers, arrays) and returns plain dataclasses; it
knows nothing of records or of how a leaderboard is rendered. Every random draw comes from a
``numpy.random.Generator`` seeded by the caller, so results are reproducible.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from ssl_bench import atomic
from ssl_bench.errors import SSLBenchError
from ssl_bench.unit_scores import UnitParts, aggregate


class StatsInputError(SSLBenchError, ValueError):
    """Inputs that a statistic cannot be computed from (a missing cell, mismatched test units)."""


# --------------------------------------------------------------------------------------------
# One table: the paired hierarchical bootstrap
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodComparison:
    """One method of a table, compared with the baseline.

    ``delta`` is ``score - baseline score`` in the metric's own direction (a positive delta is an
    improvement only when higher is better). ``p_value`` is the two-sided bootstrap p-value of
    :func:`paired_bootstrap`; ``p_holm`` is that p-value Holm-adjusted across the table's
    non-baseline methods, and ``significant`` is ``p_holm < alpha``. Ranks count 1 as best.
    """

    method: str
    score: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    p_holm: float
    significant: bool
    rank: float
    rank_low: float
    rank_high: float


@dataclass(frozen=True)
class PairedBootstrap:
    """The result of :func:`paired_bootstrap` for one table.

    ``replicate_scores[b, j]`` is method ``methods[j]``'s score in bootstrap replicate ``b``;
    ``replicate_ranks`` ranks each row (1 = best, ties averaged). Both feed :func:`rank_summary`.
    """

    methods: tuple[str, ...]
    baseline: str
    higher_is_better: bool
    seeds: tuple[int, ...]
    n_boot: int
    seed: int
    level: float
    alpha: float
    comparisons: dict[str, MethodComparison]
    scores: np.ndarray = field(repr=False)
    replicate_scores: np.ndarray = field(repr=False)
    replicate_ranks: np.ndarray = field(repr=False)


def table_seed(*names: str) -> int:
    """A stable bootstrap seed for one table, e.g. ``table_seed(benchmark, protocol, label)``.

    Tables combined by :func:`rank_summary` need independent draws, hence distinct seeds; a
    hash of the table's names gives one that does not change between runs or Python processes.
    """
    digest = hashlib.sha256("\x1f".join(names).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def paired_bootstrap(parts: Mapping[tuple[str, int], UnitParts], methods: Sequence[str],
                     baseline: str, higher_is_better: bool, n_boot: int = 10000, seed: int = 0,
                     level: float = 0.95, alpha: float = 0.05) -> PairedBootstrap:
    """Paired hierarchical bootstrap of every method's difference to ``baseline`` in one table.

    :param parts: ``(method, seed) -> UnitParts`` of the main score; keys of other methods are
        ignored. Every method must have parts for every seed that any of them has (drop a method
        with a missing cell before calling), and within a seed every method must be scored on
        the same test unit ids (row order may differ; rows are matched by id).
    :param methods: the methods of the table, in the order of the result's arrays.
    :param baseline: the reference method; it must be one of ``methods``.
    :param higher_is_better: the direction of the metric, used for ranks only.
    :param n_boot: the number of bootstrap replicates ``B``.
    :param seed: the seed of the random generator (see :func:`table_seed`).
    :param level: the coverage of the percentile intervals.
    :param alpha: the significance level applied to the Holm-adjusted p-values.

    **Resampling.** A replicate draws ``S`` seeds with replacement from the table's ``S`` seeds;
    for each drawn seed it draws that seed's ``n`` test units with replacement (multinomial
    counts; a seed drawn twice gets two independent unit draws). A method's replicate score is
    the mean over the drawn seeds of its main score on the drawn units (the exact aggregate,
    :func:`ssl_bench.unit_scores.aggregate`, with units weighted by how often they were drawn).
    The same draws are applied to every method, so differences are paired. The draws do not
    depend on the set of methods: adding a method leaves the others' replicates unchanged. A
    drawn seed whose resample leaves the score undefined (every drawn unit NaN) is left out of
    that replicate's mean.

    **Observed values.** A method's score is the mean over seeds of ``parts.value()``; its delta
    is that minus the baseline's.

    **Interval.** The equal-tailed percentile interval of the replicate deltas ``d*``.

    **p-value.** With ``B`` finite replicate deltas,
    ``p = min(1, 2 * min((#{d* <= 0} + 1) / (B + 1), (#{d* >= 0} + 1) / (B + 1)))``.
    Doubling the smaller tail inverts the equal-tailed percentile interval: ``p <= a`` (up to
    the +1 terms) exactly when the ``1 - a`` interval excludes 0, so the p-value and the interval
    agree. The +1 terms (Davison & Hinkley 1997, ch. 4; North et al. 2002, Am. J. Hum. Genet.
    71:439-441) count the observed sample as one replicate, so ``p >= 2 / (B + 1)`` is never 0 for a
    finite ``B``. Ties at 0 count in both tails, so a distribution that sits at 0 (the baseline
    against itself, or a method identical to it) gets ``p = 1``. The baseline itself gets
    ``delta = 0``, interval ``[0, 0]``, ``p = p_holm = 1`` and is not part of the Holm family.
    """
    methods = tuple(methods)
    if baseline not in methods:
        raise StatsInputError(f"baseline {baseline!r} is not among the methods "
                              f"{', '.join(methods)}; pass one of them as the baseline")
    if len(set(methods)) != len(methods):
        raise StatsInputError(f"methods repeat in {', '.join(methods)}; pass each method once")
    if n_boot < 1:
        raise StatsInputError(f"n_boot={n_boot}: use at least 1 bootstrap replicate")
    if not 0.0 < level < 1.0:
        raise StatsInputError(f"level={level}: use a coverage between 0 and 1, e.g. 0.95")
    seeds, nums, dens = _aligned_parts(parts, methods)

    observed = np.array([np.mean([aggregate(nums[s][j], dens[s][j]) for s in range(len(seeds))])
                         for j in range(len(methods))])
    replicates = _replicate_scores(nums, dens, len(methods), n_boot, seed)
    ranks = _ranks(replicates, higher_is_better)
    observed_ranks = _ranks(observed[None, :], higher_is_better)[0]

    b = methods.index(baseline)
    deltas = replicates - replicates[:, [b]]
    tails = (100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0)
    ci = _nanpercentile(deltas, tails)
    rank_ci = _nanpercentile(ranks, tails)
    p_values = np.array([_bootstrap_p(deltas[:, j]) for j in range(len(methods))])
    others = [j for j in range(len(methods)) if j != b]
    p_holm = np.ones(len(methods))
    p_holm[others] = holm(p_values[others])
    p_values[b] = 1.0

    comparisons = {}
    for j, m in enumerate(methods):
        comparisons[m] = MethodComparison(
            method=m, score=float(observed[j]), delta=float(observed[j] - observed[b]),
            ci_low=float(ci[0, j]), ci_high=float(ci[1, j]), p_value=float(p_values[j]),
            p_holm=float(p_holm[j]), significant=bool(j != b and p_holm[j] < alpha),
            rank=float(observed_ranks[j]), rank_low=float(rank_ci[0, j]),
            rank_high=float(rank_ci[1, j]))
    return PairedBootstrap(methods=methods, baseline=baseline, higher_is_better=higher_is_better,
                           seeds=tuple(seeds), n_boot=n_boot, seed=seed, level=level, alpha=alpha,
                           comparisons=comparisons, scores=observed, replicate_scores=replicates,
                           replicate_ranks=ranks)


def _aligned_parts(parts: Mapping[tuple[str, int], UnitParts], methods: tuple[str, ...]
                   ) -> tuple[list[int], list[list[np.ndarray]], list[list[np.ndarray]]]:
    """The table's seeds and, per seed and method, ``num`` / ``den`` with rows in one unit order."""
    seeds = sorted({s for (m, s) in parts if m in methods})
    if not seeds:
        raise StatsInputError(f"no per-unit parts for any of {', '.join(methods)}; "
                              f"the records need per-unit scores (rerun the cells)")
    nums: list[list[np.ndarray]] = []
    dens: list[list[np.ndarray]] = []
    for s in seeds:
        missing = [m for m in methods if (m, s) not in parts]
        if missing:
            raise StatsInputError(f"seed {s} has per-unit parts for some methods but not for "
                                  f"{', '.join(missing)}; drop those methods from the comparison "
                                  f"or rerun their cells")
        reference = parts[(methods[0], s)].units
        if not reference:
            raise StatsInputError(f"seed {s} has no test units; rerun its cells")
        nums.append([])
        dens.append([])
        for m in methods:
            p = parts[(m, s)]
            if set(p.units) != set(reference):
                differ = sorted(set(p.units) ^ set(reference))
                raise StatsInputError(
                    f"seed {s}: method {m!r} was scored on other test units than "
                    f"{methods[0]!r} (e.g. {', '.join(differ[:3])}); a paired comparison needs "
                    f"the same test split for every method, so rerun the stale cells")
            row = {u: i for i, u in enumerate(p.units)}
            order = np.array([row[u] for u in reference], dtype=np.intp)
            nums[-1].append(p.num[order])
            dens[-1].append(p.den[order])
    return seeds, nums, dens


def _replicate_scores(nums: list[list[np.ndarray]], dens: list[list[np.ndarray]], n_methods: int,
                      n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_methods)`` replicate scores; see :func:`paired_bootstrap` for the scheme."""
    rng = np.random.default_rng(seed)
    n_seeds = len(nums)
    drawn = rng.integers(0, n_seeds, size=(n_boot, n_seeds))  # the seed in each draw slot
    slot_scores = np.empty((n_methods, n_boot, n_seeds))
    for s in range(n_seeds):
        slots = drawn == s
        n_slots = int(slots.sum())
        if n_slots == 0:
            continue
        n_units = nums[s][0].shape[0]
        picks = rng.integers(0, n_units, size=(n_slots, n_units))
        offsets = np.arange(n_slots)[:, None] * n_units
        counts = np.bincount((picks + offsets).ravel(),
                             minlength=n_slots * n_units).reshape(n_slots, n_units)
        for j in range(n_methods):
            slot_scores[j][slots] = aggregate(nums[s][j], dens[s][j], counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # an all-undefined replicate
        return np.nanmean(slot_scores, axis=2).T


def _ranks(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Rank each row (1 = best, ties averaged, NaN scores get NaN ranks)."""
    oriented = -scores if higher_is_better else scores
    return np.asarray(scipy_stats.rankdata(oriented, method="average", axis=-1,
                                           nan_policy="omit"), dtype=np.float64)


def _nanpercentile(values: np.ndarray, q: tuple[float, float]) -> np.ndarray:
    """Percentiles per column over the finite rows; NaN where a column has none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanpercentile(values, q, axis=0)


def _bootstrap_p(deltas: np.ndarray) -> float:
    """The two-sided p-value of :func:`paired_bootstrap` (NaN replicates left out)."""
    d = deltas[np.isfinite(deltas)]
    if d.size == 0:
        return math.nan
    below = (np.count_nonzero(d <= 0) + 1) / (d.size + 1)
    above = (np.count_nonzero(d >= 0) + 1) / (d.size + 1)
    return min(1.0, 2.0 * min(below, above))


# --------------------------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------------------------


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979, Scand. J. Statist. 6:65-70).

    With the ``m`` finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value
    of ``p_(i)`` is ``max_{j <= i} min(1, (m - j + 1) p_(j))``: the running maximum keeps the
    adjusted values in the order of the raw ones. Rejecting where the adjusted value is below
    ``alpha`` controls the family-wise error rate at ``alpha``. NaN entries stay NaN and do not
    count in ``m`` (as R's ``p.adjust``). scipy has no Holm adjustment
    (``scipy.stats.false_discovery_control`` is Benjamini-Hochberg / -Yekutieli), hence this.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise StatsInputError(f"holm takes one flat list of p-values, got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise StatsInputError(f"p-values must lie in [0, 1], got {p[(p < 0) | (p > 1)][:3]}")
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted


# --------------------------------------------------------------------------------------------
# Across benchmarks: ranks, Friedman, critical difference
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankSummary:
    """Mean ranks over benchmarks (1 = best) of the methods present in every benchmark.

    ``mean_rank`` averages the observed per-benchmark ranks; ``rank_low`` / ``rank_high`` are the
    percentiles of the same mean over the bootstrap replicates. ``scores`` (benchmarks x methods)
    holds the observed scores oriented so that higher is better (lower-is-better rows negated),
    ready for :func:`friedman`; ``ranks`` the observed ranks. ``excluded`` names each method that
    some benchmark lacks, with the benchmarks that lack it.
    """

    methods: tuple[str, ...]
    benchmarks: tuple[str, ...]
    mean_rank: dict[str, float]
    rank_low: dict[str, float]
    rank_high: dict[str, float]
    excluded: dict[str, tuple[str, ...]]
    scores: np.ndarray = field(repr=False)
    ranks: np.ndarray = field(repr=False)


def rank_summary(tables: Mapping[str, PairedBootstrap], level: float = 0.95) -> RankSummary:
    """Mean rank per method over benchmarks, with an interval from the tables' bootstraps.

    :param tables: one :class:`PairedBootstrap` per benchmark (one table each, e.g. the default
        protocol and label setting); all with the same ``n_boot`` and distinct ``seed`` s.

    **Which methods.** Only methods present in every table are summarised, in the order of the
    first table; ranks are recomputed among them in every table (so a method that only some
    benchmarks ran neither gets a rank nor shifts the others'). The rest are listed in
    ``excluded``.

    **Interval.** Replicate ``b`` of each table is ranked (among the common methods), the ranks are
    averaged over benchmarks, and the percentiles of that mean over ``b`` give the interval. This
    treats the benchmarks' bootstraps as independent, which is why their seeds must differ
    (:func:`table_seed`): equal seeds would draw the same seed/unit indices in every table.
    """
    if not tables:
        raise StatsInputError("rank_summary needs at least one benchmark table")
    names = tuple(tables)
    first = tables[names[0]]
    n_boots = {n: t.n_boot for n, t in tables.items()}
    if len(set(n_boots.values())) != 1:
        raise StatsInputError(f"tables have different bootstrap sizes {n_boots}; bootstrap every "
                              f"benchmark with the same n_boot")
    seen: dict[int, str] = {}
    for n, t in tables.items():
        if t.seed in seen:
            raise StatsInputError(f"benchmarks {seen[t.seed]!r} and {n!r} were bootstrapped with "
                                  f"the same seed {t.seed}; give each table its own seed "
                                  f"(ssl_bench.stats.table_seed)")
        seen[t.seed] = n
    common = tuple(m for m in first.methods if all(m in t.methods for t in tables.values()))
    every = dict.fromkeys(m for t in tables.values() for m in t.methods)
    excluded = {m: tuple(n for n, t in tables.items() if m not in t.methods)
                for m in every if m not in common}

    scores = np.empty((len(names), len(common)))
    ranks = np.empty((len(names), len(common)))
    replicate_ranks = np.zeros((first.n_boot, len(common)))
    for i, n in enumerate(names):
        t = tables[n]
        cols = [t.methods.index(m) for m in common]
        sign = 1.0 if t.higher_is_better else -1.0
        scores[i] = sign * t.scores[cols]
        ranks[i] = _ranks(scores[i][None, :], higher_is_better=True)[0]
        replicate_ranks += _ranks(sign * t.replicate_scores[:, cols], higher_is_better=True)
    replicate_ranks /= len(names)
    mean = ranks.mean(axis=0)
    interval = _nanpercentile(replicate_ranks,
                              (100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0))
    return RankSummary(methods=common, benchmarks=names,
                       mean_rank={m: float(mean[j]) for j, m in enumerate(common)},
                       rank_low={m: float(interval[0, j]) for j, m in enumerate(common)},
                       rank_high={m: float(interval[1, j]) for j, m in enumerate(common)},
                       excluded=excluded, scores=scores, ranks=ranks)


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's test; ``statistic`` and ``p_value`` are None when it cannot run (``reason``)."""

    statistic: float | None
    p_value: float | None
    n_benchmarks: int
    n_methods: int
    reason: str = ""


def friedman(scores: np.ndarray) -> FriedmanResult:
    """Friedman's rank test that all methods perform alike (Demšar 2006, section 3.2.2).

    :param scores: benchmarks x methods (blocks x treatments), every row oriented the same way
        (e.g. :attr:`RankSummary.scores`, where higher is better). The statistic, with scipy's
        correction for ties, comes from ``scipy.stats.friedmanchisquare``; its p-value is the
        chi-square approximation with ``k - 1`` degrees of freedom. It needs at least 2
        benchmarks and 3 methods; otherwise the result carries the reason and no statistic.
    """
    table = np.asarray(scores, dtype=np.float64)
    if table.ndim != 2:
        raise StatsInputError(f"friedman takes a benchmarks x methods table, got shape "
                              f"{table.shape}")
    n, k = table.shape
    if n < 2:
        return FriedmanResult(None, None, n, k, f"Friedman's test needs at least 2 benchmarks, "
                                                f"got {n}")
    if k < 3:
        return FriedmanResult(None, None, n, k, f"Friedman's test needs at least 3 methods, "
                                                f"got {k}")
    if not np.all(np.isfinite(table)):
        raise StatsInputError("friedman got a NaN or infinite score; drop the methods or "
                              "benchmarks without a score first")
    result = scipy_stats.friedmanchisquare(*table.T)
    return FriedmanResult(float(result.statistic), float(result.pvalue), n, k)


def nemenyi_q(k_methods: int, alpha: float = 0.05) -> float:
    """The Nemenyi critical value ``q_alpha`` for ``k`` methods (Demšar 2006, Table 5a):
    the studentized range quantile with infinite degrees of freedom, divided by sqrt(2)."""
    if k_methods < 2:
        raise StatsInputError(f"the Nemenyi test needs at least 2 methods, got {k_methods}")
    q = scipy_stats.studentized_range.ppf(1.0 - alpha, k_methods, np.inf)
    return float(q / math.sqrt(2.0))


def critical_difference(k_methods: int, n_benchmarks: int, alpha: float = 0.05) -> float:
    """The Nemenyi critical difference of mean ranks,
    ``CD = q_alpha * sqrt(k (k + 1) / (6 n))`` (Demšar 2006, section 3.2.2): two methods whose
    mean ranks over ``n`` benchmarks differ by at least CD differ significantly."""
    if n_benchmarks < 1:
        raise StatsInputError(f"the critical difference needs at least 1 benchmark, got "
                              f"{n_benchmarks}")
    k = k_methods
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_benchmarks))


def cd_groups(mean_ranks: Mapping[str, float], cd: float) -> list[tuple[str, ...]]:
    """The bars of a critical-difference diagram: maximal runs of methods (sorted by mean rank,
    best first) whose first and last mean ranks differ by less than ``cd``. Runs of one method
    and runs inside a longer run are left out; methods not joined by any bar differ
    significantly."""
    if not math.isfinite(cd) or cd < 0:
        raise StatsInputError(f"critical difference {cd!r} must be a finite number >= 0")
    order = sorted(mean_ranks, key=lambda m: (mean_ranks[m], m))
    groups: list[tuple[str, ...]] = []
    last_end = 0
    for i, m in enumerate(order):
        end = i
        while end + 1 < len(order) and mean_ranks[order[end + 1]] - mean_ranks[m] < cd:
            end += 1
        if end > i and end > last_end:
            groups.append(tuple(order[i:end + 1]))
            last_end = end
    return groups


def plot_cd_diagram(mean_ranks: Mapping[str, float], cd: float, path: Path, title: str) -> None:
    """Write a critical-difference diagram (Demšar 2006, Fig. 1) as a PNG at ``path``.

    A rank axis (1 = best, on the left) with the CD drawn above it; the better half of the
    methods hangs to the left, the worse half to the right, each labelled with its mean rank;
    thick bars join the groups of :func:`cd_groups`. The file is written atomically and without
    a software tag, so the same inputs give the same bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(mean_ranks) < 2:
        raise StatsInputError(f"a critical-difference diagram needs at least 2 methods, got "
                              f"{len(mean_ranks)}")
    groups = cd_groups(mean_ranks, cd)
    order = sorted(mean_ranks, key=lambda m: (mean_ranks[m], m))
    k = len(order)
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2:][::-1]
    row, bar_gap = 0.3, 0.12
    first_bar = 0.25
    first_row = first_bar + len(groups) * bar_gap + 0.2
    bottom = first_row + (max(len(left), len(right)) - 1) * row + 0.2
    reach = 0.15 + 0.08 * (k - 1)  # how far the label lines go beyond the axis

    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.9 * (bottom + 0.9)), dpi=100)
    ax.set_axis_off()
    ax.set_xlim(1 - reach, k + reach)
    ax.set_ylim(bottom, -0.9)  # y grows downwards, as in the classic layout
    line: dict[str, Any] = {"color": "black", "linewidth": 1.0}
    ax.plot([1, k], [0, 0], **line)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [-0.08, 0], **line)
        ax.text(tick, -0.1, str(tick), ha="center", va="bottom", fontsize=9)
    for half in np.arange(1.5, k, 1.0):
        ax.plot([half, half], [-0.04, 0], **line)
    if cd > 0:
        ax.plot([1, 1 + cd], [-0.55, -0.55], color="black", linewidth=1.5)
        ax.plot([1, 1], [-0.6, -0.5], **line)
        ax.plot([1 + cd, 1 + cd], [-0.6, -0.5], **line)
        ax.text(1 + cd / 2, -0.62, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for i, m in enumerate(left):
        y, r = first_row + i * row, mean_ranks[m]
        ax.plot([r, r, 1 - reach], [0, y, y], **line)
        ax.text(1 - reach - 0.03, y, f"{m} ({r:.2f})", ha="right", va="center", fontsize=9)
    for i, m in enumerate(right):
        y, r = first_row + i * row, mean_ranks[m]
        ax.plot([r, r, k + reach], [0, y, y], **line)
        ax.text(k + reach + 0.03, y, f"({r:.2f}) {m}", ha="left", va="center", fontsize=9)
    for g, group in enumerate(groups):
        y = first_bar + g * bar_gap
        ax.plot([mean_ranks[group[0]] - 0.04, mean_ranks[group[-1]] + 0.04], [y, y],
                color="black", linewidth=3.5, solid_capstyle="butt")
    ax.set_title(title, fontsize=10)
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight",
                                                    metadata={"Software": None}))
    plt.close(fig)


__all__ = ["StatsInputError", "MethodComparison", "PairedBootstrap", "table_seed",
           "paired_bootstrap", "holm", "RankSummary", "rank_summary", "FriedmanResult",
           "friedman", "nemenyi_q", "critical_difference", "cd_groups", "plot_cd_diagram"]
