"""Run estimates, the live ETA and the kept rates (ssl_bench.engine.estimate, .eta, .rates),
against hand-computed cases."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssl_bench.api import Dataset, DatasetMeta, Unit, UnitData
from ssl_bench.engine.cost import Estimate, ItemCost, ItemKey, PretrainSpec
from ssl_bench.engine.estimate import (
    GUESS_CELL_S,
    GUESS_STEPS,
    Estimator,
    RunEstimate,
    StageSummary,
    _unit_work,
    bytes_text,
    clock_text,
    estimate_lines,
)
from ssl_bench.engine.eta import EtaTracker
from ssl_bench.engine.rates import (
    CellRate,
    PretrainRate,
    Rates,
    learn_from_results,
    load_rates,
    rates_path,
    remember,
    remember_decode_rate,
)
from ssl_bench.testing import FakeClock


def fields(benchmark: str, method: str, label: str = "0.1", task: str = "t1",
           profile: str = "cpu") -> dict[str, str]:
    return {"benchmark": benchmark, "task": task, "protocol": "linear", "method": method,
            "label": label, "profile": profile, "device": "cpu"}


def cell_rate(seconds: float, n: int = 1, **kw: Any) -> CellRate:
    return CellRate(fields(**kw), seconds, n)


def spec(method: str = "m1", domain: str = "surgical", max_steps: int | None = None,
         config: str = "c", pool: str = "p", epochs: int = 1, batch_size: int = 1,
         pool_frames: int | None = None) -> PretrainSpec:
    return PretrainSpec(method, domain, "cpu", "cpu", config, pool, max_steps, epochs,
                        batch_size, pool_frames)


def work(kind: str, key: str, stage: str, estimate: Estimate,
         fields: dict[str, str] | None = None, **kw: Any) -> tuple[ItemKey, ItemCost]:
    """One item of a run's estimate: its (kind, key) and its cost."""
    return (kind, key), ItemCost(stage, estimate, dict(fields or {}), **kw)


# ---- rates lookups ----------------------------------------------------------------------


def test_cell_estimate_falls_back_from_the_finest_key_to_a_guess() -> None:
    rates = Rates(cells={"a": cell_rate(10.0, 2, benchmark="b1", method="m1"),
                         "b": cell_rate(30.0, 1, benchmark="b1", method="m2")})
    est = Estimator(rates)
    exact = est.cell(fields("b1", "m1"))
    assert (exact.seconds, exact.quality, exact.from_run) == (10.0, "measured", False)
    other_label = est.cell(fields("b1", "m1", label="0.5"))
    assert (other_label.seconds, other_label.quality) == (10.0, "related")
    assert "another label setting" in other_label.basis
    # other methods on b1: (2 x 10 + 30) / 3
    other_method = est.cell(fields("b1", "m3"))
    assert other_method.seconds == pytest.approx(50 / 3) and "other methods" in other_method.basis
    same_task = est.cell(fields("b2", "m1"))
    assert same_task.seconds == pytest.approx(50 / 3) and "of the task" in same_task.basis
    other_task = est.cell(fields("b3", "m1", task="t2"))
    assert other_task.seconds == pytest.approx(50 / 3) and "other benchmarks" in other_task.basis
    guess = est.cell(fields("b1", "m1", profile="paper"))
    assert (guess.seconds, guess.quality) == (GUESS_CELL_S["paper"], "guess")


def test_this_runs_measures_come_after_stored_ones_at_the_same_level() -> None:
    rates = Rates(cells={"a": cell_rate(10.0, benchmark="b1", method="m1")})
    est = Estimator(rates)
    est.learn_cell(fields("b1", "m1"), 40.0)
    est.learn_cell(fields("b1", "m2"), 20.0)
    assert est.cell(fields("b1", "m1")).seconds == 10.0  # stored, exact
    run = est.cell(fields("b1", "m2"))
    assert (run.seconds, run.quality, run.from_run) == (20.0, "measured", True)
    # b1 under other methods: the stored level-2 mean (10) comes before this run's (30)
    assert est.cell(fields("b1", "m9")).seconds == 10.0


def test_pretraining_steps_and_seconds_per_step() -> None:
    rates = Rates(pretraining={"m1|cpu|surgical|cpu": PretrainRate(
        "m1", "cpu", "surgical", "cpu", seconds_per_step=2.0, steps=50, config="c", pool="p",
        overhead_s=7.0)})
    est = Estimator(rates)
    same, steps = est.pretraining(spec())  # 50 steps x 2 s + 7 s outside the steps
    assert (same.seconds, steps, same.quality) == (107.0, 50, "measured")
    capped, steps = est.pretraining(spec(config="other", max_steps=30))
    assert (capped.seconds, steps, capped.quality) == (67.0, 30, "measured")
    other_pool, steps = est.pretraining(spec(pool="new"))
    assert (other_pool.seconds, steps, other_pool.quality) == (107.0, 50, "related")
    other_domain, steps = est.pretraining(spec(domain="ct", max_steps=10))
    assert (other_domain.seconds, steps, other_domain.quality) == (20.0, 10, "related")
    est.learn_pretraining(spec(method="m2", max_steps=10), 0.5)
    run, steps = est.pretraining(spec(method="m2", max_steps=10))
    assert (run.seconds, run.from_run) == (5.0, True)


