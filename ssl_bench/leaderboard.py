"""Leaderboards built from result records only.

Per benchmark: methods as rows, label fractions as columns; each cell is the main score's mean
± sample std over seeds, the number of seeds, and a 95% confidence interval of the mean
(Student t with n-1 degrees of freedom). The best mean per column is marked (bold in md/html,
``*`` in csv/json), methods are ranked by their mean rank over the columns, n/a cells (method
does not apply) and failed cells are shown as such. A label-efficiency plot (score vs. label
fraction, one line per method) is written per benchmark.

Outputs are deterministic functions of the records (no timestamps but the records' own), so
``--check`` can regenerate them and compare.
"""

from __future__ import annotations

import html
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssl_bench import atomic
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import CellRecord, frac_label, iter_records


@dataclass
class Stat:
    status: str  # ok | n/a | failed
    scores: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    failed: int = 0

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
    fracs: list[float]
    methods: list[str]
    cells: dict[tuple[str, float], Stat]
    ranks: dict[str, float | None]

    def best(self, frac: float) -> set[str]:
        """The method(s) with the best mean in a column (ties are all best)."""
        scored = {m: self.cells[(m, frac)].mean for m in self.methods
                  if (m, frac) in self.cells and self.cells[(m, frac)].n}
        if not scored:
            return set()
        top = (max if self.higher_is_better else min)(scored.values())
        return {m for m, v in scored.items() if v == top}


def build_tables(records: list[CellRecord], benchmarks: list[str] | None = None) -> list[BoardTable]:
    by_bench: dict[str, list[CellRecord]] = {}
    for r in records:
        if benchmarks is None or r.benchmark in benchmarks:
            by_bench.setdefault(r.benchmark, []).append(r)
    tables = []
    for bench in sorted(by_bench):
        recs = by_bench[bench]
        first = recs[0]
        main = first.task.main_score
        hib = first.task.higher_is_better.get(main, True)
        cells: dict[tuple[str, float], Stat] = {}
        for r in sorted(recs, key=lambda r: (r.method.id, r.label_frac, r.seed)):
            stat = cells.setdefault((r.method.id, r.label_frac), Stat(status="n/a"))
            if r.status == "ok" and r.main_score is not None:
                stat.scores.append(float(r.main_score))
                stat.seeds.append(r.seed)
                stat.status = "ok"
            elif r.status == "failed":
                stat.failed += 1
                if stat.status != "ok":
                    stat.status = "failed"
        fracs = sorted({r.label_frac for r in recs})
        methods = sorted({r.method.id for r in recs})
        ranks = _mean_ranks(cells, methods, fracs, hib)
        methods.sort(key=lambda m: (ranks[m] is None, ranks[m] or 0.0, m))
        versions = {f"{r.method.id}": r.method.version for r in recs}
        versions["ssl-bench"] = ",".join(sorted({r.ssl_bench_version for r in recs}))
        versions[f"task:{first.task.id}"] = first.task.version
        versions[f"dataset:{first.dataset.id}"] = first.dataset.version
        tables.append(BoardTable(
            benchmark=bench, task=first.task.id, protocol=first.protocol, main_score=main,
            higher_is_better=hib, dataset=first.dataset.id,
            synthetic=any(r.synthetic for r in recs),
            profiles=sorted({r.profile for r in recs}), versions=versions,
            date=max(r.date for r in recs), fracs=fracs, methods=methods, cells=cells,
            ranks=ranks,
        ))
    return tables


def _mean_ranks(cells: dict[tuple[str, float], Stat], methods: list[str], fracs: list[float],
                higher_is_better: bool) -> dict[str, float | None]:
    """Mean over columns of each method's rank in the column; tied means share the average
    of the ranks they span (competition ranking would favour name order)."""
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    for frac in fracs:
        scored = [(cells[(m, frac)].mean, m) for m in methods
                  if (m, frac) in cells and cells[(m, frac)].n]
        sign = -1.0 if higher_is_better else 1.0
        values = sorted(sign * v for v, _ in scored)
        for value, m in scored:
            first = values.index(sign * value)
            last = len(values) - 1 - values[::-1].index(sign * value)
            ranks[m].append((first + last) / 2 + 1.0)
    return {m: (float(np.mean(r)) if r else None) for m, r in ranks.items()}


