"""The validity scripts' logic (benchmarks/validity/calls.py, replication.py, sanity.py) on
hand-made boards: significance calls, agreement and sign flips, Kendall's tau, the
replication verdict, each sanity ordering holding and failing, and each script's --help.
Records are built here with per-unit parts; bootstraps are small and seeded."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

VALIDITY = Path(__file__).resolve().parents[1] / "benchmarks" / "validity"
sys.path.insert(0, str(VALIDITY))

import calls as cv  # noqa: E402

from ssl_bench.records import CellRecord, write_record  # noqa: E402
from ssl_bench.testing import score_record  # noqa: E402
from ssl_bench.unit_scores import mean_parts  # noqa: E402

N_BOOT = 400
UNITS = [f"u{i}" for i in range(12)]
SEEDS = (0, 1, 2)


def _record(method: str, seed: int, values: dict[str, float], *, benchmark: str = "b1",
            kind: str = "pretrain", details: dict[str, Any] | None = None,
            status: str = "ok") -> CellRecord:
    """``score_record``'s record (main score ``acc``, higher is better) with per-unit parts
    ``values``, a label subset per seed, ``kind`` and ``details``."""
    parts = mean_parts(values)
    ok = status == "ok"
    record = score_record(method, seed, parts.value() if ok else None, benchmark=benchmark,
                          label_frac=0.01, status=status)
    return record.model_copy(update={
        "method_kind": kind, "label_units": [f"train{seed}"], "details": details or {},
        "per_unit": {"acc": values} if ok else {}, "main_parts": parts.to_json() if ok else None})


def _board(offsets: dict[str, float], *, benchmarks: tuple[str, ...] = ("b1",),
           seed: int = 0) -> list[CellRecord]:
    """random-init around 50 per unit (seeded noise); each other row = random-init + its offset
    + small noise of its own."""
    rng = np.random.default_rng(seed)
    out = []
    for bench in benchmarks:
        for s in SEEDS:
            base = {u: 50.0 + float(rng.normal(0, 5)) for u in UNITS}
            out.append(_record(cv.BASELINE, s, base, benchmark=bench))
            for method, offset in offsets.items():
                values = {u: v + offset + float(rng.normal(0, 0.5)) for u, v in base.items()}
                out.append(_record(method, s, values, benchmark=bench))
    return out


def _tables(records: list[CellRecord], baseline: str = cv.BASELINE) -> dict[str, Any]:
    return cv.main_tables(records, baseline, n_boot=N_BOOT)


# ---- calls, agreement, Kendall's tau ------------------------------------------------------


def test_verdict_of_reads_the_metric_direction() -> None:
    assert cv.verdict_of(2.0, True, True) == cv.BETTER
    assert cv.verdict_of(-2.0, True, True) == cv.WORSE
    assert cv.verdict_of(-2.0, True, False) == cv.BETTER  # lower is better
    assert cv.verdict_of(5.0, False, True) == cv.SAME
    assert cv.verdict_of(math.nan, True, True) == cv.SAME


def test_agreement_fraction_and_sign_flips_by_hand() -> None:
    a = _tables(_board({"imagenet": 8.0, "up": 6.0, "down": -6.0, "flat": 0.0}, seed=1))
    b = _tables(_board({"imagenet": 8.0, "up": 6.0, "down": 6.0, "flat": 0.0}, seed=2))
    calls_a, calls_b = cv.board_calls(a), cv.board_calls(b)
    assert {k[2]: c.verdict for k, c in calls_a.items()} == {
        "imagenet": cv.BETTER, "up": cv.BETTER, "down": cv.WORSE, "flat": cv.SAME}
    assert calls_b[("b1", "1%", "down")].verdict == cv.BETTER
    (ag,) = cv.compare_boards(a, b, cv.BASELINE)
    # 4 calls (random-init is the baseline, not a call); 3 agree; down flips
    assert (ag.calls, ag.agree, ag.sign_flips) == (4, 3, ["down"])
    assert ag.fraction == pytest.approx(0.75) and not ag.meets_target
    (d,) = ag.disagreements
    assert d["method"] == "down" and d["a"]["call"] == cv.WORSE and d["b"]["call"] == cv.BETTER
    assert d["a"]["delta"] < -5 < 5 < d["b"]["delta"] and d["a"]["p_holm"] < 0.05
    js = ag.as_json()
    assert js["agreement"] == 0.75 and js["meets_target"] is False
    json.dumps(js)


def test_the_agreement_target_is_ninety_percent_and_no_flip() -> None:
    def agreement(agree: int, calls: int, flips: list[str]) -> cv.Agreement:
        return cv.Agreement("b", "1%", cv.BASELINE, calls, agree, flips, [], None, None, 0)

    assert agreement(9, 10, []).meets_target and agreement(27, 30, []).meets_target
    assert not agreement(8, 10, []).meets_target and not agreement(11, 13, []).meets_target
    assert not agreement(10, 11, ["x"]).meets_target and not agreement(0, 0, []).meets_target


def test_a_call_missing_in_one_board_is_not_counted() -> None:
    a = _tables(_board({"imagenet": 8.0, "up": 6.0}, seed=1))
    b = _tables(_board({"imagenet": 8.0}, seed=2))
    (ag,) = cv.compare_boards(a, b, cv.BASELINE)
    assert (ag.calls, ag.agree, ag.only_a, ag.only_b) == (1, 1, ["up"], [])
    assert ag.meets_target


def test_kendall_tau_matches_scipy_and_the_hand_count() -> None:
    from scipy.stats import kendalltau

    a = {"p": 1.0, "q": 2.0, "r": 3.0, "s": 4.0, "only-a": 9.0}
    b = {"p": 1.5, "q": 3.5, "r": 2.5, "s": 4.5}
    tau, p, n = cv.kendall(a, b)
    # 6 pairs of the 4 common rows, one discordant (q, r): (5 - 1) / 6
    assert n == 4 and tau == pytest.approx(4 / 6)
    ref = kendalltau([1, 2, 3, 4], [1.5, 3.5, 2.5, 4.5])
    assert tau == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert cv.kendall({"p": 1.0}, {"p": 2.0}) == (None, None, 1)


def test_compare_boards_tau_is_scipy_on_the_row_means() -> None:
    from scipy.stats import kendalltau

    a = _tables(_board({"imagenet": 8.0, "up": 6.0, "down": -6.0, "flat": 0.5}, seed=1))
    b = _tables(_board({"imagenet": 8.0, "up": 6.0, "down": -6.0, "flat": -0.5}, seed=2))
    (ag,) = cv.compare_boards(a, b, cv.BASELINE)
    col = a["b1"].columns[0]
    ma, mb = cv.row_means(a["b1"], col), cv.row_means(b["b1"], col)
    rows = sorted(ma)
    assert rows == ["down", "flat", "imagenet", cv.BASELINE, "up"]
    ref = kendalltau([ma[m] for m in rows], [mb[m] for m in rows])
    assert ag.kendall_tau == pytest.approx(ref.statistic, abs=1e-6)
    assert ag.ranked_rows == 5


# ---- the replication verdict ----------------------------------------------------------------


DECIDING = {"imagenet": 8.0, "up": 6.0, "up2": 5.0, "down": -6.0, "flat": 0.0,
            "bn-adapt": 6.0, "supervised": 0.0}


def test_verdict_passes_when_calls_agree_and_the_boards_decide() -> None:
    ra, rb = _board(DECIDING, benchmarks=("b1", "b2"), seed=1), _board(
        DECIDING, benchmarks=("b1", "b2"), seed=2)
    a, b = _tables(ra), _tables(rb)
    agreements = cv.compare_boards(a, b, cv.BASELINE)
    kinds = cv.method_kinds(ra)
    assert cv.ssl_rows(kinds) == ["down", "flat", "up", "up2"]  # controls named out
    verdict = cv.replication_verdict(agreements, a, b, kinds)
    assert verdict["passes"], verdict["reasons"]
    assert sorted(verdict["ssl_rows_decided"]) == ["down", "up", "up2"]
    assert verdict["imagenet_vs_random_init"]["a"] == {"b1": cv.BETTER, "b2": cv.BETTER}


def test_a_board_that_calls_nothing_fails_the_decides_clause() -> None:
    quiet = {"imagenet": 0.0, "up": 0.0, "up2": 0.0, "down": 0.0}
    a, b = _tables(_board(quiet, seed=1)), _tables(_board(quiet, seed=2))
    agreements = cv.compare_boards(a, b, cv.BASELINE)
    assert all(ag.meets_target for ag in agreements)  # everything agrees: "no difference"
    verdict = cv.replication_verdict(agreements, a, b, cv.method_kinds(_board(quiet)))
    assert verdict["replicates"] and not verdict["decides"] and not verdict["passes"]
    assert any("imagenet is not significantly above" in r for r in verdict["reasons"])
    assert any("0 SSL rows" in r for r in verdict["reasons"])


def test_a_sign_flip_or_a_missing_benchmark_fails_the_replicates_clause() -> None:
    flipped = dict(DECIDING, down=6.0)
    a = _tables(_board(DECIDING, seed=1))
    b = _tables(_board(flipped, benchmarks=("b1", "b2"), seed=2))
    kinds = cv.method_kinds(_board(DECIDING))
    verdict = cv.replication_verdict(cv.compare_boards(a, b, cv.BASELINE), a, b, kinds)
    assert not verdict["replicates"] and not verdict["passes"]
    assert any("sign flips down" in r for r in verdict["reasons"])
    assert any("only one board: b2" in r for r in verdict["reasons"])


def test_replication_compare_adds_the_bn_adapt_family_and_renders(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import replication

    ra, rb = _board(DECIDING, seed=1), _board(DECIDING, seed=2)
    out = replication.compare(ra, rb, N_BOOT)
    assert out["baselines"] == [cv.BASELINE, cv.BN_ADAPT]
    assert [a["baseline"] for a in out["agreements"]] == [cv.BASELINE, cv.BN_ADAPT]
    assert out["verdict"]["passes"], out["verdict"]["reasons"]
    result = {**out, "runs": {n: {"seeds": s, "seeds_found": [0, 1, 2], "records": len(ra),
                                  "threads": [1], "seconds": 60.0, "command": "ssl-bench run"}
                              for n, s in (("a", "0,1,2"), ("b", "3,4,5"))},
              "skip_runs": False, "machine": {"nproc": 2, "cpu": "cpu", "torch": "2",
                                               "loadavg_1min": 1.0, "date": "today"},
              "loadavg_end": 1.5, "seconds": 120.0, "command": "python replication.py"}
    text = replication.readme_section(result)
    assert "**Verdict: PASSES**" in text and "| bn-adapt | b1 |" in text
    json.dumps(result)


def test_a_baseline_absent_from_a_benchmark_in_both_boards_is_left_out_there() -> None:
    def board(seed: int) -> list[CellRecord]:
        return (_board(DECIDING, benchmarks=("b1",), seed=seed)
                + _board({"imagenet": 8.0}, benchmarks=("b2",), seed=seed))

    a, b = _tables(board(1), cv.BN_ADAPT), _tables(board(2), cv.BN_ADAPT)
    assert [ag.benchmark for ag in cv.compare_boards(a, b, cv.BN_ADAPT)] == ["b1"]


def test_replication_skip_runs_compares_two_folders(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import replication

    monkeypatch.setattr(replication, "WORK", tmp_path / "work")
    for folder, seeds, flip in (("a", (0, 1, 2), 1), ("b", (3, 4, 5), 2)):
        for r in _board(DECIDING, seed=flip):
            write_record(tmp_path / folder, r.model_copy(update={"seed": seeds[r.seed],
                                                                 "cell_seed": seeds[r.seed]}))
    replication.main(["--skip-runs", "--results-a", str(tmp_path / "a"), "--results-b",
                      str(tmp_path / "b"), "--seeds-a", "0,1,2", "--seeds-b", "3,4,5",
                      "--n-boot", str(N_BOOT)])
    result = json.loads((tmp_path / "work" / "replication_custom.json").read_text())
    assert result["runs"]["b"]["seeds_found"] == [3, 4, 5]
    assert result["verdict"]["passes"], result["verdict"]["reasons"]
    assert result["runs"]["a"]["seconds"] is None


def test_replication_options_name_the_measurement_and_its_commands(tmp_path: Path) -> None:
    import replication

    cases = {(): (True, "replication"), ("--threads-b", "2"): (True, "replication_threads2"),
             ("--threads-b", "2", "--seeds-b", "0,1,2,3,4"): (True,
                                                              "replication_threads2_same_seeds"),
             ("--seeds-b", "0,1,2"): (False, "replication"),
             ("--profile", "smoke"): (False, "replication"),
             ("--results-a", "results", "--skip-runs"): (True, "replication")}
    for argv, (official, name) in cases.items():
        args, is_official = replication.parse(list(argv))
        assert (is_official, replication.output_name(args)) == (official, name), argv
    args, _ = replication.parse(["--threads-b", "2"])
    command, env = replication.run_command(args, "3,4,5", tmp_path, 2)
    assert env == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    text = replication.shown(command, env)
    assert text.startswith("OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 ssl-bench run --methods all")
    assert "--seeds 3,4,5 --profile cpu" in text and text.endswith("--jobs 1")
    command, env = replication.run_command(args, "0,1,2", tmp_path, None)
    assert env == {} and command[-2:] == ["--jobs", "auto"]
    other = ("--machine-b", "AMD", "--results-b", "b", "--skip-runs")
    for argv, (official, name) in {
            other + ("--seeds-b", "0,1,2,3,4"): (True, "replication_other_machine_same_seeds"),
            other: (True, "replication_other_machine"),
            other + ("--seeds-b", "0,1"): (False, "replication_other_machine")}.items():
        args, is_official = replication.parse(list(argv))
        assert (is_official, replication.output_name(args)) == (official, name), argv
    with pytest.raises(SystemExit):  # a board made elsewhere is compared, never run here
        replication.parse(["--machine-b", "AMD", "--results-b", "b"])


def test_same_cells_in_two_boards_give_the_environment_s_differences() -> None:
    import replication

    from ssl_bench.records import CellIdentity, DatasetIdentity, MethodIdentity, TaskIdentity

    identity = CellIdentity(
        benchmark="b1", benchmark_version="1", protocol="linear",
        method=MethodIdentity(id="m", version="1", config_hash="c", distribution="p",
                              distribution_version="1", source_hash="s", checkpoint="k",
                              pretrain_seed=0),
        task=TaskIdentity(id="t", version="1", config_hash="t1"),
        dataset=DatasetIdentity(id="d", version="1", fingerprint="f"), profile="cpu",
        label_subset="l", ssl_bench_version="0.2.0")

    def cells(scores: dict[tuple[str, int], float]) -> list[CellRecord]:
        out = []
        for (bench, seed), score in scores.items():
            rec = _record("m", seed, {"u0": score}, benchmark=bench)
            rec.identity = identity.model_copy(update={"benchmark": bench})
            out.append(rec)
        return out

    a = cells({("b1", 0): 50.0, ("b1", 1): 60.0, ("b1", 2): 40.0, ("b2", 0): 10.0})
    b = cells({("b1", 0): 50.0, ("b1", 1): 61.5, ("b1", 2): 39.5, ("b2", 1): 10.0})
    out = replication.cell_differences(a, b)
    assert list(out) == ["b1"]  # b2's cells have other seeds: not the same cells
    assert out["b1"]["cells"] == 3 and out["b1"]["identical"] == 1
    assert out["b1"]["max_abs"] == pytest.approx(1.5)
    assert out["b1"]["median_abs"] == pytest.approx(0.5)
    assert out["b1"]["p95_abs"] == pytest.approx(np.percentile([0.0, 1.5, 0.5], 95))
    # another cell identity (here another label subset) is another cell
    b[1].identity = b[1].identity.model_copy(update={"label_subset": "other"})
    assert replication.cell_differences(a, b)["b1"]["cells"] == 2


# ---- sanity orderings -----------------------------------------------------------------------


def test_baseline_orderings_hold_and_fail() -> None:
    tables = _tables(_board({cv.COLLAPSED: -6.0, "imagenet": 8.0, "supervised": 0.0}, seed=3))
    (collapsed,) = cv.baseline_orderings(tables, cv.COLLAPSED, "significantly below", "c")
    (imagenet,) = cv.baseline_orderings(tables, "imagenet", "significantly above", "i")
    (supervised,) = cv.baseline_orderings(tables, "supervised", "not significantly below", "s")
    assert collapsed.holds and imagenet.holds and supervised.holds
    assert collapsed.figures["delta"] < 0 and collapsed.figures["p_holm"] < 0.05
    assert collapsed.figures["call"] == cv.WORSE and "wanted significantly below" in collapsed.why

    tables = _tables(_board({cv.COLLAPSED: 0.0, "imagenet": 0.0, "supervised": -6.0}, seed=3))
    (collapsed,) = cv.baseline_orderings(tables, cv.COLLAPSED, "significantly below", "c")
    (imagenet,) = cv.baseline_orderings(tables, "imagenet", "significantly above", "i")
    (supervised,) = cv.baseline_orderings(tables, "supervised", "not significantly below", "s")
    assert not collapsed.holds and not imagenet.holds and not supervised.holds
    assert supervised.figures["call"] == cv.WORSE


def test_a_missing_row_fails_unless_the_ordering_does_not_apply() -> None:
    records = _board({"imagenet": 8.0}, seed=4)
    records += [_record("supervised", s, {}, status="n/a") for s in SEEDS]
    tables = _tables(records)
    (missing,) = cv.baseline_orderings(tables, cv.COLLAPSED, "significantly below", "c")
    assert not missing.holds and "no simclr-collapsed row" in missing.why
    assert cv.baseline_orderings(tables, "supervised", "not significantly below", "s",
                                 only_where_present=True) == []


def _mms(seed: int, row: float, labels_only: float | None, *, val: bool = False) -> CellRecord:
    values = {u: row + (i - 5.5) for i, u in enumerate(UNITS)}
    network: dict[str, Any] = {"val_score": labels_only + 1.0 if labels_only is not None
                               else None}
    if labels_only is not None and not val:
        network["test"] = {"acc": labels_only}
    details = {"best_val_score": row + 1.0, "extra_predictors": {"network-2": network}}
    return _record("mms", seed, values, kind="semi-supervised", details=details)


def test_labels_only_ordering_holds_and_fails() -> None:
    above = [_mms(s, 40.0 + s, 35.0 + s) for s in SEEDS]
    (o,) = cv.labels_only_orderings(above)
    assert o.holds and o.figures["split"] == "test" and o.figures["network"] == "network-2"
    assert o.figures["delta"] == pytest.approx(5.0) and o.figures["row"] == [40.0, 41.0, 42.0]

    below = [_mms(s, 30.0 + d, 40.0) for s, d in zip(SEEDS, (0.0, 0.5, -0.5))]
    (o,) = cv.labels_only_orderings(below)
    # per-seed differences -10, -9.5, -10.5: t = -10 / (0.5 / sqrt 3), p well below 0.05
    from scipy.stats import ttest_1samp

    assert not o.holds and o.figures["delta"] == pytest.approx(-10.0)
    assert o.figures["p_seed_t_test"] == pytest.approx(
        ttest_1samp([-10.0, -9.5, -10.5], 0.0).pvalue, abs=1e-6)
    assert "significantly below" in o.why

    noisy = [_mms(s, 40.0 + d, 41.0) for s, d in zip(SEEDS, (-6.0, 5.0, -2.0))]
    (o,) = cv.labels_only_orderings(noisy)
    assert o.holds and "numerically below" in o.why


def test_labels_only_ordering_falls_back_to_val_and_fails_without_a_score() -> None:
    (o,) = cv.labels_only_orderings([_mms(s, 40.0, 35.0, val=True) for s in SEEDS])
    assert o.figures["split"] == "val" and "val" in o.why and o.holds
    assert o.figures["row"] == [41.0, 41.0, 41.0]  # network 1's best val score
    (o,) = cv.labels_only_orderings([_mms(s, 40.0, None) for s in SEEDS])
    assert not o.holds and "no score of network-2" in o.why


def test_sanity_check_and_readme_on_a_hand_made_board(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sanity

    records = _board({"imagenet": 8.0, "supervised": 0.0}, seed=5)
    records += [_mms(s, 40.0, 35.0) for s in SEEDS]
    # the control's board: the same random-init, a collapsed row 6 below it
    control = _board({"imagenet": 8.0, "supervised": 0.0, cv.COLLAPSED: -6.0}, seed=5)
    orderings = sanity.check(records, control, N_BOOT)
    assert [o.name.split()[0] for o in orderings] == ["collapsed", "imagenet", "supervised",
                                                      "mms"]
    assert all(o.holds for o in orderings), [o.why for o in orderings]
    settings = sanity.run_settings(records)
    assert settings["seeds"] == [0, 1, 2] and settings["profile"] == "smoke"
    assert settings["label_fracs"] == [0.01] and settings["benchmarks"] == ["b1"]
    args = sanity.control_command(settings, tmp_path / "w", "1", None, "small")
    assert args[:3] == ["run", "--methods", cv.COLLAPSED] and "--synthetic-size" in args
    result = {"orderings": [o.as_json() for o in orderings], "settings": settings,
              "control_run": {"args": args, "seconds": 30.0}, "results": "results",
              "work": "w", "records": len(records), "seconds": 40.0, "loadavg_end": 1.0,
              "command": "python sanity.py",
              "machine": {"nproc": 2, "cpu": "cpu", "torch": "2", "loadavg_1min": 1.0,
                          "date": "today"}}
    text = sanity.readme_section(result)
    assert "**4 of 4 orderings hold.**" in text
    json.dumps(result)


def test_sanity_main_exits_non_zero_when_an_ordering_fails(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import sanity

    monkeypatch.setattr(sanity, "WORK", tmp_path / "out")
    for r in _board({"imagenet": 0.0}, seed=6):  # imagenet not above random-init
        write_record(tmp_path / "results", r)
    for r in _board({"imagenet": 0.0, cv.COLLAPSED: -6.0}, seed=6):
        write_record(tmp_path / "work", r)
    argv = ["--results", str(tmp_path / "results"), "--work", str(tmp_path / "work"),
            "--skip-run", "--n-boot", str(N_BOOT)]
    with pytest.raises(SystemExit) as info:
        sanity.main(argv)
    assert info.value.code == 1
    sanity.main(argv + ["--no-fail"])
    result = json.loads((tmp_path / "out" / "sanity_custom.json").read_text())
    holds = {(o["name"].split()[0], o["benchmark"]): o["holds"] for o in result["orderings"]}
    assert holds == {("collapsed", "b1"): True, ("imagenet", "b1"): False}
    assert result["holds"] is False


def test_prepare_work_copies_records_and_keeps_the_controls(tmp_path: Path) -> None:
    import sanity

    for r in _board({"imagenet": 8.0}, seed=7):
        write_record(tmp_path / "results", r)
    stale = tmp_path / "work" / "records" / "b1" / "old-method" / "lf0.01-seed0.json"
    kept = tmp_path / "work" / "records" / "b1" / cv.COLLAPSED / "lf0.01-seed0.json"
    for path in (stale, kept):
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    sanity.prepare_work(tmp_path / "results", tmp_path / "work")
    assert kept.exists() and not stale.exists()
    assert (tmp_path / "work" / "records" / "b1" / "imagenet" / "lf0.01-seed2.json").exists()


# ---- seed_budget: expected agreement of two boards of k seeds ------------------------------


def _board_with_seeds(seeds: tuple[int, ...], offsets: dict[str, float], seed: int,
                      monkeypatch: pytest.MonkeyPatch) -> list[CellRecord]:
    monkeypatch.setattr(sys.modules[__name__], "SEEDS", seeds)
    return _board(offsets, benchmarks=("b1", "b2"), seed=seed)


def test_seed_budget_pools_disjoint_boards_and_finds_clear_calls_replicate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import seed_budget

    offsets = {"imagenet": 8.0, "bn-adapt": 3.0, "down": -6.0, "flat": 0.0}
    a = _board_with_seeds((0, 1, 2), offsets, 1, monkeypatch)
    b = _board_with_seeds((3, 4, 5), offsets, 2, monkeypatch)
    pools = seed_budget.pool_inputs([a, b])
    assert sorted(pools) == ["b1", "b2"]
    assert pools["b1"].seeds == [0, 1, 2, 3, 4, 5]
    assert set(pools["b1"].methods) == {cv.BASELINE, *offsets}
    result = seed_budget.expected_agreement(pools, [3, 4], pairs=5, n_boot=N_BOOT)
    assert result["baselines"] == [cv.BASELINE, cv.BN_ADAPT]
    by_k = {row["k"]: row for row in result["by_k"]}
    # three disjoint seeds from six: 10 unordered splits, 5 drawn; four: resampled boards
    assert (by_k[3]["drawn"], by_k[3]["pairs"]) == ("disjoint", 5)
    assert (by_k[4]["drawn"], by_k[4]["pairs"]) == ("resampled", 5)
    for row in result["by_k"]:
        assert row["pairs_passing_every_family"] == 1.0
        for family in row["families"]:
            assert family["agreement_mean"] == 1.0 and family["sign_flips"] == 0
    random_init = [f for f in by_k[3]["families"] if f["baseline"] == cv.BASELINE]
    assert all(f["decided_per_board"] == 3.0 for f in random_init)  # all but flat


def test_seed_budget_counts_a_call_that_depends_on_the_seeds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A row far better on seeds 0-2 and far worse on 3-5: the split 0-2 / 3-5 flips it."""
    import seed_budget

    a = _board_with_seeds((0, 1, 2), {"imagenet": 8.0, "moody": 6.0}, 1, monkeypatch)
    b = _board_with_seeds((3, 4, 5), {"imagenet": 8.0, "moody": -6.0}, 2, monkeypatch)
    pools = seed_budget.pool_inputs([a, b])
    verdict_a = seed_budget.board_verdicts(pools["b1"], [0, 1, 2], cv.BASELINE, N_BOOT, 0)
    verdict_b = seed_budget.board_verdicts(pools["b1"], [3, 4, 5], cv.BASELINE, N_BOOT, 1)
    assert (verdict_a["moody"], verdict_b["moody"]) == (cv.BETTER, cv.WORSE)
    assert verdict_a["imagenet"] == verdict_b["imagenet"] == cv.BETTER
    how, pairs = seed_budget.board_pairs([0, 1, 2, 3, 4, 5], 3, 100, np.random.default_rng(0))
    assert how == "disjoint" and len(pairs) == 10
    assert all(sorted(x + y) == [0, 1, 2, 3, 4, 5] for x, y in pairs)
    # fewer seeds per board than half the pool: every disjoint pair, not only those with seed 0
    how, pairs = seed_budget.board_pairs([0, 1, 2, 3, 4, 5], 2, 100, np.random.default_rng(0))
    assert how == "disjoint" and len(pairs) == 45  # C(6,2) * C(4,2) / 2
    assert len({frozenset(map(frozenset, p)) for p in pairs}) == 45
    assert any(0 not in x + y for x, y in pairs)
    result = seed_budget.expected_agreement(pools, [3], pairs=100, n_boot=N_BOOT)
    (row,) = result["by_k"]
    assert row["pairs_passing_every_family"] < 1.0
    assert sum(f["sign_flips"] for f in row["families"]) >= 2  # 0-2 / 3-5 on both benchmarks


