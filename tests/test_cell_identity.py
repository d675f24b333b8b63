"""A record is reused only when everything that can change its score matches (cell identity),
it says which environment made it, and the pretraining pool lists the units it drops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl_bench.records import iter_records
from ssl_bench.testing import cli_exit_code

BASE = ["run", "--methods", "dummy,dummy-init", "--benchmarks", "tiny-seg", "--seeds", "0",
        "--label-frac", "0.5", "--quiet"]


def _dry_run(results: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    capsys.readouterr()
    assert cli_exit_code(BASE + ["--results", str(results), "--dry-run", *extra]) == 0
    return capsys.readouterr().out.splitlines()


def test_smoke_records_are_not_reused_for_the_cpu_profile_and_the_dry_run_says_why(
        testing_plugin, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert cli_exit_code(BASE + ["--results", str(results), "--profile", "smoke"]) == 0
    lines = _dry_run(results, capsys, "--profile", "smoke")
    assert "2 cells planned, 2 already recorded (reused), 0 to compute" in lines
    lines = _dry_run(results, capsys, "--profile", "cpu")
    assert "2 cells planned, 0 already recorded (reused), 2 to compute" in lines
    for method in ("dummy", "dummy-init"):
        (line,) = [x for x in lines if x.strip().startswith(f"{method}|tiny-seg|0.5|0:")]
        assert "profile smoke -> cpu" in line and "method config changed" in line


def test_a_changed_config_recomputes_and_moves_the_old_record_aside(testing_plugin, tmp_path,
                                                                    capsys) -> None:
    results = tmp_path / "results"
    run = BASE + ["--results", str(results), "--profile", "smoke"]
    assert cli_exit_code(run) == 0
    (old,) = [r for r in iter_records(results)[0] if r.method.id == "dummy-init"]
    lines = _dry_run(results, capsys, "--profile", "smoke", "-o",
                     "task.semantic-segmentation.lr=0.02")
    assert sum("task config changed" in x for x in lines) == 2
    lines = _dry_run(results, capsys, "--profile", "smoke", "-o", "dummy-init.batch_size=4")
    (line,) = [x for x in lines if "dummy-init|tiny-seg" in x]
    assert "method config changed" in line
    assert not any(x.strip().startswith("dummy|") for x in lines)  # dummy is unchanged
    assert cli_exit_code(run + ["-o", "dummy-init.batch_size=4"]) == 0
    (new,) = [r for r in iter_records(results)[0] if r.method.id == "dummy-init"]
    assert new.identity != old.identity and new.method_config["batch_size"] == 4
    moved = list((results / "superseded").rglob("*.json"))
    assert len(moved) == 1 and json.loads(moved[0].read_text())["date"] == old.date
    assert "dummy-init" in str(moved[0].parent)


def test_plugin_source_version_and_data_changes_are_reasons(testing_plugin, tmp_path, capsys,
                                                            monkeypatch) -> None:
    results = tmp_path / "results"
    assert cli_exit_code(BASE + ["--results", str(results), "--profile", "smoke"]) == 0
    from ssl_bench.engine import identity
    from ssl_bench.testing import TinySegDataset

    monkeypatch.setattr(identity, "source_hash", lambda obj: "0" * 16)
    lines = _dry_run(results, capsys, "--profile", "smoke")
    assert sum("method plugin source code changed" in x for x in lines) == 2
    monkeypatch.undo()
    monkeypatch.setattr(TinySegDataset, "fingerprint", lambda self: "tiny-seg-2")
    lines = _dry_run(results, capsys, "--profile", "smoke")
    assert sum("dataset data on disk changed" in x for x in lines) == 2
    monkeypatch.undo()
    monkeypatch.setattr(identity, "__version__", "9.9.9")
    lines = _dry_run(results, capsys, "--profile", "smoke")
    assert sum("ssl-bench 0.2.0 -> 9.9.9" in x for x in lines) == 2


def test_a_schema_1_record_is_recomputed(testing_plugin, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert cli_exit_code(BASE + ["--results", str(results), "--profile", "smoke"]) == 0
    for path in (results / "records").rglob("*.json"):
        data = json.loads(path.read_text())
        for key in ("identity", "environment", "per_unit", "main_parts", "health", "label_count",
                    "label_setting", "references"):
            data.pop(key, None)
        for key in ("paper", "url", "plugin_url"):
            data["method"].pop(key, None)
        data["schema_version"] = 1
        path.write_text(json.dumps(data))
    records, warnings = iter_records(results)
    assert not warnings and {r.schema_version for r in records} == {1}  # old records load
    lines = _dry_run(results, capsys, "--profile", "smoke")
    assert sum("schema 1) has no cell identity" in x for x in lines) == 2


def test_records_carry_the_environment_and_the_pool_lists_dropped_units(
        testing_plugin, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert cli_exit_code(BASE + ["--results", str(results), "--profile", "smoke",
                                 "--benchmarks", "tiny-seg,tiny-phase"]) == 0
    records, _ = iter_records(results)
    env = records[0].environment
    assert env is not None and env.python and env.threads >= 1
    assert set(env.libraries) == {"torch", "torchvision", "timm", "mmengine", "lightly", "monai",
                                  "numpy"}
    assert all(v != "not installed" for v in env.libraries.values())
    sidecars = list((results / "cache" / "checkpoints" / "dummy").glob("*.json"))
    (sidecar,) = [json.loads(p.read_text()) for p in sidecars]
    assert sidecar["pool_dropped_units"] == {}  # the tiny datasets share no recording
    assert sidecar["health"]["n_frames"] > 0
    assert all(r.health == sidecar["health"] for r in records if r.method.id == "dummy")


def test_pool_drops_train_units_whose_recording_is_held_out_elsewhere(testing_plugin, tmp_path
                                                                     ) -> None:
    from ssl_bench import plugins
    from ssl_bench.api import Benchmark, Unit
    from ssl_bench.engine.plan import RunOptions
    from ssl_bench.engine.run_plan import plan_run
    from ssl_bench.testing import TinySegDataset

    class Overlapping(TinySegDataset):
        """Clips cut from the tiny videos: clip k comes from video k."""

        meta = TinySegDataset.meta.model_copy(update={"id": "tiny-seg-overlap"})

        def units(self) -> list[Unit]:
            return [Unit(u.id, u.split, u.source.replace("clip", "video"))
                    for u in super().units()]

    class Plugin:
        from ssl_bench import hookimpl

        @hookimpl
        def register_datasets(self, register):
            register(Overlapping)

        @hookimpl
        def register_benchmarks(self, register):
            register(Benchmark(id="tiny-seg-overlap", dataset="tiny-seg-overlap",
                               task="semantic-segmentation", label_fracs=(0.5,)))

    plugins.register_plugin(Plugin(), "overlap", "ssl-bench-overlap")
    # tiny-video: videos 6-9 are val/test, so clips 6-9 cannot be pretrained on, although all
    # clips of tiny-seg-overlap with index < 6 are train; its own val/test clips 6-9 too
    options = RunOptions(methods=["dummy"], benchmarks=["tiny-phase", "tiny-seg-overlap"],
                         label_fracs=[0.5], seeds=[0], profile="smoke", data_root=None,
                         synthetic_size="small", results=tmp_path, device="cpu")
    logs: list[str] = []
    plan = plan_run(options, logs.append)
    assert plan.ctx.dropped_units("surgical") == {}  # train units are 0-5 in both
    # make video03 a held-out recording: it is now in the val split of tiny-video
    key = plan.ctx.data_key("tiny-phase")
    plan.ctx.units[key] = [Unit(u.id, "val" if u.id == "video03" else u.split, u.source)
                           for u in plan.ctx.units[key]]
    plan.ctx.pool_fingerprints.clear()
    assert plan.ctx.dropped_units("surgical") == {"tiny-seg-overlap": ["clip03"]}
    plan.ctx.pool("surgical", 32, 1.0)
    assert any("1 dropped as their recording is in a val/test split of the run: clip03" in x
               for x in logs)
