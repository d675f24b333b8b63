"""Boards merged from several results folders and bundles: cells of matching identity are
ranked together, others split with the reason, every row names its source in every format, and
a cell found in two sources is counted once with the sources' agreement shown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssl_bench.board import LabelColumn, build_tables
from ssl_bench.board_sources import annotate, merge_sources, source_names
from ssl_bench.bundle import export_bundle
from ssl_bench.cli import cli
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import CellRecord, write_record
from ssl_bench.testing import score_record
from ssl_bench.unit_scores import mean_parts

COL = LabelColumn("frac", 0.5)


def _record(method: str, seed: int, score: float, profile: str = "smoke") -> CellRecord:
    rec = score_record(method, seed, score, profile=profile)
    parts = mean_parts({u: score + i for i, u in enumerate(("u1", "u2", "u3"))})
    rec.main_score = parts.value()
    rec.metrics = {"acc": parts.value()}
    rec.main_parts = parts.to_json()
    rec.checkpoint = f"ck-{method}-{seed}"
    return rec


def _recs(method: str, base: float, profile: str = "smoke") -> list[CellRecord]:
    return [_record(method, s, base + s, profile) for s in range(3)]


def test_shared_cells_count_once_and_rows_name_their_sources() -> None:
    ours = _recs("random-init", 50.0) + _recs("good", 70.0)
    theirs = _recs("good", 70.0)[:2] + [_record("good", 2, 73.0)] + _recs("other", 60.0)
    merged = merge_sources([("ours", ours), ("theirs.tar.gz", theirs)])
    assert len(merged.records) == 9 and len(merged.duplicates) == 3
    (table,) = build_tables(merged.records, baseline="random-init", n_boot=500)
    annotate([table], merged)
    assert table.cells[("good", COL)].n == 3  # not double-counted
    assert table.sources["random-init"] == "ours"
    assert table.sources["other"] == "theirs.tar.gz"
    assert table.sources["good"] == ("ours, theirs.tar.gz (3 cells in several sources, max |Δ| "
                                     "1.00)")
    assert table.merged


def test_cells_of_another_identity_go_to_their_own_table() -> None:
    theirs = _recs("good", 70.0, profile="cpu")
    bumped = _recs("other", 60.0)
    for r in bumped:
        r.task.version = "2"
    merged = merge_sources([("a", _recs("random-init", 50.0)), ("b", theirs), ("c", bumped)])
    tables = build_tables(merged.records, baseline="random-init", n_boot=500)
    assert sorted(t.split for t in tables) == ["profile cpu; task 1", "profile smoke; task 1",
                                               "profile smoke; task 2"]


def test_a_row_names_only_the_sources_of_its_own_table() -> None:
    """Rows of one method in two tables (another profile) each name the sources of their own
    cells, and only the table holding duplicated cells says so."""
    a = _recs("random-init", 50.0) + _recs("good", 70.0)
    b = _recs("random-init", 50.0, profile="cpu") + _recs("good", 80.0, profile="cpu")
    c = _recs("good", 81.0, profile="cpu")
    merged = merge_sources([("a", a), ("b", b), ("c", c)])
    tables = build_tables(merged.records, baseline="random-init", n_boot=200)
    annotate(tables, merged)
    by_profile = {t.profiles[0]: t.sources for t in tables}
    assert by_profile["smoke"] == {"good": "a", "random-init": "a"}
    assert by_profile["cpu"] == {
        "good": "b, c (3 cells in several sources, max |Δ| 1.00)", "random-init": "b"}


def test_source_names_are_unique() -> None:
    assert source_names([Path("a/results"), Path("b/results"), Path("x.tar.gz")]) == [
        "a/results", "b/results", "x.tar.gz"]


def test_a_folder_and_a_bundle_merge_in_every_format(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for r in _recs("random-init", 50.0) + _recs("good", 70.0):
        write_record(ours, r)
    for r in _recs("good", 70.0) + _recs("other", 60.0):
        write_record(theirs, r)
    bundle = tmp_path / "theirs.tar.gz"
    export_bundle(theirs, bundle)
    out = tmp_path / "board"
    args = ["leaderboard", "--results", str(ours), "--results", str(bundle), "--out", str(out),
            "--format", "md,csv,json,html,latex", "--baseline", "random-init"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    good = "ours, theirs.tar.gz (3 cells in several sources, max |Δ| 0.00)"
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    # the `|` of `max |Δ|` is escaped, so every row has as many cells as the header
    assert "| rank | method | source | 50% |" in md
    assert f"| {good.replace('|', chr(92) + '|')} |" in md
    rows_md = [line for line in md.splitlines() if line.startswith("| ")]
    widths = {len(re.findall(r"(?<!\\)\|", line)) for line in rows_md[:4]}
    assert len(widths) == 1, rows_md[:4]
    rows = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))["rows"]
    assert {r["method"]: r["source"] for r in rows} == {
        "random-init": "ours", "good": good, "other": "theirs.tar.gz"}
    assert {r["method"]: r["n"] for r in rows}["good"] == 3
    assert "source" in (out / "leaderboard.csv").read_text(encoding="utf-8").splitlines()[0]
    assert ">source</th>" in (out / "leaderboard.html").read_text(encoding="utf-8")
    assert r"Sources: good: ours, theirs.tar.gz" in (out / "leaderboard.tex").read_text(
        encoding="utf-8")
    assert CliRunner().invoke(cli, args + ["--check"]).exit_code == 0
    no_out = CliRunner().invoke(cli, args[:5])
    assert no_out.exit_code != 0 and "needs --out" in str(no_out.exception)


def test_a_tampered_bundle_is_refused_by_the_board(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    for r in _recs("good", 70.0):
        write_record(theirs, r)
    bundle = tmp_path / "b.tar.gz"
    export_bundle(theirs, bundle)
    data = bytearray(bundle.read_bytes())
    data[-30] ^= 0xFF
    bundle.write_bytes(bytes(data))
    with pytest.raises(SSLBenchError, match="bundle"):
        from ssl_bench.leaderboard import leaderboard_main

        leaderboard_main([bundle], ["md"], tmp_path / "out", False)


def test_a_board_of_two_bundles(tmp_path: Path) -> None:
    bundles = []
    for name, recs in (("a", _recs("random-init", 50.0) + _recs("good", 70.0)),
                       ("b", _recs("good", 70.5) + _recs("other", 60.0))):
        folder = tmp_path / name
        for r in recs:
            write_record(folder, r)
        bundles.append(tmp_path / f"{name}.tar.gz")
        export_bundle(folder, bundles[-1])
    out = tmp_path / "board"
    result = CliRunner().invoke(cli, ["leaderboard", "--results", str(bundles[0]), "--results",
                                      str(bundles[1]), "--out", str(out), "--format", "json",
                                      "--baseline", "random-init"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))["rows"]
    assert {r["method"]: r["source"] for r in rows} == {
        "random-init": "a.tar.gz", "other": "b.tar.gz",
        "good": "a.tar.gz, b.tar.gz (3 cells in several sources, max |Δ| 0.50)"}
