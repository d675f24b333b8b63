"""``ssl-bench run``: plan cells, pretrain, evaluate, write records and the leaderboard."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="run")
@click.option("--methods", default="all", show_default=True, help="`all` or comma-separated method ids.")
@click.option("--benchmarks", default="all", show_default=True,
              help="`all` or comma-separated benchmark ids.")
@click.option("--label-frac", "label_frac", default=None,
              help="Label fraction(s) in (0, 1], comma-separated. Default: each benchmark's own.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--profile", type=click.Choice(["smoke", "cpu", "paper"]), default=None,
              help="Budget profile. Default: cpu without a GPU, paper with one.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder holding real datasets as <root>/<dataset-id>/. "
                   "Default: the embedded synthetic suite.")
@click.option("--synthetic-size", type=click.Choice(["small", "default"]), default="default",
              show_default=True, help="Size of the synthetic suite when no --data-root is given.")
@click.option("--results", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Results directory (records, caches, leaderboard).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Cells evaluated in parallel processes.")
@click.option("--dry-run", is_flag=True, help="Print the plan (cached / to compute) and stop.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def run_command(methods: str, benchmarks: str, label_frac: str | None, seeds: str,
                profile: str | None, data_root: Path | None, synthetic_size: str,
                results: Path, device: str, jobs: int, dry_run: bool, quiet: bool) -> None:
    """Run methods x benchmarks x label fractions x seeds; resume skips finished cells.

    \b
    Examples:
      ssl-bench run --methods all --label-frac 0.01
      ssl-bench run --methods distill-self,moco-v2 --benchmarks cholec80-phase --seeds 0
      ssl-bench run --data-root /data --profile paper --label-frac 0.01,0.05,0.1
      ssl-bench run --profile smoke --dry-run
    """
    from ssl_bench.engine.sweep import RunOptions, run_sweep

    options = RunOptions.from_cli(
        methods=methods, benchmarks=benchmarks, label_frac=label_frac, seeds=seeds,
        profile=profile, data_root=data_root, synthetic_size=synthetic_size, results=results,
        device=device, jobs=jobs, dry_run=dry_run, quiet=quiet,
    )
    code = run_sweep(options)
    if code:
        raise SystemExit(code)
