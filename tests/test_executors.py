"""`ssl-bench run --executor local|slurm`: submitit jobs give the records of an in-process run."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ssl_bench.errors import SSLBenchError
from ssl_bench.records import iter_records
from ssl_bench.testing import cli_exit_code

RUN = ["run", "--methods", "dummy,dummy-init", "--benchmarks", "tiny-phase", "--label-frac", "0.5",
       "--seeds", "0", "--profile", "smoke", "--device", "cpu", "--quiet"]




def _records(results: Path) -> dict[tuple, tuple]:
    records, warnings = iter_records(results)
    assert not warnings
    return {r.key: (r.status, r.metrics, r.label_units, r.checkpoint) for r in records}


def test_local_executor_gives_the_in_process_records_and_resubmits_only_missing(
        testing_plugin, tmp_path, capsys) -> None:
    reference, jobs = tmp_path / "reference", tmp_path / "jobs"
    assert cli_exit_code(RUN + ["--results", str(reference)]) == 0
    expected = _records(reference)
    assert len(expected) == 2 and all(v[0] == "ok" for v in expected.values())

    capsys.readouterr()
    args = RUN[:-1] + ["--results", str(jobs), "--executor", "local", "--jobs", "2"]
    assert cli_exit_code(args) == 0
    err = capsys.readouterr().err
    assert err.count("submitted pretraining dummy") == 1 and err.count("submitted cell") == 2
    assert _records(jobs) == expected  # same metrics, label units and checkpoint ids
    # the jobs really ran in submitit's subprocesses: each left its result pickle and log
    assert len(list((jobs / "submitit").rglob("*_result.pkl"))) == 3
    checkpoints = list((jobs / "cache" / "checkpoints").rglob("*.safetensors"))
    assert len(checkpoints) == 1

    # a job that died leaves its cell without a record: a re-run submits that cell only
    victim = next((jobs / "records" / "tiny-phase" / "dummy").glob("*.json"))
    victim.unlink()
    assert cli_exit_code(args) == 0
    err = capsys.readouterr().err
    assert "submitted pretraining" not in err and err.count("submitted cell") == 1
    assert _records(jobs) == expected


def test_slurm_options_map_to_sbatch_flags(tmp_path, monkeypatch) -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    from ssl_bench.engine.executors import ExecutorOptions, configured_executor

    ex = ExecutorOptions(kind="slurm", partition="gpu", gpus_per_job=4, cpus_per_job=8,
                         time_min=90, mem="64G")
    with pytest.raises(SSLBenchError, match="srun/sbatch not found"):
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        configured_executor(ex, tmp_path / "jobs", "x", 1, 1)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch"):  # submitit only checks that they exist before submitting
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    pre = configured_executor(ex, tmp_path / "jobs", "ssl-bench-pretrain-moco-v2", 4, 4)
    cell = configured_executor(ex, tmp_path / "jobs", "ssl-bench-moco-v2-x", 1, 1, "afterok:42")
    pre_lines = set(_make_sbatch_string(command="python -m x", folder=str(tmp_path),
                                        **pre.parameters).splitlines())
    cell_lines = set(_make_sbatch_string(command="python -m x", folder=str(tmp_path),
                                         **cell.parameters).splitlines())
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --time=90", "#SBATCH --mem=64G", "#SBATCH --nodes=1"):
        assert line in pre_lines, line
    assert not any("dependency" in line for line in pre_lines)
    assert {"#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1",
            "#SBATCH --dependency=afterok:42", "#SBATCH --kill-on-invalid-dep=yes"} <= cell_lines


def test_executor_refuses_a_launcher(testing_plugin, tmp_path) -> None:
    from ssl_bench.engine.executors import ExecutorOptions, run_with_executor
    from ssl_bench.engine.plan import RunOptions

    options = RunOptions.from_cli(methods="dummy", benchmarks="tiny-phase", label_frac="0.5",
                                  seeds="0", profile="smoke", data_root=None,
                                  synthetic_size="small", results=tmp_path, device="cpu",
                                  jobs=1, dry_run=False, quiet=True, launcher="pytorch")
    with pytest.raises(SSLBenchError, match="drop --launcher"):
        run_with_executor(options, ExecutorOptions(kind="local"))
    assert not (tmp_path / "records").exists()


class _InlineJob:
    """A finished submitit-like job: runs the callable when submitted, in this process."""

    def __init__(self, fn, job_id: int) -> None:
        self.job_id = str(job_id)
        self._result, self._error = None, None
        try:
            self._result = fn()
        except Exception as exc:  # submitit re-raises the job's error from result()
            self._error = exc

    def done(self) -> bool:
        return True

    def result(self):
        if self._error is not None:
            raise self._error
        return self._result


def test_failed_pretraining_job_gives_failed_records_and_cells_follow_pretraining(
        testing_plugin, tmp_path, monkeypatch) -> None:
    from ssl_bench.engine import executors

    submitted: list[tuple[str, str | None]] = []

    class InlineExecutor:
        def __init__(self, name: str, dependency: str | None) -> None:
            self.name, self.dependency = name, dependency

        def submit(self, fn):
            submitted.append((self.name, self.dependency))
            return _InlineJob(fn, len(submitted))

    monkeypatch.setattr(executors, "configured_executor",
                        lambda ex, folder, name, tasks, gpus, dependency=None:
                        InlineExecutor(name, dependency))
    monkeypatch.setenv("SSL_BENCH_LOAD_PLUGINS", "")  # the inline jobs set it, as a worker does
    args = RUN[:-1] + ["--quiet", "--results", str(tmp_path), "--executor", "local"]
    args[args.index("dummy,dummy-init")] = "failing,dummy-init"
    assert cli_exit_code(args) == 1
    # one pretraining job (failing), run before any cell; dummy-init needs none
    assert [name for name, _ in submitted] == ["ssl-bench-pretrain-failing",
                                               "ssl-bench-dummy-init-tiny-phase"]
    by_method = {r.method.id: r for r in iter_records(tmp_path)[0]}
    assert by_method["dummy-init"].status == "ok"
    assert by_method["failing"].status == "failed"
    assert "pretraining failed" in by_method["failing"].error
    assert "always fails" in by_method["failing"].error


def test_a_failed_jobs_error_line_is_the_jobs_own_error() -> None:
    """submitit's FailedJobError carries the job's traceback between rules, then the paths of
    its logs: the one-line reason is the traceback's error line, not the last line."""
    from ssl_bench.engine.context import error_line

    class FailedJobError(RuntimeError):
        pass

    message = ("Job (task=0) failed during processing with trace:\n----------------------\n"
               "Traceback (most recent call last):\n  File \"job.py\", line 3, in run\n"
               "    raise ValueError('bad pool')\nValueError: bad pool\n"
               "----------------------\nYou can check full logs with 'job.stderr(0)' and "
               "'job.stdout(0)'or at paths:\n  - /x/0_log.err\n  - /x/0_log.out")
    assert error_line(FailedJobError(message)) == "ValueError: bad pool"
    assert error_line(ValueError("plain\nsecond line")) == "ValueError: plain"
    assert error_line(SSLBenchError("harness message")) == "harness message"
