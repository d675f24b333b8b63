"""The ``ssl-bench`` command line (click).

Every user-facing error is one line naming the problem and the fix; ``--debug`` (or
``SSL_BENCH_DEBUG=1``) shows tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ssl_bench import __version__
from ssl_bench.errors import SSLBenchError


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  ssl-bench list
  ssl-bench run --methods all --label-frac 0.01
  ssl-bench leaderboard --results results --format md
  ssl-bench data synth""",
)
@click.version_option(__version__, prog_name="ssl-bench")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Benchmark self-supervised methods on surgical video and medical images with few labels."""
    # --debug is read by main() (tracebacks) and by the commands through the root context


def _registries() -> Any:
    from ssl_bench.plugins import get_registries, load_failure_lines

    for line in load_failure_lines():
        click.echo(f"warning: {line}", err=True)
    return get_registries()


def listing() -> dict[str, list[dict[str, Any]]]:
    """Everything the loaded plugins registered, as plain data (from the registered metadata:
    nothing registered by import path is imported)."""
    regs = _registries()
    out: dict[str, list[dict[str, Any]]] = {}
    # registered metadata only (Entry.meta / Entry.profiles): a class registered by path is
    # never imported here, so listing imports no torch
    out["methods"] = [
        {"id": e.id, "version": e.meta.version, "plugin": e.plugin, "kind": e.meta.kind,
         "name": e.meta.name, "paper": e.meta.paper, "pretrain_input": e.meta.pretrain_input,
         "provides": sorted(e.meta.provides), "domains": list(e.meta.domains),
         "profiles": sorted(e.profiles)}
        for e in regs.methods
    ]
    out["datasets"] = [
        {"id": e.id, "version": e.meta.version, "plugin": e.plugin, "name": e.meta.name,
         "modality": e.meta.modality, "domain": e.meta.domain,
         "classes": len(e.meta.classes), "license": e.meta.license}
        for e in regs.datasets
    ]
    out["tasks"] = [
        {"id": e.id, "version": e.meta.version, "plugin": e.plugin, "name": e.meta.name,
         "protocols": list(e.meta.protocols), "main_score": e.meta.main_score,
         "requires": list(e.meta.requires)}
        for e in regs.tasks
    ]
    out["benchmarks"] = [
        {"id": e.id, "version": e.obj.version, "plugin": e.plugin, "dataset": e.obj.dataset,
         "task": e.obj.task, "protocol": e.obj.protocol, "label_fracs": list(e.obj.label_fracs),
         "seeds": list(e.obj.seeds)}
        for e in regs.benchmarks
    ]
    out["conflicts"] = [
        {"kind": registry.kind, "id": id, "plugins": plugins}
        for registry in (regs.methods, regs.datasets, regs.tasks, regs.benchmarks)
        for id, plugins in sorted(registry.conflicts.items())
    ]
    return out


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def list_command(as_json: bool) -> None:
    """List methods, datasets, tasks and benchmarks, with versions and providing plugin.

    \b
    Examples:
      ssl-bench list
      ssl-bench list --json | jq '.methods[].id'
    """
    data = listing()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for conflict in data.pop("conflicts"):
        click.echo(f"warning: {conflict['kind']} id {conflict['id']!r} is registered by "
                   f"{' and by '.join(conflict['plugins'])}; commands using it fail until one "
                   "is uninstalled or excluded with SSL_BENCH_DISABLE_PLUGINS", err=True)
    for kind, rows in data.items():
        table = Table(title=kind)
        for col in ("id", "version", "plugin"):
            table.add_column(col)
        for row in rows:
            table.add_row(row["id"], str(row["version"]), row["plugin"])
        console.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List loaded plugins, their distributions and the hooks they implement.

    \b
    Examples:
      ssl-bench plugins
      SSL_BENCH_LOAD_PLUGINS=builtin-methods ssl-bench plugins --json
    """
    from ssl_bench.plugins import load_failures, loaded_plugins

    infos = [
        {"name": p.name, "distribution": p.distribution, "version": p.version,
         "module": p.module, "hooks": p.hooks}
        for p in loaded_plugins()
    ]
    failures = [{"name": f.name, "distribution": f.distribution, "error": f.error}
                for f in load_failures()]
    if as_json:
        click.echo(json.dumps({"plugins": infos, "failed": failures}, indent=2))
        return
    for info in infos:
        click.echo(f"{info['name']}  ({info['distribution']} {info['version']})  "
                   f"hooks: {', '.join(info['hooks'])}")
    for f in failures:
        click.echo(f"FAILED {f['name']} ({f['distribution']}): {f['error']}")


def _register_subcommands() -> None:
    from ssl_bench.commands import bundle, data, leaderboard, run, verify

    cli.add_command(run.run_command)
    cli.add_command(leaderboard.leaderboard_command)
    cli.add_command(bundle.export_command)
    cli.add_command(bundle.import_command)
    cli.add_command(verify.verify_command)
    cli.add_command(data.data_group)


_register_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors unless --debug."""
    from ssl_bench.plugins import get_plugin_manager

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("SSL_BENCH_DEBUG") == "1"
    try:
        get_plugin_manager().hook.register_commands(cli=cli)
        # obj: the arguments as given, for commands that record their own invocation
        cli.main(args=args, prog_name="ssl-bench", standalone_mode=False, obj={"argv": args})
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SSLBenchError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug or a plugin error outside a cell
        if debug:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                   err=True)
        sys.exit(1)
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            raise
        raise


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["cli", "main", "listing", "Path"]