def test_unmeasured_steps_are_planned_from_the_pools_counted_frames() -> None:
    """epochs x (frames // batch), capped by max_steps, as the pretraining itself counts them;
    a measured run of the same config and pool still wins, and without a frame count the
    steps are max_steps or a labelled guess."""
    est = Estimator(Rates())
    steps, quality, basis = est.steps(spec(epochs=100, batch_size=256, pool_frames=3019))
    assert (steps, quality) == (100 * 11, "measured")
    assert basis == "steps: 100 epoch(s) of 3,019 pool frames at batch 256"
    steps, _, basis = est.steps(spec(epochs=100, batch_size=256, pool_frames=3019,
                                     max_steps=500))
    assert (steps, basis.endswith("capped by max_steps 500")) == (500, True)
    assert est.steps(spec(epochs=3, batch_size=64, pool_frames=10))[0] == 3  # pool < batch
    assert est.steps(spec(max_steps=40))[:2] == (40, "measured")
    steps, quality, basis = est.steps(spec(pool=""))  # no data folder yet
    assert (steps, quality) == (GUESS_STEPS, "guess") and "ssl-bench data synth" in basis
    steps, quality, basis = est.steps(spec())  # a reader that does not count its frames
    assert (steps, quality) == (GUESS_STEPS, "guess")
    assert "does not count its frames (Dataset.frame_count)" in basis
    rates = Rates(pretraining={"m1|cpu|surgical|cpu": PretrainRate(
        "m1", "cpu", "surgical", "cpu", seconds_per_step=2.0, steps=77, config="c", pool="p")})
    assert Estimator(rates).steps(spec(epochs=100, batch_size=256, pool_frames=3019))[:2] \
        == (77, "measured")


def test_unit_work_counts_frames_and_cache_bytes_by_hand() -> None:
    class Counted(Dataset):
        meta = DatasetMeta(id="counted", version="1", name="x", modality="video",
                           domain="surgical", label_kind="phase", classes=("a",),
                           license="x", citation="x", fps=25.0)
        cached = {(32, 1.0)}

        def units(self) -> list[Unit]:
            return [Unit("v1", "train", "v1")]

        def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
            raise AssertionError("an estimate never loads")

        def prepare_cost(self, unit: Unit, variants: Any) -> int:
            return 0 if all(tuple(v) in self.cached for v in variants) else 1000

    ds = Counted(".")
    unit = ds.units()[0]
    frames, disk = _unit_work(ds, unit, [(32, 1.0), (64, 5.0), (16, 50.0)])
    # 1000 native frames at 25 fps: 32 px at 1 fps is cached; 64 px at 5 fps keeps
    # ceil(1000 * 5 / 25) = 200; 16 px at 50 fps keeps every frame (1000); + 8 id bytes each
    assert frames == 1000
    assert disk == 200 * (64 * 64 * 3 + 8) + 1000 * (16 * 16 * 3 + 8)
    assert _unit_work(ds, unit, [(32, 1.0)]) == (0, 0)


# ---- the ETA ----------------------------------------------------------------------------


def test_eta_follows_items_by_hand() -> None:
    rates = Rates(cells={"a": cell_rate(10.0, benchmark="b1", method="m1")},
                  pretraining={"m1|cpu|surgical|cpu": PretrainRate(
                      "m1", "cpu", "surgical", "cpu", 2.0, 50, "c", "p")})
    est = Estimator(rates)
    pre, steps = est.pretraining(spec())
    items = [work("pretrain", "m1|surgical", "pretraining", pre, spec=spec(), steps=steps)]
    for key, f in (("c1", fields("b1", "m1")), ("c2", fields("b1", "m1", label="0.1")),
                   ("c3", fields("b2", "m1", task="t2"))):
        items.append(work("cell", key, f["task"], est.cell(f), f))
    clock = FakeClock()
    eta = EtaTracker(RunEstimate(dict(items), [], est), clock)
    assert eta.remaining() == pytest.approx(100 + 10 + 10 + 10)
    eta.start("pretrain", "m1|surgical")
    clock.now = 5.0
    eta.step("pretrain", "m1|surgical", 1, 50)
    clock.now = 25.0
    eta.step("pretrain", "m1|surgical", 11, 50)
    # live: 20 s for 10 steps, 39 steps left; the cells as planned
    assert eta.remaining() == pytest.approx(2.0 * 39 + 30)
    clock.now = 103.0
    eta.step("pretrain", "m1|surgical", 50, 50)
    clock.now = 105.0
    assert eta.finish("pretrain", "m1|surgical") == 105.0
    assert eta.speed_factor() == 1.0  # only cells gauge the speed
    assert eta.remaining() == pytest.approx(30)
    assert est.run_steps[("m1", "cpu", "surgical", "cpu")] == pytest.approx(2.0)
    eta.start("cell", "c1")
    eta.finish("cell", "c1", 20.0)
    # 20 s for a cell predicted at 10, against a prior of 2 cells of 10 s
    factor = (20 + 20) / (10 + 20)
    assert eta.speed_factor() == pytest.approx(factor)
    # c2 is measured for itself (kept, scaled); c3 still rests on the stored level-4 rate
    assert eta.remaining() == pytest.approx(20 * factor)
    assert eta.basis() == "1 measured, 1 related"


