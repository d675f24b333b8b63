"""Label settings that select the same labelled units: one board column headed by all of them,
computed once, in every format; a run computes them once, says so at plan time, and copies the
record to the other settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssl_bench.board import LabelColumn, build_tables
from ssl_bench.cli import cli
from ssl_bench.label_aliases import ALIASES_FILE, write_label_aliases
from ssl_bench.records import CellRecord, iter_records, read_record, write_record
from ssl_bench.testing import score_record
from ssl_bench.unit_scores import mean_parts

UNITS = ("u1", "u2", "u3", "u4")
SCORES = {"random-init": (50.0, 51.0, 52.0), "good": (70.0, 71.0, 72.0)}


def _record(method: str, seed: int, score: float, frac: float, labelled: list[str]
            ) -> CellRecord:
    rec = score_record(method, seed, score, label_frac=frac)
    parts = mean_parts({u: score + (i - 1.5) * 0.5 for i, u in enumerate(UNITS)})
    rec.main_score = parts.value()
    rec.metrics = {"acc": parts.value()}
    rec.main_parts = parts.to_json()
    rec.checkpoint = f"ck-{method}-{seed}"
    rec.label_units = labelled
    return rec


def _records(units_of: dict[float, int]) -> list[CellRecord]:
    """Every method x seed x fraction; a fraction selects the first ``units_of[frac]`` units of
    the seed's ordering (as the harness does); its scores are offset by the fraction."""
    return [_record(m, s, v + 100 * f, f, [f"v{s}-{k}" for k in range(n)])
            for m, scores in SCORES.items() for s, v in enumerate(scores)
            for f, n in units_of.items()]


def test_settings_with_the_same_units_are_one_column_computed_once() -> None:
    (table,) = build_tables(_records({0.01: 1, 0.05: 1, 0.1: 1}), baseline="random-init",
                            n_boot=500)
    (column,) = table.columns
    assert column == LabelColumn("frac", 0.01)
    assert column.header == "1% = 5% = 10%: 1 unit"
    assert table.cells[("good", column)].mean == pytest.approx(72.0)  # the 1% records
    assert list(table.bootstraps) == [column]


def test_only_equal_subsets_merge() -> None:
    (table,) = build_tables(_records({0.01: 1, 0.05: 1, 0.1: 2}), baseline="random-init",
                            n_boot=500)
    assert [c.header for c in table.columns] == ["1% = 5%: 1 unit", "10%"]
    (plain,) = build_tables(_records({0.01: 1, 0.1: 2}), baseline="random-init", n_boot=500)
    assert [c.header for c in plain.columns] == ["1%", "10%"]


def test_every_format_shows_the_merged_column(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "board"
    for r in _records({0.01: 1, 0.05: 1, 0.1: 1}):
        write_record(results, r)
    result = CliRunner().invoke(cli, ["leaderboard", "--results", str(results), "--out",
                                      str(out), "--format", "md,csv,json,html,latex",
                                      "--baseline", "random-init"])
    assert result.exit_code == 0, result.output
    header = "1% = 5% = 10%: 1 unit"
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert f"| rank | method | {header} | Δ vs random-init ({header}) |" in md
    assert "| 5%" not in md and "| 10%" not in md
    assert f">{header}</th>" in (out / "leaderboard.html").read_text(encoding="utf-8")
    assert r"1\% = 5\% = 10\%: 1 unit" in (out / "leaderboard.tex").read_text(encoding="utf-8")
    rows = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))["rows"]
    assert {r["label_header"] for r in rows} == {header} and len(rows) == 2
    csv = (out / "leaderboard.csv").read_text(encoding="utf-8")
    assert csv.count(header) == 2


def test_pending_copies_take_the_setting_and_skip_failed_sources(tmp_path: Path) -> None:
    ok = write_record(tmp_path, _record("good", 0, 70.0, 0.01, ["v0-0"]))
    failed = score_record("good", 1, None, label_frac=0.01, status="failed")
    failed_path = write_record(tmp_path, failed)
    pending = [{"source": p.relative_to(tmp_path).as_posix(), "label_frac": 0.05,
                "label_count": None} for p in (ok, failed_path)]
    (tmp_path / ALIASES_FILE).write_text(json.dumps({"aliases": pending}))
    (copy,) = write_label_aliases(tmp_path)
    assert copy.name == "lf0.05-seed0.json" and not (tmp_path / ALIASES_FILE).exists()
    record = read_record(copy)
    assert record.label_frac == 0.05 and record.main_score == pytest.approx(70.0)
    assert record.details["same_label_units_as"] == "records/b1/good/lf0.01-seed0.json"
    assert write_label_aliases(tmp_path) == []


def test_run_computes_same_unit_settings_once_and_its_board_merges_them(tmp_path: Path
                                                                        ) -> None:
    """The small synthetic suite has so few training videos that 1 %, 5 % and 10 % are one
    video each: the run notes it at plan time, computes 1 % only and its board has one
    column."""
    results = tmp_path / "results"
    args = ["run", "--methods", "random-init", "--benchmarks", "cholec80-phase",
            "--label-frac", "0.01,0.05,0.1", "--seeds", "0", "--profile", "smoke",
            "--synthetic-size", "small", "--jobs", "1", "--results", str(results)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert ("note: cholec80-phase: label settings 1% = 5% = 10% (1 unit) select the same "
            "labelled units") in result.output
    records, warnings = iter_records(results)
    assert not warnings
    by_frac = {r.label_frac: r for r in records}
    assert sorted(by_frac) == [0.01, 0.05, 0.1]
    assert "same_label_units_as" not in by_frac[0.01].details
    for frac in (0.05, 0.1):
        copy = by_frac[frac]
        assert copy.details["same_label_units_as"].endswith("lf0.01-seed0.json")
        assert copy.main_score == by_frac[0.01].main_score
        assert copy.identity == by_frac[0.01].identity
    board = (results / "leaderboard" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| rank | method | 1% = 5% = 10%: 1 unit |" in board
    # a second run reuses every record and plans no copies
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert not (results / ALIASES_FILE).exists()
