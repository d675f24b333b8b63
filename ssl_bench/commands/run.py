"""``ssl-bench run``: plan cells, pretrain, evaluate, write records and the leaderboard."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="run")
@click.option("--methods", default="all", show_default=True, help="`all` or comma-separated method ids.")
@click.option("--benchmarks", default="default", show_default=True,
              help="`default` (the benchmarks of the default run), `all` or comma-separated "
                   "benchmark ids.")
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
def run_command(methods: str, benchmarks: str, label_frac: str | None, seeds: str,
                profile: str | None, data_root: Path | None, synthetic_size: str,
                results: Path, device: str, jobs: int, dry_run: bool, quiet: bool,
                executor: str = "none", slurm_partition: str | None = None,
                gpus_per_job: int = 0, cpus_per_job: int | None = None, slurm_time: int = 240,
                slurm_mem: str | None = None, launcher: str = "none") -> None:
    """Run methods x benchmarks x label fractions x seeds; resume skips finished cells.

    \b
    Examples:
      ssl-bench run --methods all --label-frac 0.01
      ssl-bench run --methods distill-self,moco-v2 --benchmarks cholec80-phase --seeds 0
      ssl-bench run --data-root /data --profile paper --label-frac 0.01,0.05,0.1
      ssl-bench run --profile smoke --dry-run
      torchrun --nproc_per_node 4 -m ssl_bench.engine.distributed --methods moco-v2
      ssl-bench run --executor slurm --slurm-partition gpu --gpus-per-job 4
    """
    from ssl_bench.engine.sweep import RunOptions, run_sweep

    options = RunOptions.from_cli(
        methods=methods, benchmarks=benchmarks, label_frac=label_frac, seeds=seeds,
        profile=profile, data_root=data_root, synthetic_size=synthetic_size, results=results,
        device=device, jobs=jobs, dry_run=dry_run, quiet=quiet, launcher=launcher,
    )
    if executor != "none" and not dry_run:
        from ssl_bench.engine.executors import ExecutorOptions, run_with_executor

        code = run_with_executor(options, ExecutorOptions(
            kind=executor, partition=slurm_partition, gpus_per_job=gpus_per_job,
            cpus_per_job=cpus_per_job, time_min=slurm_time, mem=slurm_mem))
    else:
        code = run_sweep(options)
    if code:
        raise SystemExit(code)
