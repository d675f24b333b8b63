"""End to end: `ssl-bench run` over the test doubles with the real tasks, engine and records."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ssl_bench.records import iter_records
from ssl_bench.testing import cli_exit_code

RUN = ["run", "--methods", "dummy", "--benchmarks", "tiny-phase,tiny-seg,tiny-organ",
       "--label-frac", "0.5", "--seeds", "0,1", "--profile", "smoke", "--quiet"]




def _metrics(results: Path) -> dict[tuple, dict]:
    records, warnings = iter_records(results)
    assert not warnings
    return {r.key: (r.status, r.metrics, r.label_units) for r in records}


def test_smoke_run_writes_valid_records_and_a_leaderboard(testing_plugin, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert cli_exit_code(RUN + ["--results", str(results)]) == 0
    records, warnings = iter_records(results)
    assert not warnings and len(records) == 6
    for r in records:
        assert r.status == "ok", r.error
        assert r.synthetic is True and r.label_units and r.checkpoint
        assert r.main_score is not None and r.main_score == r.metrics[r.task.main_score]
    assert (results / "leaderboard" / "leaderboard.md").exists()
    assert "tiny-phase" in capsys.readouterr().out
    # resume: a second run computes nothing
    before = {p: p.stat().st_mtime_ns for p in (results / "records").rglob("*.json")}
    assert cli_exit_code(RUN + ["--results", str(results)]) == 0
    after = {p: p.stat().st_mtime_ns for p in (results / "records").rglob("*.json")}
    assert before == after
    # each run leaves its command line beside the records
    invocations = sorted((results / "runs").glob("*.json"))
    assert len(invocations) == 2
    entry = json.loads(invocations[0].read_text())
    assert entry["argv"] == RUN + ["--results", str(results)]
    assert entry["command"].startswith("ssl-bench run --methods dummy ")
    assert "run_file" not in entry


def test_failing_plugin_gives_failed_records_and_nonzero_exit(testing_plugin, tmp_path) -> None:
    results = tmp_path / "results"
    args = RUN + ["--results", str(results)]
    args[args.index("dummy")] = "dummy,failing"
    assert cli_exit_code(args) != 0
    by_method = {}
    for r in iter_records(results)[0]:
        by_method.setdefault(r.method.id, set()).add(r.status)
    assert by_method == {"dummy": {"ok"}, "failing": {"failed"}}
    failed = [r for r in iter_records(results)[0] if r.status == "failed"][0]
    assert "always fails" in failed.error


_CHILD = """
import os, signal, sys
from ssl_bench import plugins
from ssl_bench.testing import TestingPlugin
from ssl_bench.cli import main

