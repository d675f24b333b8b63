"""Records and leaderboards: hand-computed statistics, n/a and failed cells, --check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssl_bench.board import LabelColumn
from ssl_bench.cli import cli
from ssl_bench.errors import RecordError
from ssl_bench.leaderboard import build_tables, render_markdown
from ssl_bench.records import CellRecord, iter_records, read_record, write_record
from ssl_bench.testing import score_record

ONE = LabelColumn("frac", 0.01)


def _record(method: str, frac: float, seed: int, score: float | None, status: str = "ok",
            bench: str = "b1") -> CellRecord:
    return score_record(method, seed, score, benchmark=bench, label_frac=frac, status=status,
                        ssl_bench_version="0.1.0")


def _write_all(results: Path) -> None:
    for seed, score in enumerate([70.0, 72.0, 74.0]):
        write_record(results, _record("a", 0.01, seed, score))
    for seed, score in enumerate([80.0, 81.0, 82.0]):
        write_record(results, _record("b", 0.01, seed, score))
    for seed in range(3):
        write_record(results, _record("c", 0.01, seed, None, status="n/a"))
    write_record(results, _record("d", 0.01, 0, None, status="failed"))


def test_record_round_trip_and_nan_becomes_null(tmp_path: Path) -> None:
    rec = _record("a", 0.05, 1, float("nan"))
    path = write_record(tmp_path, rec)
    assert json.loads(path.read_text())["main_score"] is None
    assert read_record(path).label_frac == 0.05
    assert path.name == "lf0.05-seed1.json"


def test_malformed_record_is_reported_with_its_path_and_skipped(tmp_path: Path) -> None:
    _write_all(tmp_path)
    bad = tmp_path / "records" / "b1" / "a" / "lf0.5-seed0.json"
    bad.write_text("{ truncated")
    with pytest.raises(RecordError, match=str(bad)):
        read_record(bad)
    records, warnings = iter_records(tmp_path)
    assert len(records) == 10 and len(warnings) == 1 and str(bad) in warnings[0]


def test_statistics_are_hand_computed(tmp_path: Path) -> None:
    _write_all(tmp_path)
    records, _ = iter_records(tmp_path)
    (table,) = build_tables(records)
    a = table.cells[("a", ONE)]
    assert a.mean == pytest.approx(72.0) and a.std == pytest.approx(2.0) and a.n == 3
    # t(0.975, 2) = 4.302653; half width = 4.302653 * 2 / sqrt(3)
    lo, hi = a.ci
    assert hi - 72.0 == pytest.approx(4.302653 * 2 / math.sqrt(3), rel=1e-5)
    assert lo == pytest.approx(72.0 - (hi - 72.0))
    assert table.best(ONE) == {"b"}
    assert table.methods[:2] == ["b", "a"]
    md = render_markdown([table])
    assert "**81.00 ± 1.00 (n=3)" in md
    assert "| – | c | n/a |" in md
    assert "failed (1)" in md
    assert "synthetic data" in md


def test_ties_share_rank_and_bold_and_one_seed_shows_no_spread(tmp_path: Path) -> None:
    write_record(tmp_path, _record("x", 0.01, 0, 60.0))
    write_record(tmp_path, _record("y", 0.01, 0, 60.0))
    write_record(tmp_path, _record("z", 0.01, 0, 50.0))
    (table,) = build_tables(iter_records(tmp_path)[0])
    assert table.best(ONE) == {"x", "y"}
    assert table.ranks == {"x": 1.5, "y": 1.5, "z": 3.0}
    md = render_markdown([table])
    assert md.count("**60.00 (n=1)**") == 2 and "50.00 (n=1)" in md
    assert "±" not in md.split("|---")[1]


def test_leaderboard_check_catches_an_edited_table(tmp_path: Path) -> None:
    _write_all(tmp_path)
    out = tmp_path / "board"
    runner = CliRunner()
    args = ["leaderboard", "--results", str(tmp_path), "--out", str(out), "--format", "md,csv,json"]
    assert runner.invoke(cli, args).exit_code == 0
    assert (out / "b1-forest.png").exists()
    ok = runner.invoke(cli, args + ["--check"])
    assert ok.exit_code == 0, ok.output
    md = out / "leaderboard.md"
    md.write_text(md.read_text().replace("81.00", "91.00"))
    from ssl_bench.cli import main

    with pytest.raises(SystemExit) as info:
        main(args + ["--check"])
    assert info.value.code != 0


def test_html_escapes_plugin_strings(tmp_path: Path) -> None:
    write_record(tmp_path, _record("<script>alert(1)</script>", 0.01, 0, 50.0))
    records, _ = iter_records(tmp_path)
    from ssl_bench.leaderboard import render_html

    page = render_html(build_tables(records))
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_methods_given_different_label_subsets_are_refused(tmp_path: Path) -> None:
    """Paired statistics assume every method of a (label setting, seed) saw the same labelled
    units; records that break this come from different data or code and are refused."""
    from ssl_bench.errors import SSLBenchError

    for seed in range(2):
        for method, score in (("a", 70.0 + seed), ("b", 80.0 + seed)):
            rec = _record(method, 0.01, seed, score)
            rec.label_units = [f"video{seed:02d}"]
            write_record(tmp_path, rec)
    records, _ = iter_records(tmp_path)
    assert len(build_tables(records)) == 1  # shared subsets: fine
    odd = _record("b", 0.01, 1, 81.0)
    odd.label_units = ["video07"]
    write_record(tmp_path, odd)
    records, _ = iter_records(tmp_path)
    with pytest.raises(SSLBenchError, match=r"seed 1: methods were given different label "
                                            r"subsets \(a: video01; b: video07\)"):
        build_tables(records)
