"""Reliability of `ssl-bench run`: determinism, kill and resume, concurrency,
damaged caches and non-finite losses, over the test doubles of :mod:`ssl_bench.testing`.

Kills are deterministic: the child process below SIGKILLs itself at a chosen point (the N-th
pretraining step, the N-th feature-cache write, the N-th record rename), so each test always
interrupts the run where it says it does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ssl_bench import plugins
from ssl_bench.engine.plan import Cell, RunOptions, cell_seed, plan_cells
from ssl_bench.records import iter_records, record_path
from ssl_bench.testing import cli_exit_code

# one pretraining (dummy, surgical pool) and two cells: small enough to run many times
RUN = ["run", "--methods", "dummy", "--benchmarks", "tiny-phase", "--label-frac", "0.5",
       "--seeds", "0,1", "--profile", "smoke", "--device", "cpu", "--quiet"]

# Every run here computes with one torch thread: in this process (the fixture), in the child
# processes and in their --jobs workers. The number of threads changes how parallel reductions
# split their sums, so the last bits of the results; left to the defaults, a one-process run
# uses all the cores and each of 2 workers half of them.
pytestmark = pytest.mark.usefixtures("torch_one_thread")

_CHILD = r"""
import os, signal, sys
import torch
from ssl_bench import plugins
from ssl_bench.engine import workers
from ssl_bench.testing import TestingPlugin
from ssl_bench.cli import main

torch.set_num_threads(1)
workers.threads_per_worker = lambda jobs: 1

def die():
    os.kill(os.getpid(), signal.SIGKILL)

where, _, n = os.environ.get("KILL_AT", "").partition(":")
count = {"n": 0}

def due():
    count["n"] += 1
    return count["n"] == int(n)

if where == "pretrain-step":  # inside pretraining, after mmengine saved resume checkpoints
    from ssl_bench.testing import DummyMethod
    step = DummyMethod.training_step
    def killing_step(self, *a, **k):
        if due():
            die()
        return step(self, *a, **k)
    DummyMethod.training_step = killing_step
elif where == "cache-save":  # during feature extraction: features written, checksum not yet
    from ssl_bench import atomic
    from ssl_bench.cache import ArrayCache
    save = ArrayCache.save
    def killing_save(self, key, arrays):
        if due():
            import io, numpy as np
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            atomic.write_bytes(self.path(key), buf.getvalue())
            die()
        return save(self, key, arrays)
    ArrayCache.save = killing_save
elif where == "record-rename":  # while writing: temp file complete, rename not done
    replace = os.replace
    def killing_replace(src, dst):
        if "records" in str(dst) and str(dst).endswith(".json") and due():
            die()
        return replace(src, dst)
    os.replace = killing_replace

plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
main(sys.argv[1:])
"""


def _child(results: Path, *extra: str, kill: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("KILL_AT", None)
    if kill:
        env["KILL_AT"] = kill
    return subprocess.Popen([sys.executable, "-c", _CHILD, *RUN, *extra, "--results", str(results)],
                            env=env, stdout=subprocess.DEVNULL)


def _run_child(results: Path, *extra: str, kill: str | None = None) -> int:
    proc = _child(results, *extra, kill=kill)
    return proc.wait(timeout=600)



def _records(results: Path) -> dict[tuple, dict[str, Any]]:
    """What must be identical between runs (dates and timings are not)."""
    records, warnings = iter_records(results)
    assert not warnings, warnings
    return {r.key: dict(status=r.status, metrics=r.metrics, main_score=r.main_score,
                        per_class=r.per_class, label_units=r.label_units, cell_seed=r.cell_seed,
                        checkpoint=r.checkpoint, config_hash=r.config_hash)
            for r in records}


def _copy_checkpoints(reference: Path, results: Path) -> None:
    """Start from the reference's pretrained checkpoint (not its features or records)."""
    shutil.copytree(reference / "cache" / "checkpoints", results / "cache" / "checkpoints")



