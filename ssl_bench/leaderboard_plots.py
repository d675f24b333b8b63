"""The leaderboard's figures (matplotlib, Agg, written atomically and byte-stable):

* a **forest plot** per table with a single label setting: each row's paired difference to the
  table's first baseline with statistics, with its bootstrap 95% CI, i.e. the interval and test
  the significance star comes from (:func:`forest_data` computes what is drawn); significantly
  better rows, significantly worse rows and the rest in three colours, collapsed encoders
  marked, and a caption with the smallest p-value the bootstrap can give;
* **label-efficiency curves** per table with several label settings: score against the label
  fraction (log scale) or the number of labelled units, one line per method;
* the **critical-difference diagram** of the summary across benchmarks
  (:func:`ssl_bench.stats.plot_cd_diagram`).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from ssl_bench import atomic
from ssl_bench.board import BoardTable, LabelColumn

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Verdict = Literal["baseline", "better", "worse", "not significant"]

#: the colour of each verdict in the forest plot
VERDICT_COLOURS: dict[Verdict, str] = {"better": "tab:green", "worse": "tab:red",
                                       "not significant": "0.55", "baseline": "black"}


@dataclass(frozen=True)
class ForestRow:
    """One row of the forest plot: its paired difference to the baseline and the verdict of
    the Holm-adjusted test (better / worse in the metric's direction)."""

    method: str
    delta: float
    ci_low: float
    ci_high: float
    p_holm: float
    verdict: Verdict
    collapsed: bool

    @property
    def colour(self) -> str:
        return VERDICT_COLOURS[self.verdict]

    @property
    def label(self) -> str:
        text = self.method + (" (baseline)" if self.verdict == "baseline" else "")
        if self.verdict in ("better", "worse"):
            text += " *"
        return text + (" [collapsed]" if self.collapsed else "")


@dataclass(frozen=True)
class ForestData:
    """What the forest plot of one table column draws: rows best first, the scored rows that
    were not compared, and the caption (what the interval is, the smallest p)."""

    benchmark: str
    column: LabelColumn
    baseline: str | None
    rows: list[ForestRow]
    not_compared: list[str]
    caption: str


def smallest_p_text(n_boot: int, n_seeds: int, family_size: int) -> str:
    """What bounds the p-values of a paired bootstrap (:func:`ssl_bench.stats.paired_bootstrap`)
    with ``n_boot`` replicates over ``n_seeds`` seeds, Holm-adjusted over ``family_size`` rows.

    The raw p-value counts the observed sample as a replicate on each side, so it is at least
    ``2 / (B + 1)``, and Holm multiplies the smallest by the family size. A replicate draws
    one seed in every slot with probability ``S^-S`` per seed; if one seed's difference has
    the other sign, those replicates fall in the other tail and p stays near ``2 S^-S`` or
    above."""
    floor = 2.0 / (n_boot + 1)
    text = f"smallest p = 2/(B+1) = {floor:.2g} with B = {n_boot} replicates"
    if family_size > 1:
        text += (f" (Holm over {family_size} rows: smallest adjusted p = "
                 f"{min(1.0, family_size * floor):.2g})")
    if n_seeds > 1:
        text += (f"; with {n_seeds} seeds, a row whose Δ changes sign on one seed cannot get p "
                 f"below about 2/{n_seeds}^{n_seeds} = {2.0 / n_seeds ** n_seeds:.2g}")
    else:
        text += "; one seed: only test units are resampled, not the pretraining run"
    return text


def forest_data(t: BoardTable, column: LabelColumn) -> ForestData:
    """The forest plot's content for ``column``: each compared row's paired difference to the
    table's first baseline with statistics (:attr:`BoardTable.baselines`) with its percentile
    bootstrap CI and Holm verdict, sorted best first; the baseline row sits at 0."""
    baseline = t.baselines[0] if t.baselines else None
    rows: list[ForestRow] = []
    scored = [m for m in t.methods if (m, column) in t.cells and t.cells[(m, column)].n]
    for m in scored:
        comp = t.comparison(m, column, baseline) if baseline is not None else None
        if comp is None:
            continue
        verdict: Verdict
        if m == comp.baseline:
            verdict = "baseline"
        elif not comp.significant:
            verdict = "not significant"
        else:
            verdict = "better" if (comp.delta > 0) == t.higher_is_better else "worse"
        rows.append(ForestRow(method=m, delta=comp.delta, ci_low=comp.ci_low,
                              ci_high=comp.ci_high, p_holm=comp.p_holm, verdict=verdict,
                              collapsed=t.collapsed(m)))
    sign = 1.0 if t.higher_is_better else -1.0
    rows.sort(key=lambda r: (-sign * r.delta, r.method))
    not_compared = [m for m in scored if all(r.method != m for r in rows)]
    first = t.comparison(rows[0].method, column, baseline) if rows and baseline else None
    if baseline is None or first is None:
        baseline = None
        caption = "no paired statistics: no baseline row with per-unit scores in this table"
    else:
        floor = smallest_p_text(first.n_boot, first.n_seeds, first.family_size)
        caption = (f"Δ vs {baseline} with its 95% paired bootstrap CI (seeds, then test units); "
                   f"* = Holm-adjusted p < 0.05 (green better, red worse, grey not "
                   f"significant); {floor}")
        if not_compared:
            caption += f"; not compared: {', '.join(not_compared)}"
    return ForestData(benchmark=t.benchmark, column=column, baseline=baseline, rows=rows,
                      not_compared=not_compared, caption=caption)


def _figure(width: float, height: float) -> tuple[ModuleType, Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=100)


def _save(plt: ModuleType, fig: Figure, path: Path) -> None:
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)


