"""ssl_bench.stats against exact enumeration, hand-computed values and published tables."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ssl_bench.errors import SSLBenchError
from ssl_bench.stats import (
    PairedBootstrap,
    StatsInputError,
    _bootstrap_p,
    cd_groups,
    critical_difference,
    friedman,
    holm,
    nemenyi_q,
    paired_bootstrap,
    plot_cd_diagram,
    rank_summary,
    table_seed,
)
from ssl_bench.unit_scores import UnitParts, mean_parts, pooled_parts


def _table(values: dict[str, dict[int, list[float]]]) -> dict[tuple[str, int], UnitParts]:
    """``{method: {seed: per-unit values}}`` -> mean-of-units parts, units u0, u1, ..."""
    return {(m, s): mean_parts({f"u{i}": v for i, v in enumerate(vals)})
            for m, per_seed in values.items() for s, vals in per_seed.items()}


# --------------------------------------------------------------------------------------------
# paired_bootstrap
# --------------------------------------------------------------------------------------------


def test_bootstrap_matches_exact_enumeration_of_two_seeds_by_two_units() -> None:
    # pooled ratio scores over 2 classes; class 1 is absent (den 0) from unit "a" of seed 1
    num = {("base", 0): [[10, 4], [30, 2]], ("new", 0): [[14, 5], [31, 2]],
           ("base", 1): [[20, 0], [40, 6]], ("new", 1): [[20, 0], [48, 9]]}
    den = {0: [[20, 8], [40, 4]], 1: [[40, 0], [50, 10]]}
    parts = {key: pooled_parts(["a", "b"], np.array(n, float), np.array(den[key[1]], float))
             for key, n in num.items()}

    def score(method: str, seed: int, counts: tuple[int, int]) -> float:
        ratios = []
        for c in range(2):  # by hand: per class sum_u w num / sum_u w den, then the class mean
            top = sum(w * num[(method, seed)][u][c] for u, w in enumerate(counts))
            bottom = sum(w * den[seed][u][c] for u, w in enumerate(counts))
            if bottom > 0:
                ratios.append(top / bottom)
        return sum(ratios) / len(ratios)

    # exact law of a replicate: 2 seed slots, each a uniform seed and a multinomial(2) unit draw
    unit_draws = {(2, 0): 0.25, (1, 1): 0.5, (0, 2): 0.25}
    exact: Counter[float] = Counter()
    for s1, s2 in itertools.product([0, 1], repeat=2):
        for (c1, p1), (c2, p2) in itertools.product(unit_draws.items(), repeat=2):
            d = [score("new", s, c) - score("base", s, c) for s, c in ((s1, c1), (s2, c2))]
            exact[round((d[0] + d[1]) / 2, 9)] += 0.25 * p1 * p2
    assert sum(exact.values()) == pytest.approx(1.0)

    n_boot = 20000
    result = paired_bootstrap(parts, ["base", "new"], "base", True, n_boot=n_boot, seed=7)
    deltas = result.replicate_scores[:, 1] - result.replicate_scores[:, 0]
    seen = Counter(round(float(d), 9) for d in deltas)
    assert set(seen) <= set(exact)
    for value, p in exact.items():
        se = math.sqrt(p * (1 - p) / n_boot)
        assert abs(seen[value] / n_boot - p) <= 5 * se + 1e-12, value
    # observed: the mean over seeds of the full-data scores
    observed = [np.mean([score(m, s, (1, 1)) for s in (0, 1)]) for m in ("base", "new")]
    assert result.comparisons["new"].score == pytest.approx(observed[1])
    assert result.comparisons["new"].delta == pytest.approx(observed[1] - observed[0])
    # the interval is the percentiles of the exact law (checked on the exact quantiles)
    support = sorted(exact)
    cdf = np.cumsum([exact[v] for v in support])
    low = support[int(np.searchsorted(cdf, 0.025))]
    high = support[int(np.searchsorted(cdf, 0.975))]
    assert result.comparisons["new"].ci_low == pytest.approx(low, abs=1e-9)
    assert result.comparisons["new"].ci_high == pytest.approx(high, abs=1e-9)


def test_constant_unit_difference_gives_a_degenerate_interval() -> None:
    rng = np.random.default_rng(1)
    base = {s: list(rng.uniform(20, 80, size=6)) for s in range(3)}
    shifted = {s: [v + 2.5 for v in vals] for s, vals in base.items()}
    result = paired_bootstrap(_table({"base": base, "new": shifted}), ["base", "new"], "base",
                              True, n_boot=2000, seed=0)
    new = result.comparisons["new"]
    # pairing: the large unit-to-unit spread cancels, leaving exactly the shift
    assert new.delta == pytest.approx(2.5)
    assert new.ci_low == pytest.approx(2.5) and new.ci_high == pytest.approx(2.5)
    assert new.p_value == pytest.approx(2 / 2001)


def test_a_copy_of_the_baseline_is_not_significant() -> None:
    rng = np.random.default_rng(2)
    base = {s: list(rng.uniform(0, 100, size=5)) for s in (3, 8)}
    other = {s: list(rng.uniform(0, 100, size=5)) for s in (3, 8)}
    result = paired_bootstrap(_table({"base": base, "copy": base, "other": other}),
                              ["base", "copy", "other"], "base", True, n_boot=1000, seed=0)
    for m in ("base", "copy"):
        c = result.comparisons[m]
        assert (c.delta, c.ci_low, c.ci_high) == (0.0, 0.0, 0.0)
        assert c.p_value == 1.0 and c.p_holm == 1.0 and not c.significant
    assert result.seeds == (3, 8)


def test_a_method_better_on_every_unit_is_significant() -> None:
    rng = np.random.default_rng(3)
    base = {s: list(rng.uniform(30, 70, size=8)) for s in range(5)}
    better = {s: [v + g for v, g in zip(vals, rng.uniform(0.5, 3.0, size=8))]
              for s, vals in base.items()}
    noise = {s: [v + g for v, g in zip(vals, rng.normal(0, 5, size=8))]
             for s, vals in base.items()}
    result = paired_bootstrap(_table({"base": base, "better": better, "noise": noise}),
                              ["base", "better", "noise"], "base", True, n_boot=4000, seed=0)
    c = result.comparisons["better"]
    assert c.ci_low > 0 and c.p_value == pytest.approx(2 / 4001)
    # the smallest of the two p-values, times m = 2 (the baseline is not in the family)
    assert c.p_holm == pytest.approx(2 * 2 / 4001)
    assert c.significant
    # it outranks the baseline in every replicate (the noisy method may outrank either)
    assert np.all(result.replicate_ranks[:, 1] < result.replicate_ranks[:, 0])
    np.testing.assert_allclose(
        [result.comparisons[m].p_holm for m in ("better", "noise")],
        holm([result.comparisons[m].p_value for m in ("better", "noise")]))


def test_lower_is_better_flips_ranks() -> None:
    low = {s: [1.0, 2.0, 3.0] for s in range(2)}
    high = {s: [v + 10 for v in vals] for s, vals in low.items()}
    parts = _table({"low": low, "high": high})
    up = paired_bootstrap(parts, ["low", "high"], "low", True, n_boot=200, seed=0)
    down = paired_bootstrap(parts, ["low", "high"], "low", False, n_boot=200, seed=0)
    assert (up.comparisons["high"].rank, up.comparisons["low"].rank) == (1.0, 2.0)
    assert (down.comparisons["high"].rank, down.comparisons["low"].rank) == (2.0, 1.0)
    assert (down.comparisons["low"].rank_low, down.comparisons["low"].rank_high) == (1.0, 1.0)
    # the difference keeps the metric's sign either way
    assert up.comparisons["high"].delta == down.comparisons["high"].delta == pytest.approx(10)
    np.testing.assert_array_equal(up.replicate_ranks, 3 - down.replicate_ranks)


def test_ties_share_the_average_rank() -> None:
    same = {0: [5.0, 6.0], 1: [7.0, 8.0]}
    result = paired_bootstrap(_table({"a": same, "b": same, "c": {0: [1.0, 1.0], 1: [1.0, 1.0]}}),
                              ["a", "b", "c"], "c", True, n_boot=100, seed=0)
    assert result.comparisons["a"].rank == result.comparisons["b"].rank == 1.5
    assert result.comparisons["c"].rank == 3.0


def test_units_are_matched_by_id_and_draws_do_not_depend_on_other_methods() -> None:
    rng = np.random.default_rng(4)
    values = {m: {s: list(rng.uniform(0, 1, size=4)) for s in range(2)} for m in "abc"}
    parts = _table(values)
    shuffled = dict(parts)
    p = parts[("b", 1)]
    shuffled[("b", 1)] = UnitParts(p.units[::-1], p.num[::-1], p.den[::-1])
    one = paired_bootstrap(parts, ["a", "b", "c"], "a", True, n_boot=300, seed=5)
    two = paired_bootstrap(shuffled, ["a", "b", "c"], "a", True, n_boot=300, seed=5)
    np.testing.assert_array_equal(one.replicate_scores, two.replicate_scores)
    fewer = paired_bootstrap(parts, ["a", "b"], "a", True, n_boot=300, seed=5)
    np.testing.assert_array_equal(fewer.replicate_scores, one.replicate_scores[:, :2])
    other_seed = paired_bootstrap(parts, ["a", "b", "c"], "a", True, n_boot=300, seed=6)
    assert not np.array_equal(other_seed.replicate_scores, one.replicate_scores)


def test_mismatched_units_and_missing_cells_raise() -> None:
    parts = _table({"a": {0: [1.0, 2.0], 1: [3.0, 4.0]}, "b": {0: [1.0, 2.0], 1: [3.0, 4.0]}})
    bad = dict(parts)
    bad[("b", 1)] = mean_parts({"u0": 3.0, "other": 4.0})
    with pytest.raises(StatsInputError, match=r"seed 1: method 'b'.*other"):
        paired_bootstrap(bad, ["a", "b"], "a", True, n_boot=10)
    missing = {k: v for k, v in parts.items() if k != ("b", 0)}
    with pytest.raises(ValueError, match=r"seed 0 .* not for b"):
        paired_bootstrap(missing, ["a", "b"], "a", True, n_boot=10)
    with pytest.raises(SSLBenchError, match="baseline 'z'"):
        paired_bootstrap(parts, ["a", "b"], "z", True, n_boot=10)


def test_bootstrap_p_value_definition_by_hand() -> None:
    # B = 5: #{d<=0} = 2 -> 3/6, #{d>=0} = 4 -> 5/6; p = min(1, 2 * 3/6) = 1
    assert _bootstrap_p(np.array([-1.0, 0.0, 1.0, 2.0, 3.0])) == 1.0
    # B = 4, all positive: (0+1)/5 = 0.2 -> p = 0.4
    assert _bootstrap_p(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.4)
    # B = 9 with one negative: (1+1)/10 -> 0.4; NaN replicates are left out
    assert _bootstrap_p(np.array([-1.0] + [1.0] * 8 + [np.nan])) == pytest.approx(0.4)
    assert _bootstrap_p(np.zeros(50)) == 1.0


# --------------------------------------------------------------------------------------------
# holm
# --------------------------------------------------------------------------------------------


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # capped at 1: 0.02*3 = 0.06, 0.3*2 = 0.6, 0.5*1 = 0.5 -> 0.6
    np.testing.assert_allclose(holm([0.5, 0.3, 0.02]), [0.6, 0.6, 0.06])
    np.testing.assert_allclose(holm([0.4, 0.7]), [0.8, 0.8])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])
    # NaN stays NaN and does not count in m
    np.testing.assert_allclose(holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])
    assert holm([]).shape == (0,)
    with pytest.raises(StatsInputError):
        holm([0.5, 1.5])


def test_holm_rejects_what_the_step_down_procedure_rejects() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=int(rng.integers(1, 9)))
        adjusted = holm(p)
        for alpha in (0.01, 0.05, 0.1):
            # Holm (1979): reject H_(1), H_(2), ... while p_(i) <= alpha / (m - i + 1)
            rejected = set()
            for i, j in enumerate(np.argsort(p, kind="stable")):
                if p[j] > alpha / (len(p) - i):
                    break
                rejected.add(int(j))
            assert rejected == set(np.flatnonzero(adjusted <= alpha).tolist())


# --------------------------------------------------------------------------------------------
# Across benchmarks
# --------------------------------------------------------------------------------------------


def _separated(values: dict[str, float], higher_is_better: bool, seed: int,
               n_boot: int = 300) -> PairedBootstrap:
    """A table whose methods are so far apart that every replicate ranks them the same."""
    rng = np.random.default_rng(seed)
    noise = {s: rng.uniform(-0.1, 0.1, size=4) for s in range(3)}
    table = _table({m: {s: list(v + noise[s]) for s in range(3)} for m, v in values.items()})
    return paired_bootstrap(table, list(values), next(iter(values)), higher_is_better,
                            n_boot=n_boot, seed=seed)


def test_rank_summary_over_benchmarks() -> None:
    up = _separated({"a": 90.0, "b": 80.0, "c": 70.0, "d": 60.0}, True, table_seed("up"))
    down = _separated({"a": 2.0, "b": 1.0, "c": 3.0}, False, table_seed("down"))
    summary = rank_summary({"up": up, "down": down})
    assert summary.methods == ("a", "b", "c")
    assert summary.excluded == {"d": ("down",)}
    # up ranks a, b, c as 1, 2, 3 (d left out); down (lower is better) as 2, 1, 3
    assert summary.mean_rank == pytest.approx({"a": 1.5, "b": 1.5, "c": 3.0})
    assert summary.rank_low == pytest.approx(summary.mean_rank)
    assert summary.rank_high == pytest.approx(summary.mean_rank)
    np.testing.assert_allclose(summary.ranks, [[1, 2, 3], [2, 1, 3]])
    np.testing.assert_allclose(summary.scores[1], [-2.0, -1.0, -3.0], atol=0.1)


def test_rank_summary_interval_combines_replicate_b_of_each_benchmark() -> None:
    rng = np.random.default_rng(9)
    tables = {}
    for name in ("x", "y"):
        values = {m: {s: list(rng.uniform(0, 100, size=5)) for s in range(2)} for m in "pqr"}
        tables[name] = paired_bootstrap(_table(values), ["p", "q", "r"], "p", True,
                                        n_boot=500, seed=table_seed(name))
    summary = rank_summary(tables)
    combined = (tables["x"].replicate_ranks + tables["y"].replicate_ranks) / 2
    low, high = np.percentile(combined, [2.5, 97.5], axis=0)
    assert [summary.rank_low[m] for m in "pqr"] == pytest.approx(list(low))
    assert [summary.rank_high[m] for m in "pqr"] == pytest.approx(list(high))


def test_rank_summary_needs_independent_equal_size_bootstraps() -> None:
    a = _separated({"a": 1.0, "b": 2.0}, True, seed=1)
    with pytest.raises(StatsInputError, match="same seed"):
        rank_summary({"one": a, "two": _separated({"a": 1.0, "b": 2.0}, True, seed=1)})
    with pytest.raises(StatsInputError, match="bootstrap sizes"):
        rank_summary({"one": a, "two": _separated({"a": 1.0, "b": 2.0}, True, seed=2,
                                                   n_boot=100)})
    assert table_seed("cholec80", "linear", "10%") == table_seed("cholec80", "linear", "10%")
    assert table_seed("a", "bc") != table_seed("ab", "c")


def test_friedman_by_hand_and_against_scipy() -> None:
    scores = np.array([[0.90, 0.80, 0.70],
                       [0.85, 0.60, 0.70],
                       [0.70, 0.65, 0.90]])
    # ranks per row 3 2 1 / 3 1 2 / 2 1 3 -> sums R = 8, 4, 6 over n = 3 rows, k = 3
    # chi2 = 12 / (n k (k+1)) * sum R^2 - 3 n (k+1) = 12/36 * 116 - 36 = 8/3; df 2: p = e^(-chi2/2)
    result = friedman(scores)
    assert result.statistic == pytest.approx(8 / 3)
    assert result.p_value == pytest.approx(math.exp(-4 / 3))
    reference = scipy_stats.friedmanchisquare(*scores.T)
    assert (result.statistic, result.p_value) == pytest.approx((reference.statistic,
                                                                 reference.pvalue))
    # flipping every row's direction leaves the statistic unchanged
    assert friedman(-scores).statistic == pytest.approx(8 / 3)
    assert (result.n_benchmarks, result.n_methods, result.reason) == (3, 3, "")


def test_friedman_needs_two_benchmarks_and_three_methods() -> None:
    one = friedman(np.array([[1.0, 2.0, 3.0]]))
    assert one.statistic is None and one.p_value is None and "2 benchmarks" in one.reason
    two = friedman(np.array([[1.0, 2.0], [2.0, 1.0]]))
    assert two.statistic is None and "3 methods" in two.reason


@pytest.mark.parametrize("k, q05, q10", [(2, 1.960, 1.645), (3, 2.343, 2.052),
                                          (4, 2.569, 2.291), (5, 2.728, 2.459),
                                          (6, 2.850, 2.589), (7, 2.949, 2.693),
                                          (8, 3.031, 2.780), (9, 3.102, 2.855),
                                          (10, 3.164, 2.920)])
def test_nemenyi_q_matches_demsar_table_5a(k: int, q05: float, q10: float) -> None:
    # the table prints 3 decimals; a few entries (e.g. k = 3: 2.3437, k = 7: 2.9483 exactly)
    # are one unit off in the last digit, hence a tolerance of 1e-3 rather than half a unit
    assert nemenyi_q(k, 0.05) == pytest.approx(q05, abs=1e-3)
    assert nemenyi_q(k, 0.10) == pytest.approx(q10, abs=1e-3)


def test_critical_difference_of_demsars_example() -> None:
    # Demšar (2006), section 3.2.4: 4 classifiers on 14 data sets, CD = 2.569 sqrt(20/84) = 1.25
    assert critical_difference(4, 14) == pytest.approx(1.25, abs=5e-3)
    assert critical_difference(5, 3) == pytest.approx(2.728 * math.sqrt(30 / 18), abs=1e-3)


def test_cd_groups_join_methods_closer_than_cd() -> None:
    ranks = {"A": 1.0, "B": 1.5, "C": 2.4, "D": 3.5, "E": 3.9}
    # A-B 0.5 and B-C 0.9 < 1, but A-C 1.4 and C-D 1.1 are not
    assert cd_groups(ranks, 1.0) == [("A", "B"), ("B", "C"), ("D", "E")]
    # B-C lies inside A-B-C and is not drawn again
    assert cd_groups({"A": 1.0, "B": 1.2, "C": 1.5, "D": 3.0}, 1.0) == [("A", "B", "C")]
    # a difference of exactly CD is significant
    assert cd_groups({"A": 1.0, "B": 2.0}, 1.0) == []
    assert cd_groups({"B": 2.0, "A": 2.0, "C": 2.0}, 0.5) == [("A", "B", "C")]
    with pytest.raises(StatsInputError):
        cd_groups(ranks, math.nan)


def test_cd_diagram_writes_the_same_png_twice(tmp_path: Path) -> None:
    ranks = {"imagenet": 1.3, "simclr": 2.8, "moco-v2": 3.0, "byol": 3.6, "random-init": 4.3}
    first, second = tmp_path / "cd.png", tmp_path / "again" / "cd.png"
    plot_cd_diagram(ranks, critical_difference(5, 3), first, "mean rank over 3 benchmarks")
    plot_cd_diagram(ranks, critical_difference(5, 3), second, "mean rank over 3 benchmarks")
    data = first.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data == second.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