if os.environ.get("KILL_AFTER_FIRST_RECORD"):  # die right after the first record lands
    replace = os.replace
    def replace_then_die(src, dst):
        replace(src, dst)
        if "records" in str(dst) and str(dst).endswith(".json"):
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace_then_die
plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
main(sys.argv[1:])
"""


def test_killed_run_resumes_to_the_same_records(tmp_path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    env = dict(os.environ)
    cmd = [sys.executable, "-c", _CHILD, *RUN]
    subprocess.run(cmd + ["--results", str(reference)], env=env, check=True)
    # killed inside the child, right after its first record (deterministic, whatever the
    # machine's load; polling from here once raced the child on a busy machine)
    proc = subprocess.run(cmd + ["--results", str(killed)],
                          env={**env, "KILL_AFTER_FIRST_RECORD": "1"}, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    assert len(list((killed / "records").rglob("*.json"))) == 1
    subprocess.run(cmd + ["--results", str(killed)], env=env, check=True)
    assert _metrics(killed) == _metrics(reference)


def test_dry_run_prints_the_plan(testing_plugin, tmp_path, capsys) -> None:
    assert cli_exit_code(RUN + ["--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 to compute" in out and "dummy|tiny-seg|0.5|1: compute" in out
    assert not (tmp_path / "records").exists() and not (tmp_path / "runs").exists()
    # the estimate per stage, each time saying what it rests on
    assert "\n  data decoding          " in out
    # one pretraining per (method, domain, seed): 2 domains x 2 seeds
    assert "\n  pretraining            4 pretraining runs (0 cached), 12 steps" in out
    for task in ("phase-recognition", "semantic-segmentation", "organ-segmentation"):
        line = next(x for x in out.splitlines() if x.startswith(f"  {task} "))
        assert "2 cells" in line and any(q in line for q in ("measured", "related", "guess"))
    assert "\n  total                  " in out
    # --pretraining shared: one run per (method, domain), read by both seeds
    assert cli_exit_code(RUN + ["--results", str(tmp_path), "--dry-run",
                                "--pretraining", "shared"]) == 0
    out = capsys.readouterr().out
    assert "\n  pretraining            2 pretraining runs (0 cached), 6 steps" in out


def test_every_method_of_a_seed_gets_the_same_label_subset(testing_plugin, tmp_path) -> None:
    """The pairing the leaderboard's statistics rest on: within (benchmark, label setting, seed)
    the labelled units do not depend on the method."""
    results = tmp_path / "results"
    args = ["run", "--methods", "dummy,random-init", "--benchmarks", "tiny-seg",
            "--label-frac", "0.5", "--seeds", "0,1,2", "--profile", "smoke", "--quiet",
            "--results", str(results)]
    assert cli_exit_code(args) == 0
    by_seed: dict[int, dict[str, tuple[str, ...]]] = {}
    for r in iter_records(results)[0]:
        assert r.status == "ok", r.error
        by_seed.setdefault(r.seed, {})[r.method.id] = tuple(r.label_units)
    assert sorted(by_seed) == [0, 1, 2]
    for subsets in by_seed.values():
        assert set(subsets) == {"dummy", "random-init"} and len(set(subsets.values())) == 1
    assert len({s["dummy"] for s in by_seed.values()}) > 1  # the seed does change the subset


def test_a_dry_run_before_every_dataset_is_written_plans_without_errors(
        tmp_path, capsys, monkeypatch) -> None:
    """A pretrained cell's identity holds its pool, which leaves out the held-out recordings of
    every dataset of the run; with one dataset folder not there yet (a dry run writes nothing)
    the cells are planned as 'no record yet', not 'cannot be set up'."""
    from ssl_bench.paths import synthetic_root

    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))  # not the session's suite
    root = synthetic_root("small")
    assert cli_exit_code(["data", "synth", "--size", "small", "--out", str(root)]) == 0
    shutil.rmtree(root / "btcv")
    capsys.readouterr()
    assert cli_exit_code(["run", "--methods", "simclr", "--synthetic-size", "small",
                          "--profile", "smoke", "--seeds", "0", "--label-frac", "0.5",
                          "--results", str(tmp_path / "results"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "cannot be set up" not in out
    assert "simclr|cholec80-phase|0.5|0: compute: no record yet" in out


def test_pool_with_needs_its_data_and_says_so_in_one_line(tmp_path, capsys) -> None:
    """--pool-with benchmarks shape the pretraining pools: without their data the run stops
    before anything is computed, naming the benchmark and the fix."""
    data = tmp_path / "data"
    (data / "cholec80").mkdir(parents=True)
    code = cli_exit_code(["run", "--methods", "random-init", "--benchmarks", "cholec80-phase",
                          "--pool-with", "cholecseg8k-seg", "--data-root", str(data),
                          "--results", str(tmp_path / "r"), "--dry-run"])
    err = capsys.readouterr().err
    assert code != 0
    line = next(x for x in err.splitlines() if "--pool-with" in x)
    assert "'cholecseg8k-seg'" in line and "drop it from --pool-with" in line
    assert "Traceback" not in err


def test_under_a_launcher_only_rank_0_writes_the_invocation(tmp_path, monkeypatch) -> None:
    """Every rank of torchrun / srun runs the same command; one invocation file is written."""
    from ssl_bench.invocations import launcher_rank

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert (launcher_rank("pytorch"), launcher_rank("slurm"), launcher_rank("none")) == (1, 0, 0)
    for rank, written in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        for var in ("WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
            monkeypatch.delenv(var, raising=False)
        results = tmp_path / f"rank{rank}"
        # without the rest of torchrun's environment the run stops early, in one line
        cli_exit_code(["run", "--methods", "random-init", "--benchmarks", "cholec80-phase",
                       "--profile", "smoke", "--synthetic-size", "small", "--launcher",
                       "pytorch", "--results", str(results)])
        assert (results / "runs").is_dir() == written