def _pct(frac: float) -> str:
    return f"{frac * 100:g}%"


def cell_text(stat: Stat | None, ci: bool = True) -> str:
    if stat is None:
        return "–"
    if stat.status == "n/a":
        return "n/a"
    if stat.n == 0:
        return f"failed ({stat.failed})"
    if stat.n == 1:  # one seed: no spread to report
        text = f"{stat.mean:.2f} (n=1)"
    else:
        text = f"{stat.mean:.2f} ± {stat.std:.2f} (n={stat.n})"
    interval = stat.ci
    if ci and interval is not None:
        text += f" [{interval[0]:.2f}, {interval[1]:.2f}]"
    if stat.failed:
        text += f" +{stat.failed} failed"
    return text


def _title(t: BoardTable) -> str:
    arrow = "↑" if t.higher_is_better else "↓"
    synth = " — SYNTHETIC data" if t.synthetic else ""
    return (f"{t.benchmark}: {t.task} ({t.protocol}) on {t.dataset}, main score {t.main_score} "
            f"{arrow}{synth}")


def _provenance(t: BoardTable) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(t.versions.items()))
    return (f"profile: {', '.join(t.profiles)}; synthetic: {str(t.synthetic).lower()}; "
            f"latest record: {t.date}; versions: {versions}")


def render_markdown(tables: list[BoardTable]) -> str:
    lines = ["# ssl-bench leaderboard", "",
             "Cells: mean ± sample std over seeds (n = seeds) [95% CI of the mean]; **bold** = "
             "best per column; rank = mean rank over label fractions.", ""]
    for t in tables:
        lines += [f"## {_title(t)}", "", _provenance(t), ""]
        header = ["rank", "method"] + [_pct(f) for f in t.fracs]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * len(header)) + "|")
        for m in t.methods:
            rank = t.ranks[m]
            row = [f"{rank:.1f}" if rank is not None else "–", m]
            for f in t.fracs:
                text = cell_text(t.cells.get((m, f)))
                row.append(f"**{text}**" if m in t.best(f) else text)
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def _rows(tables: list[BoardTable]) -> list[dict[str, Any]]:
    rows = []
    for t in tables:
        for m in t.methods:
            for f in t.fracs:
                stat = t.cells.get((m, f))
                if stat is None:
                    continue
                interval = stat.ci
                rows.append({
                    "benchmark": t.benchmark, "task": t.task, "protocol": t.protocol,
                    "method": m, "label_frac": f, "metric": t.main_score,
                    "higher_is_better": t.higher_is_better, "status": stat.status,
                    "mean": None if not stat.n else round(stat.mean, 6),
                    "std": None if not stat.n else round(stat.std, 6), "n": stat.n,
                    "ci95_low": None if interval is None else round(interval[0], 6),
                    "ci95_high": None if interval is None else round(interval[1], 6),
                    "failed": stat.failed, "best": m in t.best(f),
                    "rank": None if t.ranks[m] is None else round(t.ranks[m], 3),
                    "synthetic": t.synthetic, "profiles": ",".join(t.profiles),
                })
    return rows


def render_csv(tables: list[BoardTable]) -> str:
    import pandas as pd

    return pd.DataFrame(_rows(tables)).to_csv(index=False, lineterminator="\n")


def render_json(tables: list[BoardTable]) -> str:
    return json.dumps({"tables": [
        {"benchmark": t.benchmark, "title": _title(t), "provenance": _provenance(t),
         "versions": t.versions, "date": t.date} for t in tables],
        "rows": _rows(tables)}, indent=2, sort_keys=True) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(a, b)
    return text.replace("±", r"$\pm$").replace("–", "--")


