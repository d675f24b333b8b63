"""Verification by re-running: a smoke run's bundle re-runs to the same scores on the same
machine; the verdict logic (equal in one environment, within a tolerance across environments,
not comparable when the cell identity differs, a re-signed edited score caught)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssl_bench.cli import cli
from ssl_bench.environment import current_environment
from ssl_bench.records import CellIdentity, DatasetIdentity, MethodIdentity, TaskIdentity
from ssl_bench.testing import score_record
from ssl_bench.verify import draw, judge, run_args


def _identity(config: str = "c1") -> CellIdentity:
    return CellIdentity(
        benchmark="b1", benchmark_version="1", protocol="linear",
        method=MethodIdentity(id="m", version="1", config_hash=config, distribution="p",
                              distribution_version="1", source_hash="s", checkpoint="k",
                              pretrain_seed=0),
        task=TaskIdentity(id="t", version="1", config_hash="t1"),
        dataset=DatasetIdentity(id="d", version="1", fingerprint="f"), profile="smoke",
        label_subset="l", ssl_bench_version="0.2.0")


def _rec(score: float, config: str = "c1", device: str = "cpu"):
    rec = score_record("m", 0, score)
    rec.identity = _identity(config)
    rec.environment = current_environment(device)
    return rec


def _installed_rec(score: float):
    """A record of a method and task that are installed (random-init, phase recognition), so
    verify re-runs it rather than calling it not comparable."""
    from ssl_bench.records import TaskRef

    rec = _rec(score)
    rec.method = rec.method.model_copy(update={"id": "random-init"})
    rec.task = TaskRef(id="phase-recognition", version="2", main_score="accuracy",
                       higher_is_better={"accuracy": True})
    return rec


def test_verdicts() -> None:
    assert judge(_rec(70.0), _rec(70.0), None).verdict == "match"
    # an edited score (even in a bundle whose manifest was re-hashed) is caught
    edited = judge(_rec(75.0), _rec(70.0), None)
    assert edited.verdict == "mismatch" and edited.delta == pytest.approx(-5.0)
    other = judge(_rec(70.0), _rec(70.0, config="c2"), None)
    assert other.verdict == "not comparable" and "method config changed" in other.why
    away = _rec(70.4)
    assert away.environment is not None
    away.environment = away.environment.model_copy(update={"device_name": "elsewhere"})
    assert judge(away, _rec(70.0), 0.5).verdict == "match"
    assert judge(away, _rec(70.0), 0.1).verdict == "mismatch"
    assert judge(away, _rec(70.0), None).verdict == "mismatch"
    assert judge(_rec(70.0), None, None).verdict == "mismatch"


def test_draw_is_seeded_and_run_args_name_the_cell() -> None:
    records = [score_record("m", s, 50.0 + s) for s in range(6)]
    assert draw(records, 3, seed=1) == draw(records, 3, seed=1)
    assert len(draw(records, 10, seed=0)) == 6
    args = run_args(_rec(70.0), Path("w"), None, "small")
    assert args[:8] == ["run", "--methods", "m", "--benchmarks", "b1", "--label-frac", "0.5",
                        "--seeds"]
    assert "--profile" in args and "per-seed" in args
    assert "--pool-with" not in args
    pooled = run_args(_rec(70.0), Path("w"), None, "small", ["b1", "b2", "b3"])
    assert pooled[pooled.index("--pool-with") + 1] == "b2,b3"  # the others, not the cell's own


def test_a_re_run_has_the_record_s_thread_count(tmp_path: Path) -> None:
    """Workers of `--jobs N` compute with cores // N threads; the re-run (one process) takes
    the record's count, and the caller's count comes back after it."""
    import torch

    from ssl_bench.bundle import export_bundle
    from ssl_bench.records import write_record
    from ssl_bench.verify import torch_threads, verify_bundle

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    with torch_threads(None):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before

    results = tmp_path / "results"
    rec = _installed_rec(60.0)
    rec.environment = current_environment("cpu").model_copy(update={"threads": 1})
    write_record(results, rec)
    export_bundle(results, tmp_path / "b.tar.gz")
    seen: list[int] = []
    verify_bundle(tmp_path / "b.tar.gz", 1, 0, tmp_path / "work",
                  lambda _args: seen.append(torch.get_num_threads()))
    assert seen == [1] and torch.get_num_threads() == before


def test_a_smoke_bundle_re_runs_to_the_same_scores(tmp_path: Path) -> None:
    results, bundle = tmp_path / "results", tmp_path / "b.tar.gz"
    run = CliRunner().invoke(cli, [
        "run", "--methods", "random-init", "--benchmarks", "cholec80-phase", "--label-frac",
        "0.5", "--seeds", "0,1", "--profile", "smoke", "--synthetic-size", "small", "--jobs",
        "1", "--quiet", "--results", str(results)])
    assert run.exit_code == 0, run.output
    assert CliRunner().invoke(cli, ["export", "--results", str(results), "-o",
                                    str(bundle)]).exit_code == 0
    verification = tmp_path / "verification.json"
    result = CliRunner().invoke(cli, ["verify", str(bundle), "--sample", "2",
                                      "--synthetic-size", "small", "--work",
                                      str(tmp_path / "work"), "--record", str(verification)])
    assert result.exit_code == 0, result.output
    assert "| cell | claimed | re-run | Δ | verdict |" in result.output
    assert result.output.count("| match (same environment") == 2
    assert "pretraining re-run" in result.output  # random-init reads no pretraining checkpoint
    assert "all 2 re-run cells match" in result.output
    # a line per re-run, not the re-runs' one-cell leaderboards
    assert result.output.count("re-running: ssl-bench run --methods random-init") == 2
    assert "Cells: mean" not in result.output
    recorded = json.loads(verification.read_text())
    assert recorded["passed"] is True and len(recorded["cells"]) == 2
    # the verification travels in a new bundle, and a board of it marks the verified row
    verified = tmp_path / "verified.tar.gz"
    assert CliRunner().invoke(cli, ["export", "--results", str(results), "--verification",
                                    str(verification), "-o", str(verified)]).exit_code == 0
    board = CliRunner().invoke(cli, ["leaderboard", "--results", str(verified), "--out",
                                     str(tmp_path / "board")])
    assert board.exit_code == 0, board.output
    assert "random-init (verified: 2 cells re-run)" in board.output


def test_a_pretrained_cell_of_a_two_benchmark_run_re_runs_to_its_checkpoint(tmp_path: Path
                                                                             ) -> None:
    """A pretraining pool holds every dataset of its domain in the run (less the recordings
    any benchmark of the run holds out): a cell re-run with its benchmark alone pretrains on
    another pool. The re-run passes the run's other benchmarks as --pool-with, so it reaches
    the record's checkpoint key and score."""
    results, bundle = tmp_path / "results", tmp_path / "b.tar.gz"
    run = CliRunner().invoke(cli, [
        "run", "--methods", "simclr", "--benchmarks", "cholec80-phase,cholecseg8k-seg",
        "--label-frac", "0.5", "--seeds", "0", "--profile", "smoke", "--synthetic-size",
        "small", "--jobs", "1", "--quiet", "--results", str(results)])
    assert run.exit_code == 0, run.output
    assert CliRunner().invoke(cli, ["export", "--results", str(results), "-o",
                                    str(bundle)]).exit_code == 0
    result = CliRunner().invoke(cli, ["verify", str(bundle), "--sample", "2",
                                      "--synthetic-size", "small", "--work",
                                      str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    assert result.output.count("| match (same environment") == 2
    # alone, the benchmark's pool is another: the pretraining differs
    alone = CliRunner().invoke(cli, [
        "run", "--methods", "simclr", "--benchmarks", "cholecseg8k-seg", "--label-frac", "0.5",
        "--seeds", "0", "--profile", "smoke", "--synthetic-size", "small", "--jobs", "1",
        "--quiet", "--results", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    from ssl_bench.records import read_record, record_path

    claimed = read_record(record_path(results, "cholecseg8k-seg", "simclr", 0.5, 0))
    lone = read_record(record_path(tmp_path / "alone", "cholecseg8k-seg", "simclr", 0.5, 0))
    rerun = read_record(record_path(tmp_path / "work", "cholecseg8k-seg", "simclr", 0.5, 0))
    assert lone.checkpoint != claimed.checkpoint == rerun.checkpoint


def test_bundled_weights_are_placed_in_the_work_store(tmp_path: Path) -> None:
    import hashlib
    import json

    import numpy as np
    from safetensors.numpy import save_file

    from ssl_bench.bundle import export_bundle, read_bundle
    from ssl_bench.engine.checkpoint_store import CheckpointStore, sidecar_path
    from ssl_bench.records import write_record
    from ssl_bench.verify import place_checkpoints

    results, key = tmp_path / "results", "b" * 16
    rec = score_record("simclr", 0, 60.0)
    rec.checkpoint = key
    write_record(results, rec)
    ckpt = CheckpointStore(results / "cache").path("simclr", key)
    ckpt.parent.mkdir(parents=True)
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(ckpt))
    sidecar_path(ckpt).write_text(json.dumps(
        {"sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}))
    bundle = tmp_path / "b.tar.gz"
    export_bundle(results, bundle, with_checkpoints=True)
    checked = read_bundle(bundle)
    work = tmp_path / "work"
    assert place_checkpoints(bundle, checked, checked.records, work) == {key}
    placed = CheckpointStore(work / "cache").path("simclr", key)
    assert placed.read_bytes() == ckpt.read_bytes()
    assert sidecar_path(placed).read_bytes() == sidecar_path(ckpt).read_bytes()
    # placed once: a second call finds them there
    assert place_checkpoints(bundle, checked, checked.records, work) == {key}


def test_only_a_passed_verification_of_unchanged_records_marks_a_row(tmp_path: Path) -> None:
    from ssl_bench.bundle import export_bundle, read_bundle
    from ssl_bench.records import write_record
    from ssl_bench.verify import VERIFICATION_FORMAT, verified_records

    results = tmp_path / "results"
    for seed in (0, 1):
        write_record(results, score_record("m", seed, 50.0 + seed))
    first = tmp_path / "first.tar.gz"
    export_bundle(results, first)
    members = read_bundle(first).manifest["members"]
    name = "records/b1/m/lf0.5-seed0.json"

    def verification(passed: bool, sha: str) -> Path:
        path = tmp_path / f"v-{passed}-{sha[:4]}.json"
        path.write_text(json.dumps({"format": VERIFICATION_FORMAT, "passed": passed, "cells": [
            {"record": name, "sha256": sha, "verdict": "match"}]}))
        return path

    good = verification(True, members[name]["sha256"])
    for path, expected in ((good, {name}), (verification(False, members[name]["sha256"]), set()),
                           (verification(True, "0" * 64), set())):
        out = tmp_path / f"{path.stem}.tar.gz"
        export_bundle(results, out, verifications=[path])
        assert verified_records(read_bundle(out)) == expected


def test_a_checkpoint_key_that_climbs_out_is_not_placed(tmp_path: Path) -> None:
    """A record's checkpoint key comes from a stranger: one with ``..`` or ``/`` must not
    become a path, or the bundle's weights and sidecar would land outside the work folder."""
    import gzip
    import hashlib
    import io
    import tarfile

    import numpy as np
    from safetensors.numpy import save_file

    from ssl_bench.bundle import read_bundle
    from ssl_bench.verify import place_checkpoints

    rec = score_record("simclr", 0, 60.0)
    rec.checkpoint = "../../../../escaped"
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(tmp_path / "w.safetensors"))
    weights = (tmp_path / "w.safetensors").read_bytes()
    files = {"records/b1/simclr/lf0.5-seed0.json": json.dumps(rec.model_dump(mode="json"))
             .encode(),
             "checkpoints/simclr/escaped.safetensors": weights,
             "checkpoints/simclr/escaped.json": json.dumps(
                 {"sha256": hashlib.sha256(weights).hexdigest()}).encode()}
    manifest = {"format": "ssl-bench-bundle", "format_version": 1, "members": {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in files.items()}}
    bundle = tmp_path / "b.tar.gz"
    with gzip.open(bundle, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    checked = read_bundle(bundle)
    before = sorted(tmp_path.rglob("*"))
    assert place_checkpoints(bundle, checked, checked.records, tmp_path / "deep" / "work") == set()
    assert [p for p in tmp_path.rglob("*") if p not in before
            and not p.is_relative_to(tmp_path / "deep" / "work")
            and p != tmp_path / "deep"] == []
    assert not list(tmp_path.rglob("escaped*"))


def test_a_cell_whose_method_is_not_installed_is_reported_not_run(tmp_path: Path) -> None:
    """Nothing in a bundle is code: a record of a method this installation lacks is judged
    `not comparable` and never handed to `ssl-bench run`."""
    from ssl_bench.bundle import export_bundle
    from ssl_bench.records import write_record
    from ssl_bench.verify import verify_bundle

    results, bundle = tmp_path / "results", tmp_path / "b.tar.gz"
    write_record(results, score_record("not-installed-method", 0, 50.0))
    export_bundle(results, bundle)
    ran: list[list[str]] = []
    (verdict,) = verify_bundle(bundle, 1, 0, tmp_path / "work", ran.append)
    assert ran == []
    assert verdict.verdict == "not comparable" and "not installed here" in verdict.why



@pytest.mark.parametrize(("delta", "verdict"), [(8.0, "match"), (9.0, "mismatch")])
def test_without_tolerance_a_cell_from_another_environment_is_judged_by_its_task_s(
        tmp_path: Path, delta: float, verdict: str) -> None:
    """phase-recognition declares 8.5 accuracy points (the largest difference of the same cells
    on two CPUs, rounded up): a re-run 8 points away matches, one 9 points away does not."""
    from ssl_bench.bundle import export_bundle
    from ssl_bench.plugins import get_registries
    from ssl_bench.records import write_record
    from ssl_bench.verify import verify_bundle

    tasks = get_registries().tasks
    declared = {t: tasks.get(t).meta.verify_tolerance
                for t in ("phase-recognition", "semantic-segmentation", "organ-segmentation")}
    assert declared == {"phase-recognition": 8.5, "semantic-segmentation": 2.5,
                        "organ-segmentation": 8.0}
    results = tmp_path / "results"
    claimed = _installed_rec(60.0)
    assert claimed.environment is not None
    claimed.environment = claimed.environment.model_copy(update={"device_name": "elsewhere"})
    write_record(results, claimed)
    export_bundle(results, tmp_path / "b.tar.gz")

    def rerun(args: list[str]) -> None:
        write_record(Path(args[args.index("--results") + 1]), _installed_rec(60.0 + delta))

    [result] = verify_bundle(tmp_path / "b.tar.gz", 1, 0, tmp_path / "work", rerun)
    assert result.verdict == verdict
    assert "within 8.5 (the tolerance phase-recognition declares)" in result.why
    # --tolerance overrides the task's figure
    [result] = verify_bundle(tmp_path / "b.tar.gz", 1, 0, tmp_path / "work2", rerun,
                             tolerance=10.0)
    assert result.verdict == "match" and "declares" not in result.why
