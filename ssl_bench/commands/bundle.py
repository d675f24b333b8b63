"""``ssl-bench export`` and ``ssl-bench import``: result bundles (:mod:`ssl_bench.bundle`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click


def _ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [i.strip() for i in text.split(",") if i.strip()] or None


@click.command(name="export")
@click.option("--results", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Results directory holding the records.")
@click.option("--methods", default=None,
              help="Comma-separated method ids to export (default: every method).")
@click.option("--benchmarks", default=None,
              help="Comma-separated benchmark ids to export (default: every benchmark).")
@click.option("--with-checkpoints", is_flag=True,
              help="Include the pretraining checkpoints' weights (safetensors), not only "
                   "their sidecars and content hashes.")
@click.option("--run-file", type=click.Path(path_type=Path),
              default=None, help="The run file (`ssl-bench run --config`) to include.")
@click.option("--verification", "verifications", type=click.Path(path_type=Path),
              multiple=True, help="A verification of these records (`ssl-bench verify "
                                  "--record`) to include; repeatable.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The bundle to write (a .tar.gz file).")
def export_command(results: Path, methods: str | None, benchmarks: str | None,
                   with_checkpoints: bool, run_file: Path | None,
                   verifications: tuple[Path, ...], output: Path) -> None:
    """Write a result bundle: the records with their environments, the sidecars (content
    hashes, configs) of the checkpoints they read, the run file, the lock file's hash and a
    manifest with the SHA-256 of every member. Anyone can check it with `ssl-bench import`.

    \b
    Examples:
      ssl-bench export -o results.tar.gz
      ssl-bench export --methods simclr,random-init --benchmarks btcv-organ -o btcv.tar.gz
      ssl-bench export --with-checkpoints --run-file run.yaml -o full.tar.gz
    """
    from ssl_bench.bundle import export_bundle

    args = ["export", "--results", str(results)]
    args += ["--methods", methods] if methods else []
    args += ["--benchmarks", benchmarks] if benchmarks else []
    args += ["--with-checkpoints"] if with_checkpoints else []
    args += ["--run-file", str(run_file)] if run_file else []
    for v in verifications:
        args += ["--verification", str(v)]
    command = "ssl-bench " + shlex.join(args + ["-o", str(output)])
    bundle = export_bundle(results, output, _ids(methods), _ids(benchmarks), with_checkpoints,
                           run_file, command, list(verifications))
    sidecars = sum(1 for n in bundle.small if n.startswith("checkpoints/"))
    click.echo(f"{output}: {len(bundle.records)} records, {sidecars} checkpoint sidecars, "
               f"{len(bundle.weights)} checkpoint weights")


@click.command(name="import")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--to", "target", type=click.Path(path_type=Path), required=True,
              help="An empty (or new) folder to unpack the checked bundle into.")
def import_command(bundle: Path, target: Path) -> None:
    """Check a result bundle and unpack it: every member must match the SHA-256 in its
    manifest, be a regular file with a plain relative name, and stay within the size limits;
    otherwise nothing is written. Records whose method or task is not installed here are
    named (they can be tabulated, not re-run).

    \b
    Examples:
      ssl-bench import results.tar.gz --to their-results
      ssl-bench leaderboard --results their-results
    """
    from ssl_bench.bundle import import_bundle
    from ssl_bench.plugins import get_registries

    read = import_bundle(bundle, target)
    regs = get_registries()
    for line in read.missing_plugins(set(regs.methods.ids()), set(regs.tasks.ids())):
        click.echo(f"note: {line}")
    sidecars = sum(1 for n in read.small if n.startswith("checkpoints/"))
    click.echo(f"{target}: {len(read.records)} records, {sidecars} checkpoint sidecars, "
               f"{len(read.weights)} checkpoint weights, checked against the manifest; "
               f"tabulate them with `ssl-bench leaderboard --results {target}`")
