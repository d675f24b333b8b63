"""Leaderboards against several baselines, the shared-pretraining caveat and the forest plot's
data: every format (md, csv, json, html, latex and the console) carries one Δ column per
baseline, each baseline is its own Holm family, a default baseline without records is skipped
with one note, a table whose seeds share a checkpoint says so, and the forest plot draws the
paired difference the significance star comes from."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ssl_bench.board import (
    DEFAULT_BASELINES,
    SHARED_PRETRAINING,
    BoardTable,
    LabelColumn,
    build_tables,
    checkpoint_of,
    parse_baselines,
)
from ssl_bench.cli import cli
from ssl_bench.errors import SSLBenchError
from ssl_bench.leaderboard_plots import VERDICT_COLOURS, forest_data, smallest_p_text
from ssl_bench.records import (
    CellIdentity,
    CellRecord,
    DatasetIdentity,
    MethodIdentity,
    TaskIdentity,
    write_record,
)
from ssl_bench.stats import holm
from ssl_bench.testing import cli_exit_code, score_record
from ssl_bench.unit_scores import mean_parts

ONE = LabelColumn("frac", 0.01)
TEN = LabelColumn("frac", 0.1)
UNITS = ("u1", "u2", "u3", "u4")
SEEDS = (0, 1, 2)
N_BOOT = 2000
FORMATS = "md,csv,json,html,latex"

#: method -> its score per seed: good beats both baselines on every seed, bad loses to both,
#: noisy beats random-init on two seeds and loses on one (not significant)
SCORES: dict[str, tuple[float, ...]] = {
    "random-init": (50.0, 51.0, 52.0),
    "bn-adapt": (60.0, 61.0, 62.0),
    "good": (70.0, 71.0, 72.0),
    "bad": (40.0, 41.0, 42.0),
    "noisy": (58.0, 45.0, 57.0),
}


def _record(method: str, seed: int, score: float, *, frac: float = 0.01,
            checkpoint: str | None = None) -> CellRecord:
    """A scored record with per-unit parts (units spread around ``score``), so that the paired
    statistics apply; its checkpoint is the seed's own unless ``checkpoint`` is given."""
    rec = score_record(method, seed, score, label_frac=frac)
    spread = {u: score + (i - 1.5) * 0.5 for i, u in enumerate(UNITS)}
    parts = mean_parts(spread)
    rec.main_score = parts.value()
    rec.metrics = {"acc": parts.value()}
    rec.per_unit = {"acc": dict(spread)}
    rec.main_parts = parts.to_json()
    rec.checkpoint = checkpoint if checkpoint is not None else f"ck-{method}-{seed}"
    return rec


def _records(methods: tuple[str, ...] = tuple(SCORES), fracs: tuple[float, ...] = (0.01,),
             shared: tuple[str, ...] = ()) -> list[CellRecord]:
    """Every method x seed x fraction; the methods in ``shared`` read one checkpoint for
    all their seeds."""
    return [_record(m, s, SCORES[m][i] + 10 * j, frac=f,
                    checkpoint=f"ck-{m}" if m in shared else None)
            for m in methods for i, s in enumerate(SEEDS) for j, f in enumerate(fracs)]


def _write(results: Path, records: list[CellRecord]) -> None:
    for r in records:
        write_record(results, r)


def _render_all(tmp_path: Path, records: list[CellRecord],
                baseline: str | None = "random-init,bn-adapt") -> dict[str, str]:
    """Run ``ssl-bench leaderboard`` in every format; the files' texts and the console."""
    results, out = tmp_path / "results", tmp_path / "board"
    _write(results, records)
    args = ["leaderboard", "--results", str(results), "--out", str(out), "--format", FORMATS]
    if baseline is not None:
        args += ["--baseline", baseline]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    texts = {fmt: (out / f"leaderboard.{ext}").read_text(encoding="utf-8")
             for fmt, ext in (("md", "md"), ("csv", "csv"), ("json", "json"),
                              ("html", "html"), ("latex", "tex"))}
    texts["console"] = result.output
    return texts


def _table(records: list[CellRecord], baseline: str | list[str] = "random-init,bn-adapt"
           ) -> BoardTable:
    (table,) = build_tables(records, baseline=baseline, n_boot=N_BOOT)
    return table


