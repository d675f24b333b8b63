"""``ssl-bench leaderboard``: tables and plots generated from result records only."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="leaderboard")
@click.option("--results", "results", type=click.Path(path_type=Path), multiple=True,
              help="Results directory holding the records, or a bundle (`ssl-bench export`); "
                   "repeat it to merge folders and bundles into one board (each row names its "
                   "source; needs --out).  [default: results]")
@click.option("--format", "formats", default="md", show_default=True,
              help="Comma-separated: md, csv, json, html, latex.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to write tables and plots into (default: RESULTS/leaderboard).")
@click.option("--baseline", default=None,
              help="Comma-separated reference rows of the paired comparison: one "
                   "difference, CI and Holm p-value column per baseline, each its own Holm "
                   "family; a table without one skips it with a note.  "
                   "[default: random-init,bn-adapt]")
@click.option("--latex-columns", default=None,
              help="Comma-separated columns of the LaTeX tables, in order: rank, method, "
                   "score, ci, delta, delta-ci, p, rank-ci, health (score, ci, delta, "
                   "delta-ci, p and rank-ci repeat under each label setting).  "
                   "[default: rank,method,score,delta]")
@click.option("--check", is_flag=True,
              help="Exit non-zero if the files in --out differ from what the records give.")
def leaderboard_command(results: tuple[Path, ...], formats: str, out: Path | None,
                        baseline: str | None, latex_columns: str | None, check: bool) -> None:
    """Build leaderboards from result records: mean ± std over seeds with a 95% CI, the
    paired difference to each baseline row (hierarchical bootstrap over seeds and test units,
    Holm-adjusted p-value, significance mark, rank interval), a caveat where seeds share a
    pretraining run, encoder health, published rows, and a summary across benchmarks (mean
    rank, Friedman test, critical-difference diagram).

    \b
    Examples:
      ssl-bench leaderboard
      ssl-bench leaderboard --format md,csv,html --out leaderboards
      ssl-bench leaderboard --out leaderboards --check
      ssl-bench leaderboard --baseline imagenet
      ssl-bench leaderboard --baseline random-init,bn-adapt,imagenet
      ssl-bench leaderboard --format latex --latex-columns method,score,delta,p
      ssl-bench leaderboard --results ours --results theirs.tar.gz --out merged
    """
    from ssl_bench.leaderboard import leaderboard_main

    leaderboard_main(list(results) or [Path("results")],
                     [f.strip() for f in formats.split(",") if f.strip()], out, check, baseline,
                     latex_columns)