def render_latex(tables: list[BoardTable]) -> str:
    out = []
    for t in tables:
        cols = "l" * (2 + len(t.fracs))
        out += [f"% {_title(t)}", f"% {_provenance(t)}", f"\\begin{{tabular}}{{{cols}}}",
                "\\toprule",
                " & ".join(["Rank", "Method"] + [_latex_escape(_pct(f)) for f in t.fracs])
                + r" \\", "\\midrule"]
        for m in t.methods:
            rank = t.ranks[m]
            row = [f"{rank:.1f}" if rank is not None else "--", _latex_escape(m)]
            for f in t.fracs:
                text = _latex_escape(cell_text(t.cells.get((m, f)), ci=False))
                row.append(f"\\textbf{{{text}}}" if m in t.best(f) else text)
            out.append(" & ".join(row) + r" \\")
        out += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(out)


def render_html(tables: list[BoardTable], plots: dict[str, str] | None = None) -> str:
    from ssl_bench.leaderboard_html import render_page

    return render_page(tables, plots or {})


def plot_label_efficiency(t: BoardTable, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for m in t.methods:
        xs, ys, es = [], [], []
        for f in t.fracs:
            stat = t.cells.get((m, f))
            if stat is not None and stat.n:
                xs.append(f * 100)
                ys.append(stat.mean)
                es.append(stat.std)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("label fraction (%)")
    ax.set_ylabel(t.main_score)
    ax.set_title(t.benchmark + (" (synthetic)" if t.synthetic else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)


RENDERERS = {"md": ("leaderboard.md", render_markdown), "csv": ("leaderboard.csv", render_csv),
             "json": ("leaderboard.json", render_json), "latex": ("leaderboard.tex", render_latex)}
FORMATS = ("md", "csv", "json", "html", "latex")


def write_outputs(tables: list[BoardTable], out: Path, formats: list[str]) -> list[Path]:
    for fmt in formats:
        if fmt not in FORMATS:
            raise SSLBenchError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    plots: dict[str, str] = {}
    for t in tables:
        png = out / f"{t.benchmark}-label-efficiency.png"
        plot_label_efficiency(t, png)
        plots[t.benchmark] = png.name
        written.append(png)
    for fmt in formats:
        if fmt == "html":
            path = out / "leaderboard.html"
            atomic.write_text(path, render_html(tables, {b: str(out / p) for b, p in plots.items()}))
        else:
            name, render = RENDERERS[fmt]
            path = out / name
            atomic.write_text(path, render(tables))
        written.append(path)
    return written


def write_run_leaderboard(results: Path, benchmarks: list[str]) -> str:
    """Called at the end of ``ssl-bench run``: write md/csv/json/png under results/leaderboard
    for every record there, and return the markdown of the benchmarks just run."""
    records, warnings = iter_records(results)
    for w in warnings:
        print(f"warning: {w}")
    tables = build_tables(records)
    write_outputs(tables, results / "leaderboard", ["md", "csv", "json"])
    return render_markdown([t for t in tables if t.benchmark in benchmarks])


def leaderboard_main(results: Path, formats: list[str], out: Path | None, check: bool) -> None:
    import click

    if not results.exists():
        raise SSLBenchError(f"results directory {results} does not exist; run `ssl-bench run` "
                            "first or pass --results DIR")
    records, warnings = iter_records(results)
    for w in warnings:
        click.echo(f"warning: skipped {w}", err=True)
    if not records:
        raise SSLBenchError(f"no records under {results / 'records'}; run `ssl-bench run` first")
    tables = build_tables(records)
    out = out or results / "leaderboard"
    if check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write_outputs(tables, Path(tmp), formats)
            stale = []
            for path in fresh:
                if path.suffix == ".png":
                    if not (out / path.name).exists():
                        stale.append(path.name)
                    continue
                target = out / path.name
                if not target.exists() or target.read_text() != path.read_text():
                    stale.append(path.name)
        if stale:
            raise SSLBenchError(f"leaderboard files in {out} differ from the records: "
                                f"{', '.join(stale)}; regenerate them with `ssl-bench leaderboard "
                                f"--results {results} --out {out} --format {','.join(formats)}`")
        click.echo(f"{out}: up to date with {len(records)} records")
        return
    for path in write_outputs(tables, out, formats):
        click.echo(str(path))
    if "md" in formats:
        click.echo(render_markdown(tables))


__all__ = ["build_tables", "render_markdown", "write_outputs", "leaderboard_main", "html"]
