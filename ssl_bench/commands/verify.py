"""``ssl-bench verify``: re-run cells drawn from a bundle and compare (:mod:`ssl_bench.verify`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click


@click.command(name="verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--sample", type=click.IntRange(min=1), default=2, show_default=True,
              help="How many cells to draw and re-run.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the draw (the same seed re-runs the same cells).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder of the real datasets (synthetic records use the synthetic suite).")
@click.option("--synthetic-size", type=click.Choice(["small", "default"]), default="default",
              show_default=True, help="The synthetic suite the bundle's synthetic records used.")
@click.option("--tolerance", type=float, default=None,
              help="Largest |Δ| accepted where the environment differs (absolute, in the "
                   "metric's units). Default: the tolerance the cell's task declares; a task "
                   "that declares none wants such cells equal.")
@click.option("--work", type=click.Path(path_type=Path), default=None,
              help="Folder for the re-runs' results (default: a temporary folder).")
@click.option("--record", "record_path", type=click.Path(path_type=Path), default=None,
              help="Write the verification (draw, environment, per-cell verdicts) as JSON "
                   "here, for `ssl-bench export --verification`.")
def verify_command(bundle: Path, sample: int, seed: int, data_root: Path | None,
                   synthetic_size: str, tolerance: float | None, work: Path | None,
                   record_path: Path | None) -> None:
    """Check a result bundle by re-running cells drawn from it on the local data and
    comparing each main score with the bundle's: equal where the cell identity and the
    environment match, within --tolerance (or the task's declared tolerance) where only the
    environment differs. Prints a table
    (cell, claimed, re-run, Δ, verdict) and exits non-zero unless every cell matches.

    \b
    Examples:
      ssl-bench verify results.tar.gz --sample 2
      ssl-bench verify theirs.tar.gz --sample 5 --seed 1 --data-root /data --tolerance 0.5
      ssl-bench verify results.tar.gz --sample 2 --record verification.json
    """
    import contextlib
    import io
    import json
    import shlex

    from ssl_bench import atomic
    from ssl_bench.commands.run import run_command
    from ssl_bench.verify import verdict_table, verification_record, verify_bundle

    def rerun(args: list[str]) -> None:
        # one line per re-run says what is computing; the re-run's own one-cell leaderboard
        # would bury the verdict table, so its standard output is dropped (errors go to
        # stderr and into the cell's record)
        click.echo("re-running: ssl-bench run " + shlex.join(args), err=True)
        with contextlib.redirect_stdout(io.StringIO()):
            run_command.main(args=args, prog_name="ssl-bench run", standalone_mode=False)

    with tempfile.TemporaryDirectory(prefix="ssl-bench-verify-") as tmp:
        verdicts = verify_bundle(bundle, sample, seed, work or Path(tmp), rerun, data_root,
                                 synthetic_size, tolerance)
    click.echo(verdict_table(verdicts))
    if record_path is not None:
        atomic.write_text(record_path, json.dumps(
            verification_record(bundle, verdicts, sample, seed), indent=2, sort_keys=True) + "\n")
        click.echo(f"verification recorded in {record_path}")
    bad = [v for v in verdicts if v.verdict != "match"]
    if bad:
        click.echo(f"{len(bad)} of {len(verdicts)} re-run cell(s) do not match the bundle",
                   err=True)
        raise SystemExit(1)
    click.echo(f"{bundle}: all {len(verdicts)} re-run cells match")