@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run in a child process: what every other run must reproduce."""
    results = tmp_path_factory.mktemp("reference") / "results"
    assert _run_child(results) == 0
    recs = _records(results)
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs.values())
    return results


# ---- determinism --------------------------------------------------------------------------


def test_cell_seeds_depend_on_the_cell_not_on_run_order(testing_plugin) -> None:
    import hashlib

    regs = plugins.get_registries()

    def plan(methods: list[str], seeds: list[int]) -> dict[str, int]:
        options = RunOptions(methods=methods, benchmarks=["tiny-seg", "tiny-phase"],
                             label_fracs=[0.5, 1.0], seeds=seeds, profile="smoke",
                             data_root=None, synthetic_size="default", results=Path("unused"),
                             device="cpu")
        return {c.key: cell_seed(c.seed, c) for c in plan_cells(options, regs)}

    forward = plan(["dummy", "failing"], [0, 1])
    backward = plan(["failing", "dummy"], [1, 0])
    assert forward == backward and len(forward) == 16
    assert len(set(forward.values())) == 16  # every cell gets its own stream
    cell = Cell("dummy", "tiny-phase", 0.5, 1)
    expected = int.from_bytes(hashlib.sha256(b"1|dummy|tiny-phase|0.5|1").digest()[:4], "big")
    assert cell_seed(1, cell) == expected


def test_same_command_twice_gives_identical_records(reference, testing_plugin, tmp_path) -> None:
    results = tmp_path / "results"
    assert cli_exit_code(RUN + ["--results", str(results)]) == 0  # in-process, fresh pretraining
    assert _records(results) == _records(reference)
    for r in iter_records(results)[0]:
        assert r.cell_seed == cell_seed(r.seed, Cell(r.method.id, r.benchmark, r.label_frac,
                                                     r.seed))


def test_jobs_2_and_reversed_seed_order_give_the_same_records(reference, tmp_path) -> None:
    results = tmp_path / "results"
    _copy_checkpoints(reference, results)
    assert _run_child(results, "--jobs", "2", "--seeds", "1,0") == 0
    assert _records(results) == _records(reference)


# ---- kill and resume ----------------------------------------------------------------------


def _leftovers(results: Path) -> list[Path]:
    return [p for p in results.rglob(".tmp-*")]


def test_kill_during_pretraining_then_resume(reference, tmp_path) -> None:
    results = tmp_path / "results"
    assert _run_child(results, kill="pretrain-step:3") == -9
    assert not list((results / "cache" / "checkpoints").rglob("*.safetensors"))
    assert list((results / "cache" / "work_dirs").rglob("*.pth"))  # resume state was left
    assert not (results / "records").exists() or not list((results / "records").rglob("*.json"))
    assert _run_child(results) == 0
    assert _records(results) == _records(reference)


def test_kill_during_feature_extraction_then_resume(reference, tmp_path) -> None:
    results = tmp_path / "results"
    _copy_checkpoints(reference, results)
    assert _run_child(results, kill="cache-save:3") == -9
    features = results / "cache" / "features"
    orphans = [p for p in features.glob("*.npz") if not p.with_suffix(".sha256").exists()]
    assert len(orphans) == 1  # written, never checksummed: must not be trusted
    assert _run_child(results) == 0
    assert _records(results) == _records(reference)
    assert all(p.with_suffix(".sha256").exists() for p in features.glob("*.npz"))


def test_kill_while_writing_a_record_then_resume(reference, tmp_path) -> None:
    results = tmp_path / "results"
    _copy_checkpoints(reference, results)
    assert _run_child(results, kill="record-rename:2") == -9
    records = results / "records"
    assert len(list(records.rglob("*.json"))) == 1  # the second one never got its name
    assert [p.name.startswith(".tmp-lf0.5-seed") for p in _leftovers(records)] == [True]
    assert len(iter_records(results)[0]) == 1  # the temp file is never read as a record
    assert _run_child(results) == 0
    assert _records(results) == _records(reference)


def test_damaged_cache_files_and_records_are_recomputed(reference, tmp_path) -> None:
    results = tmp_path / "results"
    shutil.copytree(reference, results)
    # a torn record (as a non-atomic writer would leave it) is recomputed, not trusted
    torn = record_path(results, "tiny-phase", "dummy", 0.5, 0)
    torn.write_text(torn.read_text()[:100])
    record_path(results, "tiny-phase", "dummy", 0.5, 1).unlink()
    # one flipped byte in a feature file and in the checkpoint
    feature = sorted((results / "cache" / "features").glob("*.npz"))[0]
    ckpt = next((results / "cache" / "checkpoints").rglob("*.safetensors"))
    for path in (feature, ckpt):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    assert _run_child(results) == 0
    assert _records(results) == _records(reference)
    assert ckpt.read_bytes() == next((reference / "cache" / "checkpoints")
                                     .rglob("*.safetensors")).read_bytes()
    assert feature.read_bytes() == (reference / "cache" / "features" / feature.name).read_bytes()


# ---- concurrency --------------------------------------------------------------------------


def test_two_runs_on_one_results_directory(reference, tmp_path) -> None:
    results = tmp_path / "results"
    first, second = _child(results), _child(results)
    assert first.wait(timeout=600) == 0 and second.wait(timeout=600) == 0
    assert _records(results) == _records(reference)
    assert len(list((results / "records").rglob("*.json"))) == 2
    assert not _leftovers(results)
    # one checkpoint per seed (per-seed pretraining), each written once
    assert len(list((results / "cache" / "checkpoints").rglob("*.safetensors"))) == 2


# ---- numerical faults ---------------------------------------------------------------------


def test_nan_loss_fails_its_cells_with_the_step_and_the_run_goes_on(reference, testing_plugin,
                                                                   tmp_path) -> None:
    results = tmp_path / "results"
    _copy_checkpoints(reference, results)
    args = RUN + ["--results", str(results)]
    args[args.index("dummy")] = "nan-loss,dummy"
    assert cli_exit_code(args) == 1
    recs = _records(results)
    assert {k[1]: v["status"] for k, v in recs.items()} == {"nan-loss": "failed", "dummy": "ok"}
    for record in iter_records(results)[0]:
        if record.method.id == "nan-loss":
            assert "non-finite pretraining loss" in record.error and "at step 1" in record.error
    assert {k: v for k, v in recs.items() if k[1] == "dummy"} == _records(reference)
