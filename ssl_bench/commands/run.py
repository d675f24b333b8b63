"""``ssl-bench run``: plan cells, pretrain, evaluate, write records and the leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ssl_bench.errors import SSLBenchError


def _apply_run_file(ctx: click.Context, path: Path, params: dict[str, Any]) -> list[str]:
    """Fill the options not given on the command line from a run file; returns its override
    strings."""
    from ssl_bench.overrides import read_run_file

    options, overrides = read_run_file(path)
    command = ctx.command
    by_name = {p.name: p for p in command.params if p.name}
    names = set(by_name)
    for key, value in options.items():
        if key not in names or key in ("config", "overrides"):
            valid = ", ".join(sorted(n.replace("_", "-") for n in names
                                     if n not in ("config", "overrides")))
            raise SSLBenchError(f"--config {path}: unknown run option {key!r}; valid: {valid}")
        if key == "checkpoints":
            # NAME=PATH[:ARCH] strings, checkpoint list files, or mappings of checkpoint keys
            # (relative paths from the run file's folder): added to the command line's
            items = value if isinstance(value, list) else [value]
            params[key] = (*params[key], *(i if isinstance(i, dict) else str(i) for i in items))
            params["checkpoints_base"] = Path(path).parent
        elif ctx.get_parameter_source(key) is click.core.ParameterSource.DEFAULT:
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            params[key] = _option_value(by_name[key], value, path)
    return overrides


def _option_value(param: click.Parameter, value: Any, path: Path) -> Any:
    """A run file's value as the command line would give it: through the option's own type
    (a flag's bool, an int option's int, a path, a choice); everything else as text."""
    if isinstance(param, click.Option) and param.is_flag:
        if not isinstance(value, bool):
            raise SSLBenchError(f"--config {path}: {param.name} is a flag; write true or false")
        return value
    try:
        return param.type.convert(str(value), param, None)
    except click.BadParameter as exc:
        raise SSLBenchError(f"--config {path}: {param.name}: {exc.message}") from None


@click.command(name="run")
@click.option("--methods", default="all", show_default=True,
              help="`all` or comma-separated method ids.")
@click.option("--benchmarks", default="default", show_default=True,
              help="`default` (the benchmarks of the default run), `all` or comma-separated "
                   "benchmark ids. `default`/`all` skip, with a note, benchmarks whose data is "
                   "missing.")
@click.option("--pool-with", "pool_with", default=None, metavar="BENCHMARKS",
              help="Comma-separated benchmark ids whose datasets join the pretraining pools "
                   "(and whose val/test recordings are held out of them) without being "
                   "evaluated: re-creates the pools, so the checkpoints, of a run with more "
                   "benchmarks (`ssl-bench verify` passes it).")
@click.option("--label-frac", "label_frac", default=None,
              help="Label fraction(s) in (0, 1], comma-separated. Default: each benchmark's own.")
@click.option("--label-count", "label_count", default=None,
              help="Number(s) of labelled training units (videos, clips, volumes), "
                   "comma-separated, e.g. 2,4,8; nested and stratified like fractions. "
                   "Default: each benchmark's own.")
@click.option("--seeds", default=None,
              help="Comma-separated seeds. Default: 0,1,2,3,4 with the cpu profile, 0,1,2 with "
                   "smoke and paper.")
@click.option("--pretraining", type=click.Choice(["per-seed", "shared"]), default=None,
              help="per-seed: seed s pretrains its own checkpoint with seed s (the seeds' "
                   "spread includes the pretraining's); shared: every seed reads one "
                   "pretraining run per method (seed 0), and the tables say so. Default: "
                   "per-seed with the smoke and cpu profiles, shared with paper.")
@click.option("--profile", type=click.Choice(["smoke", "cpu", "paper"]), default=None,
              help="Budget profile. Default: paper on a GPU with --data-root, cpu otherwise "
                   "(the synthetic suite runs cpu on every device).")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Folder holding real datasets as <root>/<dataset-id>/. "
                   "Default: the embedded synthetic suite.")
@click.option("--synthetic-size", type=click.Choice(["small", "default"]), default="default",
              show_default=True, help="Size of the synthetic suite when no --data-root is given.")
@click.option("--results", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Results directory (records, caches, leaderboard).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Numeric precision of pretraining, feature extraction and downstream "
                   "training: bf16/fp16 run forward passes under autocast (fp16 with loss "
                   "scaling; CUDA only). Enters the cell identity. Default: bf16 on a CUDA "
                   "device that supports it, fp32 otherwise.")
@click.option("--compile", is_flag=True,
              help="torch.compile the pretraining model (worth it for long GPU runs; the "
                   "first steps are slower while it compiles).")
@click.option("--jobs", default="auto", show_default=True, envvar="SSL_BENCH_JOBS",
              help="Worker processes that run the pretrainings and cells (each cell after its "
                   "pretraining); 1: everything in this process. auto: one per CPU core (at "
                   "most one per 3 GiB of memory), 1 on a GPU. Env: SSL_BENCH_JOBS.")
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config override, repeatable: METHOD.SETTING=VALUE (e.g. "
                   "simclr.max_steps=500) or task.TASK.SETTING=VALUE (e.g. "
                   "task.phase-recognition.epochs=50). Checked against the Config models; "
                   "enters the config hash.")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="YAML run file: any of these options (long names) plus `overrides` (a list "
                   "of KEY=VALUE or a mapping). Command-line options win.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="NAME=PATH[:ARCH]",
              help="Evaluate a weights file as a row NAME (repeatable): any timm architecture "
                   "ARCH, .pth/.pt/.safetensors loaded safely; or a YAML file listing them.")
@click.option("--strict-plugins", is_flag=True,
              help="Stop when a plugin fails to load, instead of warning and going on.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan (reused / to compute, and why) and its estimate per stage "
                   "(cells, pretraining runs, frames to decode, cache disk, time), with the "
                   "paper profile (or on CUDA) also the pretrainings' FLOPs and GPU-hours and "
                   "the throughput they assume, and stop.")
@click.option("--quiet", is_flag=True,
              help="No progress display or ETA; failures are still printed.")
@click.option("--executor", type=click.Choice(["none", "local", "slurm"]), default="none",
              show_default=True,
              help="none: in this process; local: submitit jobs as subprocesses here; slurm: "
                   "submitit jobs on SLURM (pretraining first, then the cells). docs/cluster.md")
@click.option("--slurm-partition", default=None, help="SLURM partition (sbatch --partition).")
@click.option("--gpus-per-job", type=int, default=0, show_default=True,
              help="GPUs of a pretraining job; above 1 it runs one DDP rank per GPU.")
@click.option("--cpus-per-job", type=int, default=None,
              help="CPUs per job task (sbatch --cpus-per-task; torch threads).")
@click.option("--slurm-time", type=int, default=240, show_default=True,
              help="Time limit of a job in minutes (sbatch --time).")
@click.option("--slurm-mem", default=None,
              help="Memory per node of a job, e.g. 32G (sbatch --mem).")
@click.option("--launcher", type=click.Choice(["none", "pytorch", "slurm"]), default="none",
              show_default=True,
              help="pytorch: this process is one rank under torchrun; slurm: one task under srun. "
                   "Pretraining runs DDP over all ranks; rank 0 writes checkpoints and records.")
@click.pass_context
def run_command(ctx: click.Context, **params: Any) -> None:
    """Run methods x benchmarks x label settings x seeds; resume reuses a record only when
    everything that can change its score is unchanged.

    \b
    Examples:
      ssl-bench run --methods all --label-frac 0.01
      ssl-bench run --methods distill-self,moco-v2 --benchmarks cholec80-phase --seeds 0
      ssl-bench run --data-root /data --profile paper --label-count 2,4,8
      ssl-bench run -o simclr.max_steps=500 -o task.phase-recognition.epochs=50
      ssl-bench run --checkpoint endovit=/weights/endovit.pth:vit_base_patch16_224
      ssl-bench run --config run.yaml --dry-run
      torchrun --nproc_per_node 4 -m ssl_bench.torchrun --methods moco-v2
      ssl-bench run --executor slurm --slurm-partition gpu --gpus-per-job 4
    """
    import os

    from ssl_bench.engine.plan import RunOptions
    from ssl_bench.overrides import check_overrides, parse_overrides
    from ssl_bench.plugins import load_failure_lines, resolved_registries

    override_items = list(params.pop("overrides"))
    config_path = params.pop("config")
    if config_path is not None:
        override_items = _apply_run_file(ctx, config_path, params) + override_items
    checkpoints = params.pop("checkpoints")
    checkpoints_base = params.pop("checkpoints_base", None)
    if checkpoints:
        from ssl_bench.checkpoints import register_checkpoints

        names = register_checkpoints(list(checkpoints), checkpoints_base)
        if params["methods"].strip() != "all":  # every checkpoint is a row of the run
            params["methods"] = ",".join([params["methods"], *names])
    regs = resolved_registries()  # classes registered by path: imported, or load failures
    failures = load_failure_lines()
    if failures and params["strict_plugins"]:
        raise SSLBenchError(failures[0] + " (--strict-plugins)")
    for line in failures:
        click.echo(f"warning: {line}", err=True)
    method_overrides, task_overrides = parse_overrides(override_items)
    check_overrides(regs, method_overrides, task_overrides)
    options = RunOptions.from_cli(
        methods=params["methods"], benchmarks=params["benchmarks"],
        pool_with=params["pool_with"], label_frac=params["label_frac"],
        label_count=params["label_count"],
        seeds=None if params["seeds"] is None else str(params["seeds"]), profile=params["profile"],
        data_root=Path(params["data_root"]) if params["data_root"] else None,
        synthetic_size=params["synthetic_size"], results=Path(params["results"]),
        device=params["device"], jobs=params["jobs"], dry_run=bool(params["dry_run"]),
        quiet=bool(params["quiet"]), launcher=params["launcher"],
        pretraining=params["pretraining"], precision=params["precision"],
        compile=bool(params["compile"]), method_overrides=method_overrides,
        task_overrides=task_overrides,
        debug=(bool(ctx.find_root().params.get("debug"))
               or os.environ.get("SSL_BENCH_DEBUG") == "1"),
    )
    from ssl_bench.invocations import launcher_rank, write_invocation

    if (not options.dry_run and launcher_rank(options.launcher) == 0
            and (options.results.is_dir() or not options.results.exists())):
        # (a --results that is a file is the engine's one-line error, not this write's)
        root = ctx.find_root().obj
        argv = root.get("argv") if isinstance(root, dict) else None
        write_invocation(options.results, argv if argv is not None else sys.argv[1:],
                         config_path)
    executor = params["executor"]
    if options.launcher != "none" and not options.dry_run:
        from ssl_bench.engine.distributed import run_distributed

        report = run_distributed(options)
    elif executor != "none" and not options.dry_run:
        from ssl_bench.engine.executors import ExecutorOptions, run_with_executor

        report = run_with_executor(options, ExecutorOptions(
            kind=executor, partition=params["slurm_partition"],
            gpus_per_job=int(params["gpus_per_job"]), cpus_per_job=params["cpus_per_job"],
            time_min=int(params["slurm_time"]), mem=params["slurm_mem"]))
    else:
        from ssl_bench.engine.sweep import run_sweep

        report = run_sweep(options)
    if report.leaderboard:  # the leaderboard of what ran: the command's, not the engine's
        from ssl_bench.leaderboard import write_run_leaderboard

        print(write_run_leaderboard(report.results, report.benchmarks))
    for line in report.notes:
        print(line, file=sys.stderr)
    if report.code:
        raise SystemExit(report.code)