def test_eta_replaces_guesses_with_this_runs_measures_and_spreads_cells_over_jobs() -> None:
    est = Estimator(Rates())
    items = [work("cell", key, f["task"], est.cell(f), f) for key, f in (
        ("c1", fields("b1", "m1")), ("c2", fields("b1", "m2")),
        ("c3", fields("b2", "m1", task="t2")))]
    eta = EtaTracker(RunEstimate(dict(items), [], est, jobs=2), FakeClock())
    assert eta.remaining() == pytest.approx(3 * GUESS_CELL_S["cpu"] / 2)
    eta.finish("cell", "c1", 30.0)
    assert eta.speed_factor() == 1.0  # guesses say nothing about this machine's speed
    assert eta.remaining() == pytest.approx((30 + 30) / 2)
    eta.finish("cell", "c2", 10.0, learn=False)  # e.g. failed: its time teaches nothing
    assert eta.remaining() == pytest.approx(30.0)


def test_first_cell_eta_is_within_2x_of_the_remaining_time_on_a_synthetic_plan() -> None:
    """Four benchmarks of very different cost x five methods x three seeds, three
    pretrainings; the earlier runs measured the mean cost of each (benchmark, method); this
    run is 40 % slower, with +-20 % noise, and the first seed of each (benchmark, method)
    pays 50 % more (cold feature cache). The naive ETA (elapsed / cells done) would count
    the pretraining in every cell."""
    rng = random.Random(0)
    bench_cost = {"b1": 5.0, "b2": 60.0, "b3": 20.0, "b4": 2.0}
    method_scale = {f"m{i}": 0.5 + 0.25 * i for i in range(5)}
    rates = Rates()
    actual: dict[str, float] = {}
    est_items: list[tuple[str, dict[str, str]]] = []
    for b, cost in bench_cost.items():
        for m, scale in method_scale.items():
            mean = cost * scale
            f = fields(b, m, task=f"task-{b}")
            rates.cells[f"{b}|{m}"] = CellRate(f, mean, 3)
            for seed in range(3):
                key = f"{b}|{m}|{seed}"
                cold = 1.5 if seed == 0 else 0.75
                actual[key] = mean * cold * 1.4 * rng.uniform(0.8, 1.2)
                est_items.append((key, f))
    for m in ("m1", "m2", "m3"):
        rates.pretraining[f"{m}|cpu|surgical|cpu"] = PretrainRate(m, "cpu", "surgical", "cpu",
                                                                  1.0, 200, "c", "p")
    est = Estimator(rates)
    items = []
    for m in ("m1", "m2", "m3"):
        e, steps = est.pretraining(spec(method=m))
        items.append(work("pretrain", f"{m}|surgical", "pretraining", e, spec=spec(method=m),
                              steps=steps))
    items += [work("cell", key, f["task"], est.cell(f), f) for key, f in est_items]
    clock = FakeClock()
    eta = EtaTracker(RunEstimate(dict(items), [], est), clock)
    for m in ("m1", "m2", "m3"):
        eta.start("pretrain", f"{m}|surgical")
        clock.now += 1.4 * 200 * rng.uniform(0.9, 1.1)
        eta.finish("pretrain", f"{m}|surgical")
    first_key = est_items[0][0]
    eta.start("cell", first_key)
    clock.now += actual[first_key]
    eta.finish("cell", first_key, actual[first_key])
    predicted = eta.remaining()
    remaining = sum(actual.values()) - actual[first_key]
    assert 0.5 <= predicted / remaining <= 2.0, (predicted, remaining)
    naive = clock.now / 1 * (len(actual) - 1)
    assert naive / remaining > 2.0  # what the old display did, for contrast


# ---- stored rates -------------------------------------------------------------------------