# ---- several baselines --------------------------------------------------------------------


def test_parse_baselines_accepts_one_id_a_comma_list_or_a_sequence() -> None:
    assert parse_baselines("random-init") == ("random-init",)
    assert parse_baselines(" random-init, bn-adapt ,random-init") == ("random-init", "bn-adapt")
    assert parse_baselines(["imagenet", "bn-adapt"]) == ("imagenet", "bn-adapt")
    assert DEFAULT_BASELINES == ("random-init", "bn-adapt")
    with pytest.raises(SSLBenchError, match="names no method"):
        parse_baselines(" , ")


def test_one_delta_column_per_baseline_in_every_format(tmp_path: Path) -> None:
    texts = _render_all(tmp_path, _records())
    for fmt in ("md", "console", "html"):
        assert "Δ vs random-init (1%)" in texts[fmt], fmt
        assert "Δ vs bn-adapt (1%)" in texts[fmt], fmt
    assert r"$\Delta$ vs random-init" in texts["latex"]
    assert r"$\Delta$ vs bn-adapt" in texts["latex"]

    # markdown: each baseline row reads "baseline" in its own column and a difference in the
    # other's; the order of the columns is the order asked for
    header = next(line for line in texts["md"].splitlines() if line.startswith("| rank"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["rank", "method", "1%", "Δ vs random-init (1%)", "Δ vs bn-adapt (1%)",
                     "rank 95% (1%)", "health"]
    rows = {r.split("|")[2].strip(): [c.strip() for c in r.strip("|").split("|")]
            for r in texts["md"].splitlines() if r.startswith("| ") and "---" not in r
            and not r.startswith("| rank")}
    assert rows["random-init"][3] == "baseline" and rows["random-init"][4].startswith("-10.00")
    assert rows["bn-adapt"][4] == "baseline" and rows["bn-adapt"][3].startswith("+10.00")
    assert rows["good"][3].startswith("+20.00") and rows["good"][3].endswith("*")
    assert rows["good"][4].startswith("+10.00") and rows["good"][4].endswith("*")

    # csv: one set of comparison columns per baseline
    csv = pd.read_csv(io.StringIO(texts["csv"]))
    for b in ("random-init", "bn-adapt"):
        for name in ("delta", "delta_ci_low", "delta_ci_high", "p", "p_holm", "significant"):
            assert f"{name}_vs_{b}" in csv.columns
    good = csv[csv["method"] == "good"].iloc[0]
    assert good["delta_vs_random-init"] == pytest.approx(20.0)
    assert good["delta_vs_bn-adapt"] == pytest.approx(10.0)
    assert bool(good["significant_vs_bn-adapt"]) is True

    # html: the baseline rows are marked and each has its "baseline" cell
    assert texts["html"].count('<tr class="baseline">') == 2
    assert texts["html"].count(">baseline</td>") == 2
    # latex: the two baselines' own cells
    assert texts["latex"].count("& baseline") == 2


def test_json_rows_carry_one_comparison_per_baseline(tmp_path: Path) -> None:
    data = json.loads(_render_all(tmp_path, _records())["json"])
    (table,) = data["tables"]
    assert table["baselines"] == ["random-init", "bn-adapt"] and table["baseline"] == "random-init"
    assert table["baseline_note"] == "" and table["caveat"] == ""
    rows = {r["method"]: r for r in data["rows"]}
    assert set(rows) == set(SCORES)
    for method, row in rows.items():
        comps = row["comparisons"]
        assert [c["baseline"] for c in comps] == ["random-init", "bn-adapt"], method
        for c in comps:
            assert {"baseline", "mean", "ci_low", "ci_high", "p", "p_holm",
                    "significant"} <= set(c)
            assert c["ci_low"] <= c["mean"] <= c["ci_high"]
            assert c["p"] <= c["p_holm"]
    means = {m: np.mean(v) for m, v in SCORES.items()}
    for method, row in rows.items():
        for c in row["comparisons"]:
            assert c["mean"] == pytest.approx(means[method] - means[c["baseline"]], abs=1e-6)
    assert rows["bad"]["comparisons"][1]["significant"] is True
    assert rows["noisy"]["comparisons"][0]["significant"] is False


def test_each_baseline_is_its_own_holm_family() -> None:
    table = _table(_records())
    assert table.baselines == ["random-init", "bn-adapt"]
    for baseline in table.baselines:
        others = [m for m in table.methods if m != baseline]
        comps = [table.comparison(m, ONE, baseline) for m in others]
        assert all(c is not None for c in comps)
        raw = [c.p_value for c in comps if c is not None]
        adjusted = [c.p_holm for c in comps if c is not None]
        assert adjusted == pytest.approx(list(holm(raw)))
        assert all(c.family_size == len(others) for c in comps if c is not None)
        own = table.comparison(baseline, ONE, baseline)
        assert own is not None and own.delta == 0.0 and own.p_holm == 1.0
        assert not own.significant
    # the families differ: noisy is compared with another row in each
    assert (table.comparison("noisy", ONE, "random-init").delta !=  # type: ignore[union-attr]
            table.comparison("noisy", ONE, "bn-adapt").delta)  # type: ignore[union-attr]


def test_the_first_baseline_keeps_the_single_baseline_attributes() -> None:
    """``table.baseline`` / ``table.comparisons`` are the first baseline's, and a single id
    string gives the same numbers as that baseline in a longer list."""
    records = _records()
    several = _table(records, ["random-init", "bn-adapt"])
    single = _table(records, "random-init")
    assert single.baselines == ["random-init"] and single.baseline == "random-init"
    assert several.baseline == "random-init"
    assert several.comparisons == single.comparisons
    assert several.comparisons is several.baseline_comparisons["random-init"]
    assert _table(records, "bn-adapt,random-init").baseline == "bn-adapt"
    # the first baseline asked for stays the table's baseline even without a row there; its
    # comparisons are then empty and the other baseline's are still computed
    absent_first = _table(records, ["imagenet", "bn-adapt"])
    assert absent_first.baseline == "imagenet" and absent_first.comparisons == {}
    assert absent_first.baselines == ["bn-adapt"]
    assert forest_data(absent_first, ONE).baseline == "bn-adapt"


# ---- default baselines and absent ones ---------------------------------------------------


def test_the_default_skips_an_absent_bn_adapt_with_one_note(tmp_path: Path) -> None:
    records = _records(methods=("random-init", "good", "bad", "noisy"), fracs=(0.01, 0.1))
    (table,) = build_tables(records, n_boot=N_BOOT)  # the default baselines
    assert table.requested_baselines == DEFAULT_BASELINES
    assert table.baselines == ["random-init"]
    assert table.baseline_note == ("no Δ vs bn-adapt: no such row with per-unit scores in this "
                                   "table")
    assert table.stats_notes == {}
    texts = _render_all(tmp_path, records, baseline=None)
    for fmt in ("md", "console", "html"):
        assert "Δ vs random-init (1%)" in texts[fmt] and "Δ vs random-init (10%)" in texts[fmt]
        assert "Δ vs bn-adapt (" not in texts[fmt]  # no column
    assert texts["md"].count("bn-adapt") == 1  # one note for the table, not one per column
    assert texts["html"].count("bn-adapt") == 1
    assert json.loads(texts["json"])["tables"][0]["baseline_note"] == table.baseline_note
    assert "bn-adapt" not in pd.read_csv(io.StringIO(texts["csv"])).columns.str.cat()


def test_a_table_without_any_default_baseline_gets_one_note_and_no_error(tmp_path: Path) -> None:
    records = _records(methods=("good", "bad"), fracs=(0.01, 0.1))
    (table,) = build_tables(records, n_boot=N_BOOT)
    assert table.baselines == [] and table.comparisons == {}
    assert table.baseline == "random-init"  # the first asked for, as with a single baseline
    assert table.baseline_note.startswith("no statistics: no random-init or bn-adapt row")
    texts = _render_all(tmp_path, records, baseline=None)
    assert texts["md"].count("no statistics") == 1
    assert "Δ vs" not in texts["md"].split("## ", 1)[1]


def test_a_named_baseline_without_records_is_a_one_line_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, _records())
    code = cli_exit_code(["leaderboard", "--results", str(tmp_path), "--out",
                          str(tmp_path / "board"), "--baseline", "random-init,imagenet"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1
    assert "no records of imagenet" in err and "leave --baseline out" in err


def test_a_named_baseline_missing_from_one_table_is_skipped_there(tmp_path: Path) -> None:
    records = _records()
    records += [score_record("random-init", s, 50.0 + s, benchmark="b2", label_frac=0.01)
                for s in SEEDS]
    records += [score_record("bn-adapt", s, 60.0 + s, benchmark="b2", label_frac=0.01)
                for s in SEEDS]
    records += [score_record("good", s, 70.0 + s, benchmark="b2", label_frac=0.01)
                for s in SEEDS]
    b1, b2 = build_tables(records, baseline="bn-adapt", n_boot=N_BOOT)
    assert b1.baselines == ["bn-adapt"]
    # b2's records carry no per-unit scores: no statistics there, and a note, not an error
    assert b2.baselines == [] and "no statistics: no bn-adapt row" in b2.baseline_note


# ---- the shared-pretraining caveat -------------------------------------------------------


def test_shared_checkpoints_give_the_caveat_in_every_format(tmp_path: Path) -> None:
    records = _records(shared=tuple(SCORES))
    table = _table(records)
    assert table.shared_pretraining == table.methods and table.caveat == SHARED_PRETRAINING
    texts = _render_all(tmp_path, records)
    for fmt in ("md", "console", "csv", "html"):
        assert SHARED_PRETRAINING in texts[fmt], fmt
        assert "(rows:" not in texts[fmt], fmt
    assert texts["md"].count(SHARED_PRETRAINING) == 1
    data = json.loads(texts["json"])
    assert data["tables"][0]["caveat"] == SHARED_PRETRAINING
    assert all(r["shared_pretraining"] for r in data["rows"])
    assert r"\multicolumn{" in texts["latex"] and "Δ is about" not in texts["latex"]
    assert r"$\Delta$ is about these checkpoints" in texts["latex"]


def test_the_caveat_names_its_rows_when_only_some_share(tmp_path: Path) -> None:
    records = _records(shared=("good", "noisy"))
    table = _table(records)
    expected = f"{SHARED_PRETRAINING} (rows: {', '.join(table.shared_pretraining)})"
    assert sorted(table.shared_pretraining) == ["good", "noisy"]
    assert table.caveat == expected
    texts = _render_all(tmp_path, records)
    for fmt in ("md", "console", "csv", "html"):
        assert expected in texts[fmt], fmt
    assert json.loads(texts["json"])["tables"][0]["caveat"] == expected
    assert "(rows: good, noisy)" in texts["latex"] or "(rows: noisy, good)" in texts["latex"]
    rows = {r["method"]: r["shared_pretraining"] for r in json.loads(texts["json"])["rows"]}
    assert rows == {m: m in ("good", "noisy") for m in SCORES}


def test_distinct_checkpoints_give_no_caveat_in_any_format(tmp_path: Path) -> None:
    records = _records()
    assert _table(records).caveat == ""
    for fmt, text in _render_all(tmp_path, records).items():
        assert "one pretraining run" not in text and "these checkpoints" not in text, fmt
        if fmt == "json":
            data = json.loads(text)
            assert data["tables"][0]["caveat"] == ""
            assert not any(r["shared_pretraining"] for r in data["rows"])


def test_one_seed_or_one_column_reuse_is_not_a_shared_pretraining() -> None:
    """The same checkpoint at two label settings of one seed is normal, and an empty checkpoint
    (a semi-supervised method) says nothing."""
    records = [_record(m, s, SCORES[m][s] + 10 * j, frac=f, checkpoint=f"ck-{m}-{s}")
               for m in ("random-init", "good") for s in SEEDS
               for j, f in enumerate((0.01, 0.1))]
    records += [_record("semi", s, 55.0, checkpoint="") for s in SEEDS]
    (table,) = build_tables(records, baseline="random-init", n_boot=N_BOOT)
    assert table.shared_pretraining == [] and table.caveat == ""


def test_the_cell_identity_checkpoint_comes_before_the_record_field() -> None:
    def identified(seed: int, checkpoint: str) -> CellRecord:
        rec = _record("good", seed, 70.0 + seed, checkpoint=f"legacy-{seed}")
        rec.identity = CellIdentity(
            benchmark="b1", benchmark_version="1", protocol="linear",
            method=MethodIdentity(id="good", version="1", config_hash="c", distribution="p",
                                  distribution_version="1", source_hash="s",
                                  checkpoint=checkpoint),
            task=TaskIdentity(id="t", version="1", config_hash="t"),
            dataset=DatasetIdentity(id="d", version="1", fingerprint="f"),
            profile="smoke", label_subset="x", ssl_bench_version="0.2.0")
        return rec

    records = [identified(s, "ck-shared") for s in SEEDS]
    assert checkpoint_of(records[0]) == "ck-shared"
    (table,) = build_tables(records, baseline="good", n_boot=N_BOOT)
    assert table.shared_pretraining == ["good"] and table.caveat == SHARED_PRETRAINING
    records = [identified(s, f"ck-{s}") for s in SEEDS]
    (table,) = build_tables(records, baseline="good", n_boot=N_BOOT)
    assert table.caveat == ""


# ---- the forest plot ---------------------------------------------------------------------


def test_forest_data_is_the_paired_delta_with_its_bootstrap_interval() -> None:
    table = _table(_records())
    data = forest_data(table, ONE)
    assert data.baseline == "random-init"
    by_method = {r.method: r for r in data.rows}
    assert set(by_method) == set(SCORES)
    for m, row in by_method.items():
        comp = table.comparison(m, ONE)  # the first baseline's: what the star comes from
        assert comp is not None
        assert (row.delta, row.ci_low, row.ci_high, row.p_holm) == (
            comp.delta, comp.ci_low, comp.ci_high, comp.p_holm)
        stat = table.cells[(m, ONE)]
        assert stat.ci is not None and (row.ci_low, row.ci_high) != stat.ci
    verdicts = {m: r.verdict for m, r in by_method.items()}
    assert verdicts == {"random-init": "baseline", "bn-adapt": "better", "good": "better",
                        "bad": "worse", "noisy": "not significant"}
    assert by_method["good"].colour != by_method["bad"].colour
    assert by_method["noisy"].colour == VERDICT_COLOURS["not significant"]
    assert by_method["good"].label == "good *" and by_method["noisy"].label == "noisy"
    assert [r.method for r in data.rows] == ["good", "bn-adapt", "noisy", "random-init", "bad"]
    assert by_method["random-init"].delta == 0.0


def test_forest_verdicts_follow_a_lower_is_better_metric() -> None:
    records = _records()
    for r in records:
        r.task.higher_is_better = {"acc": False}
    data = forest_data(_table(records), ONE)
    verdicts = {r.method: r.verdict for r in data.rows}
    assert verdicts["good"] == "worse" and verdicts["bad"] == "better"
    assert [r.method for r in data.rows][0] == "bad"  # best (lowest) at the top


def test_forest_caption_states_the_smallest_p_the_bootstrap_can_give() -> None:
    table = _table(_records())
    caption = forest_data(table, ONE).caption
    floor = 2.0 / (N_BOOT + 1)
    assert f"B = {N_BOOT}" in caption and f"{floor:.2g}" in caption
    assert "Holm over 4 rows" in caption and f"{4 * floor:.2g}" in caption
    assert "2/3^3 = 0.074" in caption
    # the floor is reached: a row better on every unit of every seed gets exactly 2/(B+1)
    good = table.comparison("good", ONE)
    assert good is not None and good.p_value == pytest.approx(floor)
    assert smallest_p_text(10000, 3, 4).startswith(
        "smallest p = 2/(B+1) = 0.0002 with B = 10000 replicates (Holm over 4 rows: smallest "
        "adjusted p = 0.0008)")
    assert "one seed" in smallest_p_text(10000, 1, 2)


def test_forest_data_without_a_baseline_says_so() -> None:
    data = forest_data(_table(_records(methods=("good", "bad")), "random-init"), ONE)
    assert data.baseline is None and data.rows == []
    assert data.caption.startswith("no paired statistics")
