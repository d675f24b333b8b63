"""Reliability against bad input and untrusted files: every user mistake is a
one-line error with a non-zero exit and no traceback; malformed records are reported with their
path and skipped; pickles that would run code are refused wherever weights are loaded; the HTML
leaderboard escapes record strings.

Why a pickle is dangerous and what ``weights_only=True`` does: the torch docs of
``torch.load`` ("weights_only ... restricts the unpickler to loading tensors, primitive types,
dictionaries and any types added via torch.serialization.add_safe_globals").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

from ssl_bench import plugins
from ssl_bench.cli import main
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import CellRecord, Component, DatasetRef, TaskRef, record_path, write_record


def _one_line_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run the CLI in-process; it must exit non-zero with one stderr line and no traceback."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _record(method: str, seed: int, score: float, benchmark: str = "b1") -> CellRecord:
    return CellRecord(
        ssl_bench_version="0.1.0", date="2026-01-01T00:00:00Z", benchmark=benchmark,
        method=Component(id=method, version="1", plugin="p"), method_kind="pretrain",
        dataset=DatasetRef(id="d", version="1"),
        task=TaskRef(id="t", version="1", main_score="acc", higher_is_better={"acc": True}),
        protocol="linear", profile="smoke", label_frac=0.5, seed=seed, cell_seed=seed,
        metrics={"acc": score}, main_score=score, synthetic=True, status="ok",
    )


# ---- bad input ----------------------------------------------------------------------------


def test_unknown_benchmark(testing_plugin, capsys) -> None:
    line = _one_line_error(capsys, ["run", "--benchmarks", "tiny-phse", "--dry-run"])
    assert "tiny-phse" in line and "tiny-phase" in line  # the problem and the fix


def test_data_root_without_the_dataset(testing_plugin, tmp_path, capsys) -> None:
    data_root = tmp_path / "data"
    data_root.mkdir()
    line = _one_line_error(capsys, ["run", "--methods", "dummy", "--benchmarks", "tiny-phase",
                                    "--profile", "smoke", "--data-root", str(data_root),
                                    "--results", str(tmp_path / "results"), "--quiet"])
    assert str(data_root / "tiny-video") in line and "data check" in line


def test_data_root_that_is_a_file(testing_plugin, tmp_path, capsys) -> None:
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("x")
    line = _one_line_error(capsys, ["run", "--methods", "dummy", "--benchmarks", "tiny-phase",
                                    "--data-root", str(not_a_folder), "--dry-run"])
    assert "--data-root" in line and "not a folder" in line


def test_dataset_layout_error_from_data_check(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", "cholec80", str(tmp_path)])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'videos'}: folder is missing" in out  # the problem, with its path
    assert len(err.strip().splitlines()) == 1 and "1 problem(s)" in err
    assert "Traceback" not in out + err


def test_results_directory_that_is_a_file(testing_plugin, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    results.write_text("not a folder")
    line = _one_line_error(capsys, ["run", "--methods", "dummy", "--benchmarks", "tiny-phase",
                                    "--profile", "smoke", "--results", str(results), "--quiet"])
    assert str(results) in line and "--results" in line
    line = _one_line_error(capsys, ["leaderboard", "--results", str(results)])
    assert str(results) in line


def test_leaderboard_skips_a_malformed_record_with_one_warning(tmp_path, capsys) -> None:
    write_record(tmp_path, _record("alpha", 0, 70.0))
    write_record(tmp_path, _record("alpha", 1, 72.0))
    bad = record_path(tmp_path, "b1", "beta", 0.5, 0)
    bad.parent.mkdir(parents=True)
    bad.write_text('{"schema_version": 1, "benchmark": "b1", "metr')  # torn by hand
    main(["leaderboard", "--results", str(tmp_path), "--format", "md",
          "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: skipped record ")
    assert str(bad) in lines[0] and "Traceback" not in err
    assert "alpha" in out and "71.00" in out and "beta" not in out  # the table is still built
    assert (tmp_path / "out" / "leaderboard.md").exists()


def test_leaderboard_skips_a_record_that_breaks_the_schema(tmp_path, capsys) -> None:
    write_record(tmp_path, _record("alpha", 0, 70.0))
    bad = record_path(tmp_path, "b1", "beta", 0.5, 0)
    data = json.loads(record_path(tmp_path, "b1", "alpha", 0.5, 0).read_text())
    data["status"] = "great"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps(data))
    main(["leaderboard", "--results", str(tmp_path), "--format", "md",
          "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(bad) in err and "status" in err


def test_broken_plugin_is_one_warning_line_and_list_still_works(monkeypatch, capsys) -> None:
    from importlib.metadata import EntryPoint

    real = plugins.entry_points

    def with_a_broken_one(group: str):  # type: ignore[no-untyped-def]
        return list(real(group=group)) + [
            EntryPoint(name="broken", value="no_such_module_xyz.plugin", group=group)]

    plugins.reset()
    monkeypatch.setattr(plugins, "entry_points", with_a_broken_one)
    monkeypatch.setenv("SSL_BENCH_LOAD_PLUGINS", "broken,builtin-benchmarks")
    try:
        main(["list", "--json"])
    finally:
        plugins.reset()
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "plugin 'broken'" in lines[0] and "ModuleNotFoundError" in lines[0]
    assert any(b["id"] == "cholec80-phase" for b in json.loads(out)["benchmarks"])


# ---- untrusted files ----------------------------------------------------------------------


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: it would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _malicious_pickle(path: Path, marker: Path) -> Path:
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    assert not marker.exists()
    return path


def test_user_weights_reader_refuses_a_code_executing_pickle(tmp_path) -> None:
    from ssl_bench.backbones import read_state_dict

    marker = tmp_path / "pwned"
    path = _malicious_pickle(tmp_path / "teacher.pth", marker)
    with pytest.raises(SSLBenchError) as exc:
        read_state_dict(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert not marker.exists()
    # the same file without the payload loads
    torch.save({"module.weight": torch.ones(2)}, tmp_path / "ok.pth")
    assert torch.equal(read_state_dict(tmp_path / "ok.pth")["weight"], torch.ones(2))


@pytest.mark.parametrize("module", ["ssl_bench_distill.teacher", "ssl_bench_iboot.teacher"])
def test_teacher_weights_refuse_a_code_executing_pickle(module: str, tmp_path) -> None:
    import importlib

    load_teacher_backbone = importlib.import_module(module).load_teacher_backbone
    marker = tmp_path / "pwned"
    path = _malicious_pickle(tmp_path / "teacher.pth", marker)
    with pytest.raises(SSLBenchError) as exc:
        load_teacher_backbone("efficientnet_lite0", str(path))
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert not marker.exists()


def test_imagenet_weights_loader_refuses_a_code_executing_pickle(monkeypatch, tmp_path) -> None:
    from ssl_bench import backbones

    marker = tmp_path / "pwned"
    path = _malicious_pickle(tmp_path / "lite0.pth", marker)
    monkeypatch.setattr(backbones, "imagenet_weights_path", lambda: str(path))
    backbones._imagenet_lite0_tensors.cache_clear()
    try:
        with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported global"):
            backbones._imagenet_lite0_tensors()
    finally:
        backbones._imagenet_lite0_tensors.cache_clear()
    assert not marker.exists()


def test_harness_checkpoints_never_unpickle(tmp_path) -> None:
    """A pickle planted as the cached checkpoint or as mmengine's resume checkpoint is never
    executed: the checkpoint fails its checksum, the resume state is refused (weights-only) and
    discarded, and pretraining starts over."""
    from ssl_bench.engine.checkpoint_store import checkpoint_is_intact, load_pretrained
    from ssl_bench.engine.pretrain import checkpoint_key, pretrain_cached
    from ssl_bench.testing import DummyMethod, smoke_method, tiny_pool

    method = smoke_method(DummyMethod)
    key = checkpoint_key(method, "fp", 0)
    cache = tmp_path / "cache"
    marker = tmp_path / "pwned"
    ckpt = cache / "checkpoints" / "dummy" / f"{key}.safetensors"
    ckpt.parent.mkdir(parents=True)
    _malicious_pickle(ckpt, marker)
    with pytest.raises(SafetensorError):
        load_pretrained(method, ckpt)  # safetensors: a pickle is not even parsed
    assert not checkpoint_is_intact(ckpt)
    work_dir = cache / "work_dirs" / "dummy" / key
    work_dir.mkdir(parents=True)
    _malicious_pickle(work_dir / "iter_2.pth", marker)
    (work_dir / "last_checkpoint").write_text(str(work_dir / "iter_2.pth"))
    logs: list[str] = []
    result = pretrain_cached(method, "fp", lambda: tiny_pool("surgical", 32), cache, 0,
                             logs.append)
    assert not marker.exists()
    assert not result.cached and result.steps == 3 and checkpoint_is_intact(ckpt)
    assert any("damaged" in m for m in logs) and any("starting over" in m for m in logs)
    load_pretrained(method, ckpt)
    assert pretrain_cached(method, "fp", lambda: tiny_pool(), cache, 0, logs.append).cached


def test_html_leaderboard_escapes_every_record_string(tmp_path) -> None:
    from ssl_bench.leaderboard import build_tables, render_html
    from ssl_bench.records import iter_records

    evil = "<script>alert(1)</script>"
    record = _record(evil, 0, 50.0, benchmark="b<img src=x onerror=alert(2)>")
    record.method.plugin = evil
    record.dataset.id = evil
    write_record(tmp_path, record)
    page = render_html(build_tables(iter_records(tmp_path)[0]))
    assert "<script>alert" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