def test_rates_round_trip_merge_and_bad_files(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "rates.json"
    monkeypatch.setenv("SSL_BENCH_RATES", str(path))
    assert rates_path() == path
    assert load_rates().cells == {}  # missing
    path.write_text("{not json")
    assert load_rates().cells == {}  # unreadable: rates are a hint, never an error
    remember(Rates(cells={"a": cell_rate(3.0, benchmark="b1", method="m1")}))
    remember(Rates(cells={"b": cell_rate(4.0, benchmark="b1", method="m2")}))
    remember_decode_rate("cholec80", 0.002)
    rates = load_rates()
    assert {k: v.seconds for k, v in rates.cells.items()} == {"a": 3.0, "b": 4.0}
    assert rates.decode == {"cholec80": 0.002}
    remember(Rates(cells={"a": cell_rate(5.0, benchmark="b1", method="m1")}))
    assert load_rates().cells["a"].seconds == 5.0  # measured again: the new value
    assert json.loads(path.read_text())["version"] == 1


def test_learn_from_results_reads_records_and_sidecars(tmp_path: Path) -> None:
    from ssl_bench.environment import Environment
    from ssl_bench.records import CellRecord, Component, DatasetRef, TaskRef, Timings, write_record

    def record(seed: int, seconds: float, status: str = "ok") -> CellRecord:
        return CellRecord(
            ssl_bench_version="0", date="2026-01-01T00:00:00Z", benchmark="b1",
            method=Component(id="m1", version="1"), method_kind="pretrain",
            dataset=DatasetRef(id="d1", version="1"),
            task=TaskRef(id="t1", version="1", main_score="acc", higher_is_better={}),
            protocol="linear", profile="cpu", label_frac=0.1, seed=seed, cell_seed=seed,
            synthetic=True, status=status, checkpoint="k1", device="cuda:0",
            timings=Timings(total_s=seconds, pretrain_s=500.0),
            environment=Environment(python="3.11", device_name="gpu-a"))

    for seed, seconds, status in ((0, 30.0, "ok"), (1, 10.0, "ok"), (2, 99.0, "failed")):
        write_record(tmp_path, record(seed, seconds, status))
    ckpt = tmp_path / "cache" / "checkpoints" / "m1" / "k1.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x" * 1234)
    ckpt.with_suffix(".json").write_text(json.dumps(
        {"steps": 40, "seconds": 100.0, "wall_seconds": 112.5, "config": {"lr": 1},
         "pool": "p1"}))
    rates = learn_from_results(tmp_path, lambda d: "surgical" if d == "d1" else None)
    # records made on another machine are left out when the names of this one are given
    assert learn_from_results(tmp_path, lambda d: "surgical", {"gpu-b", "cpu-b"}).cells == {}
    assert learn_from_results(tmp_path, lambda d: "surgical", {"gpu-a"}).cells == rates.cells
    (cell,) = rates.cells.values()
    assert cell.fields == fields("b1", "m1") | {"device": "cuda"}
    assert (cell.seconds, cell.n) == (20.0, 2)  # the failed record is left out
    (pre,) = rates.pretraining.values()
    assert (pre.method, pre.domain, pre.device, pre.seconds_per_step, pre.steps,
            pre.pool, pre.checkpoint_bytes, pre.overhead_s) == ("m1", "surgical", "cuda", 2.5,
                                                                40, "p1", 1234, 12.5)


def test_estimate_lines_label_guesses_and_unknowns() -> None:
    est = Estimator(Rates())
    stages = [StageSummary("data decoding", units=3, frames=None, disk_bytes=None,
                           notes=["d1: the reader does not count its frames"]),
              StageSummary("pretraining", pretraining_runs=1, steps=100, disk_bytes=None,
                           seconds=100.0, qualities={"guess": 1}),
              StageSummary("phase-recognition", cells=2, seconds=240.0,
                           qualities={"guess": 2})]
    items = [work("pretrain", "m|d", "pretraining", Estimate(100.0, "guess", "g")),
             work("cell", "c1", "phase-recognition", Estimate(120.0, "guess", "g")),
             work("cell", "c2", "phase-recognition", Estimate(120.0, "guess", "g"))]
    text = "\n".join(estimate_lines(RunEstimate(dict(items), stages, est, jobs=2)))
    assert "frames not known for every dataset" in text and "d1: the reader does not" in text
    assert "1 pretraining runs (0 cached), 100 steps, checkpoints unknown" in text
    assert "phase-recognition      2 cells, 0:04:00 (2 guess)" in text
    # the pretraining and the two cells shared out over two processes: (100 + 2 x 120) / 2
    assert "total                  0:02:50 with --jobs 2" in text
    assert clock_text(3725.4) == "1:02:05" and bytes_text(1_500_000) == "1.5 MB"
    assert np.isfinite(RunEstimate(dict(items), stages, est).seconds)
