"""Leaderboards built from result records only: md, csv, json, latex, html and figures.

The tables and their statistics are :mod:`ssl_bench.board`; the text formats
:mod:`ssl_bench.leaderboard_text`, the page :mod:`ssl_bench.leaderboard_html` and the figures
:mod:`ssl_bench.leaderboard_plots`. This module writes them and implements
``ssl-bench leaderboard`` (including ``--check``, which regenerates everything and compares).
Outputs are deterministic functions of the records: the bootstraps are seeded per table.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ssl_bench import atomic
from ssl_bench.board import (
    DEFAULT_BASELINES,
    BoardTable,
    Summary,
    build_tables,
    parse_baselines,
    summarise,
)
from ssl_bench.board_sources import (
    MergedRecords,
    annotate,
    merge_sources,
    read_source,
    source_names,
)
from ssl_bench.errors import SSLBenchError
from ssl_bench.label_aliases import write_label_aliases
from ssl_bench.leaderboard_html import render_page, table_slugs
from ssl_bench.leaderboard_latex import parse_latex_columns, render_latex, render_table_latex
from ssl_bench.leaderboard_plots import plot_kind, plot_table
from ssl_bench.leaderboard_text import render_csv, render_json, render_markdown
from ssl_bench.records import CellRecord, iter_records

RENDERERS = {"md": ("leaderboard.md", render_markdown), "csv": ("leaderboard.csv", render_csv),
             "json": ("leaderboard.json", render_json), "latex": ("leaderboard.tex", render_latex)}
FORMATS = ("md", "csv", "json", "html", "latex")
CD_DIAGRAM = "cd-diagram.png"


def render_html(tables: list[BoardTable], plots: dict[int, str] | None = None,
                summary: Summary | None = None, cd_png: str | None = None,
                downloads: bool = False) -> str:
    return render_page(tables, plots or {}, summary, cd_png, downloads)


def plot_names(tables: list[BoardTable]) -> list[str]:
    """One figure file name per table: ``<benchmark>[-<n>]-<forest|label-efficiency>.png``."""
    return [f"{re.sub(r'[^A-Za-z0-9._-]', '_', slug)}-{plot_kind(t)}.png"
            for t, slug in zip(tables, table_slugs(tables))]


def write_table_downloads(tables: list[BoardTable], out: Path,
                          latex_columns: Sequence[str] | None = None) -> list[Path]:
    """Each table's own ``<slug>.csv`` and ``<slug>.tex`` beside the HTML page, which links to
    them (the "download" links of each section)."""
    written = []
    for i, slug in enumerate(table_slugs(tables)):
        csv_path, tex_path = out / f"{slug}.csv", out / f"{slug}.tex"
        atomic.write_text(csv_path, render_csv([tables[i]]))
        atomic.write_text(tex_path, render_table_latex(tables, i, latex_columns))
        written += [csv_path, tex_path]
    return written


def write_outputs(tables: list[BoardTable], out: Path, formats: list[str],
                  summary: Summary | None = None,
                  latex_columns: Sequence[str] | None = None) -> list[Path]:
    """Write ``formats`` (and the figures) into ``out``; ``latex_columns``: the columns of the
    LaTeX tables (:data:`ssl_bench.leaderboard_latex.LATEX_COLUMNS`; None: the default). The
    HTML page comes with each table's csv and tex beside it."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise SSLBenchError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    parse_latex_columns(latex_columns)  # an unknown column fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    written = []
    plots: dict[int, str] = {}
    for i, (t, name) in enumerate(zip(tables, plot_names(tables))):
        plot_table(t, out / name)
        plots[i] = str(out / name)
        written.append(out / name)
    cd_png = None
    if summary is not None and summary.critical_difference is not None:
        from ssl_bench.stats import plot_cd_diagram

        plot_cd_diagram(summary.mean_rank, summary.critical_difference, out / CD_DIAGRAM,
                        f"mean rank over {len(summary.benchmarks)} benchmarks (Nemenyi CD "
                        f"{summary.critical_difference:.2f})")
        cd_png = CD_DIAGRAM
        written.append(out / CD_DIAGRAM)
    for fmt in formats:
        if fmt == "html":
            path = out / "leaderboard.html"
            atomic.write_text(path, render_html(tables, plots, summary,
                                                str(out / cd_png) if cd_png else None,
                                                downloads=True))
            written += write_table_downloads(tables, out, latex_columns)
        elif fmt == "md":
            path = out / "leaderboard.md"
            atomic.write_text(path, render_markdown(tables, summary, cd_png))
        elif fmt == "latex":
            path = out / "leaderboard.tex"
            atomic.write_text(path, render_latex(tables, summary, latex_columns))
        else:
            name, render = RENDERERS[fmt]
            path = out / name
            atomic.write_text(path, render(tables, summary))
        written.append(path)
    return written


