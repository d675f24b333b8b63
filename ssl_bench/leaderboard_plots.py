"""The leaderboard's figures (matplotlib, Agg, written atomically and byte-stable):

* a **forest plot** per table with a single label setting: each method's score with its 95% CI
  over seeds, sorted, the baseline row marked (a dashed line at its score), rows whose paired
  difference to it is Holm-significant starred, collapsed encoders marked;
* **label-efficiency curves** per table with several label settings: score against the label
  fraction (log scale) or the number of labelled units, one line per method;
* the **critical-difference diagram** of the summary across benchmarks
  (:func:`ssl_bench.stats.plot_cd_diagram`).
"""

from __future__ import annotations

from pathlib import Path

from ssl_bench import atomic
from ssl_bench.board import BoardTable, LabelColumn


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=100)


def _save(plt, fig, path: Path) -> None:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)


def plot_kind(t: BoardTable) -> str:
    """``forest`` for a table with one label setting, else ``label-efficiency``."""
    return "forest" if len(t.columns) == 1 else "label-efficiency"


def plot_forest(t: BoardTable, column: LabelColumn, path: Path) -> None:
    rows = [(t.cells[(m, column)].mean, m) for m in t.methods
            if (m, column) in t.cells and t.cells[(m, column)].n]
    rows.sort(reverse=not t.higher_is_better)  # best at the top
    plt, fig, ax = _figure(6.4, 0.32 * max(4, len(rows)) + 1.2)
    for y, (mean, m) in enumerate(rows):
        stat = t.cells[(m, column)]
        interval = stat.ci
        comp = t.comparisons.get((m, column))
        colour = "tab:red" if m == t.baseline else ("tab:blue" if comp and comp.significant
                                                    else "0.35")
        if interval is not None:
            ax.plot(interval, [y, y], color=colour, linewidth=1.5)
        ax.plot([mean], [y], marker="s" if m == t.baseline else "o", color=colour)
    labels = []
    for _, m in rows:
        comp = t.comparisons.get((m, column))
        label = m + (" (baseline)" if m == t.baseline else "")
        if comp is not None and comp.significant:
            label += " *"
        if t.collapsed(m):
            label += " [collapsed]"
        labels.append(label)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    if t.baseline is not None and (t.baseline, column) in t.cells and \
            t.cells[(t.baseline, column)].n:
        ax.axvline(t.cells[(t.baseline, column)].mean, color="tab:red", linestyle="--",
                   linewidth=0.8)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xlabel(f"{t.main_score} ({column.header} labelled; mean and 95% CI over seeds)")
    ax.set_title(f"{t.benchmark}" + (" (synthetic data)" if t.synthetic else "")
                 + ("   * significant vs " + t.baseline if t.comparisons and t.baseline else ""),
                 fontsize=9)
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


__all__ = ["plot_forest", "plot_kind", "plot_label_efficiency", "plot_table"]