def test_seed_budget_refuses_overlapping_seeds_and_too_few_replicates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seed_budget

    a = _board_with_seeds((0, 1, 2), {"imagenet": 8.0}, 1, monkeypatch)
    b = _board_with_seeds((2, 3, 4), {"imagenet": 8.0}, 2, monkeypatch)
    with pytest.raises(SystemExit, match="seeds \\[2\\] are in two inputs"):
        seed_budget.pool_inputs([a, b])
    for board, records in (("a", a), ("b", _board_with_seeds((5, 6, 7), {"imagenet": 8.0}, 2,
                                                              monkeypatch))):
        for r in records:
            write_record(tmp_path / board, r)
    with pytest.raises(SystemExit, match="--n-boot 20 is too few"):
        seed_budget.main(["--results", str(tmp_path / "a"), "--results", str(tmp_path / "b"),
                          "--n-boot", "20"])
    monkeypatch.setattr(seed_budget, "WORK", tmp_path / "work")
    seed_budget.main(["--results", str(tmp_path / "a"), "--results", str(tmp_path / "b"),
                      "--k", "3", "--n-boot", str(N_BOOT)])
    written = json.loads((tmp_path / "work" / "seed_budget_custom.json").read_text())
    assert written["pooled_seeds"] == [0, 1, 2, 5, 6, 7]
    assert "| 3 | disjoint (10 pairs) | 100% |" in seed_budget.readme_section(written)


# ---- the scripts' command lines -------------------------------------------------------------


@pytest.mark.parametrize("script", ["replication", "sanity", "seed_budget"])
def test_script_help(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    module = importlib.import_module(script)
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    assert "usage:" in capsys.readouterr().out