def write_run_leaderboard(results: Path, benchmarks: list[str],
                          baseline: str | Sequence[str] = DEFAULT_BASELINES) -> str:
    """Called at the end of ``ssl-bench run``: write md/csv/json/png under results/leaderboard
    for every record there, and return the markdown of the benchmarks just run. The
    baselines are those of ``ssl-bench leaderboard`` without ``--baseline``, so the run's
    board is the one that command writes. The copies of records whose label settings
    selected the same units are made first (:func:`ssl_bench.label_aliases.
    write_label_aliases`), so the board names every setting of the run."""
    write_label_aliases(results)
    records, warnings = iter_records(results)
    for w in warnings:
        print(f"warning: {w}")
    tables = build_tables(records, baseline=baseline)
    summary = summarise(tables)
    write_outputs(tables, results / "leaderboard", ["md", "csv", "json"], summary)
    return render_markdown([t for t in tables if t.benchmark in benchmarks], summary)


def _read_sources(paths: list[Path]) -> tuple[list[CellRecord], MergedRecords | None]:
    """The records of one results folder, or of several folders and bundles merged
    (:mod:`ssl_bench.board_sources`); warnings go to stderr."""
    import click

    if len(paths) == 1 and not paths[0].is_file():
        results = paths[0]
        if not results.exists():
            raise SSLBenchError(f"results directory {results} does not exist; run `ssl-bench "
                                "run` first or pass --results DIR")
        records, warnings = iter_records(results)
        for w in warnings:
            click.echo(f"warning: skipped {w}", err=True)
        if not records:
            raise SSLBenchError(f"no records under {results / 'records'}; run `ssl-bench run` "
                                "first")
        return records, None
    named = []
    verified = {}
    for name, path in zip(source_names(paths), paths):
        recs, warnings, verified[name] = read_source(path)
        for w in warnings:
            click.echo(f"warning: skipped {w}", err=True)
        if not recs:
            raise SSLBenchError(f"no records in {path}; pass a results folder with records or "
                                "a bundle written by `ssl-bench export`")
        named.append((name, recs))
    merged = merge_sources(named, verified)
    return merged.records, merged


def leaderboard_main(results: Path | Sequence[Path], formats: list[str], out: Path | None,
                     check: bool, baseline: str | Sequence[str] | None = None,
                     latex_columns: str | None = None) -> None:
    """``ssl-bench leaderboard``; ``results``: one results folder, or several folders and
    bundles to merge (then ``out`` is required). ``baseline``: one id, comma-separated ids or
    a list. None means the default baselines (:data:`ssl_bench.board.DEFAULT_BASELINES`), each
    skipped with a note where it has no row; a named baseline must have records somewhere (a
    table without it is still skipped with a note). ``latex_columns``: ``--latex-columns``."""
    import click

    paths = [results] if isinstance(results, Path) else list(results)
    if not paths:
        raise SSLBenchError("no --results given; pass a results folder or a bundle")
    for path in paths:
        if path.is_file() and not tarfile.is_tarfile(path):
            raise SSLBenchError(f"--results {path} is a file, not a results folder or a bundle; "
                                "pass the folder `ssl-bench run --results` wrote, or a bundle "
                                "written by `ssl-bench export`")
    if out is None and (len(paths) > 1 or paths[0].is_file()):
        raise SSLBenchError("a board of several sources or of a bundle needs --out DIR for its "
                            "files")
    records, merged = _read_sources(paths)
    given = " ".join(f"--results {p}" for p in paths)
    baselines = DEFAULT_BASELINES if baseline is None else parse_baselines(baseline)
    if baseline is not None:
        known = sorted({r.method.id for r in records})
        missing = [b for b in baselines if b not in known]
        if missing:
            raise SSLBenchError(f"--baseline {','.join(baselines)}: no records of "
                                f"{', '.join(missing)} in {', '.join(map(str, paths))}; name "
                                f"methods that "
                                f"have records ({', '.join(known)}) or leave --baseline out "
                                f"for the default ({','.join(DEFAULT_BASELINES)})")
    columns = parse_latex_columns(latex_columns) if latex_columns is not None else None
    tables = build_tables(records, baseline=baselines)
    if merged is not None:
        annotate(tables, merged)
    summary = summarise(tables)
    out = out or paths[0] / "leaderboard"
    if check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write_outputs(tables, Path(tmp), formats, summary, columns)
            stale = []
            for path in fresh:
                target = out / path.name
                if path.suffix == ".png":
                    if not target.exists():
                        stale.append(path.name)
                    continue
                if not target.exists() or target.read_text() != path.read_text():
                    stale.append(path.name)
        if stale:
            again = f" --baseline {','.join(baselines)}" if baseline is not None else ""
            again += f" --latex-columns {','.join(columns)}" if columns is not None else ""
            raise SSLBenchError(f"leaderboard files in {out} differ from the records: "
                                f"{', '.join(stale)}; regenerate them with `ssl-bench leaderboard "
                                f"{given} --out {out} --format {','.join(formats)}"
                                f"{again}`")
        click.echo(f"{out}: up to date with {len(records)} records")
        return
    for path in write_outputs(tables, out, formats, summary, columns):
        click.echo(str(path))
    if "md" in formats:
        click.echo(render_markdown(tables, summary, CD_DIAGRAM if summary else None))


__all__ = ["build_tables", "render_markdown", "render_html", "write_outputs", "leaderboard_main",
           "write_run_leaderboard", "summarise", "FORMATS"]
