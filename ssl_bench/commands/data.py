"""``ssl-bench data``: write the synthetic suite, check, prepare and describe datasets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ssl_bench.errors import SSLBenchError


def _dataset(name: str, root: Path, options: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    from ssl_bench.plugins import get_registries

    cls = get_registries().datasets.get(name)
    if not root.exists():
        raise SSLBenchError(f"dataset root {root} does not exist; pass the folder that holds "
                            f"the {name} files")
    opts = {}
    for item in options:
        if "=" not in item:
            raise SSLBenchError(f"--option {item!r}: use KEY=VALUE, e.g. --option split=40/40")
        key, value = item.split("=", 1)
        opts[key] = value
    return cls(root, opts)


@click.group(name="data")
def data_group() -> None:
    """Write the embedded synthetic suite; check, prepare and describe real datasets.

    \b
    Examples:
      ssl-bench data synth
      ssl-bench data check cholec80 /data/cholec80
      ssl-bench data prepare cholecseg8k /data/cholecseg8k --size 224
      ssl-bench data info btcv /data/btcv
    """


@data_group.command(name="synth")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to write into (default: the user cache dir, printed).")
@click.option("--size", type=click.Choice(["small", "default"]), default="default",
              show_default=True, help="small: seconds to write (tests); default: the make-run suite.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth_command(out: Path | None, size: str, seed: int) -> None:
    """Write the synthetic datasets in their real layouts (deterministic in --seed)."""
    from ssl_bench.paths import synthetic_root

    from ssl_bench.synthetic_suite import ensure_synthetic

    root = out or synthetic_root(size)
    written = ensure_synthetic(root, size, seed, log=lambda m: click.echo(m, err=True))
    for name, path in written.items():
        click.echo(f"{name}\t{path}")


@data_group.command(name="check")
@click.argument("name")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--option", "options", multiple=True, help="Reader option KEY=VALUE.")
def check_command(name: str, root: Path, options: tuple[str, ...]) -> None:
    """Validate a dataset layout; every problem is reported with its file (and line)."""
    dataset = _dataset(name, root, options)
    problems = dataset.check()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SSLBenchError(f"{name} at {root}: {len(problems)} problem(s) found (listed above); "
                            "fix them and run `ssl-bench data check` again")
    click.echo(f"{name} at {root}: OK")


@data_group.command(name="prepare")
@click.argument("name")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--size", type=int, default=64, show_default=True, help="Square frame size.")
@click.option("--fps", type=float, default=1.0, show_default=True, help="Video sampling rate.")
@click.option("--option", "options", multiple=True, help="Reader option KEY=VALUE.")
def prepare_command(name: str, root: Path, size: int, fps: float, options: tuple[str, ...]) -> None:
    """Decode videos / resample volumes into the on-disk caches."""
    from rich.progress import Progress

    dataset = _dataset(name, root, options)
    units = dataset.units()
    with Progress(transient=True) as progress:
        task = progress.add_task(f"preparing {name}", total=len(units))
        for unit in units:
            dataset.load(unit, size=size, fps=fps)
            progress.advance(task)
    click.echo(f"{name}: {len(units)} units cached under {dataset.cache_dir}")


@data_group.command(name="info")
@click.argument("name")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--option", "options", multiple=True, help="Reader option KEY=VALUE.")
def info_command(name: str, root: Path, options: tuple[str, ...]) -> None:
    """Units per split, classes and frame counts."""
    click.echo(json.dumps(_dataset(name, root, options).info(), indent=2))