def plot_kind(t: BoardTable) -> str:
    """``forest`` for a table with one label setting, else ``label-efficiency``."""
    return "forest" if len(t.columns) == 1 else "label-efficiency"


def plot_forest(t: BoardTable, column: LabelColumn, path: Path) -> None:
    """Draw :func:`forest_data` of ``column``: one line per row from its CI low to high with
    a dot at Δ, coloured by verdict, a dashed line at 0 (the baseline) and the caption below."""
    from matplotlib.lines import Line2D

    data = forest_data(t, column)
    plt, fig, ax = _figure(6.4, 0.32 * max(4, len(data.rows)) + 2.0)
    for y, row in enumerate(data.rows):
        ax.plot([row.ci_low, row.ci_high], [y, y], color=row.colour, linewidth=1.5)
        ax.plot([row.delta], [y], marker="s" if row.verdict == "baseline" else "o",
                color=row.colour)
    ax.set_yticks(range(len(data.rows)), [r.label for r in data.rows], fontsize=8)
    ax.axvline(0.0, color="black", linestyle="--", linewidth=0.8)
    ax.set_ylim(max(len(data.rows), 1) - 0.5, -0.5)
    caption = "\n".join(textwrap.wrap(data.caption, 100))
    if data.baseline is None:
        ax.text(0.5, 0.5, "no paired statistics", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        ax.set_xlabel(caption, fontsize=7)
    else:
        ax.set_xlabel(f"Δ {t.main_score} ({column.header} labelled)\n" + caption, fontsize=7)
        legend: list[tuple[Verdict, str]] = [("better", "significantly better"),
                                             ("worse", "significantly worse"),
                                             ("not significant", "not significant")]
        handles = [Line2D([], [], color=VERDICT_COLOURS[v], marker="o", linewidth=1.5,
                          label=label)
                   for v, label in legend]
        ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_title(f"{t.benchmark}" + (" (synthetic data)" if t.synthetic else ""), fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    _save(plt, fig, path)


def plot_label_efficiency(t: BoardTable, path: Path) -> None:
    kind = "frac" if sum(c.kind == "frac" for c in t.columns) >= 2 else "count"
    columns = [c for c in t.columns if c.kind == kind]
    plt, fig, ax = _figure(6.0, 4.0)
    for m in t.methods:
        xs, ys, es = [], [], []
        for c in columns:
            stat = t.cells.get((m, c))
            if stat is not None and stat.n:
                xs.append(c.value * 100 if kind == "frac" else c.value)
                ys.append(stat.mean)
                es.append(stat.std)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=m)
    if kind == "frac":
        ax.set_xscale("log")
        ax.set_xlabel("label fraction (%)")
    else:
        ax.set_xlabel("labelled units")
    ax.set_ylabel(t.main_score)
    ax.set_title(t.benchmark + (" (synthetic data)" if t.synthetic else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, path)


def plot_table(t: BoardTable, path: Path) -> None:
    if plot_kind(t) == "forest":
        plot_forest(t, t.columns[0], path)
    else:
        plot_label_efficiency(t, path)


__all__ = ["ForestData", "ForestRow", "VERDICT_COLOURS", "forest_data", "plot_forest", "plot_kind",
           "plot_label_efficiency", "plot_table", "smallest_p_text"]
