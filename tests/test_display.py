"""The run's console (ssl_bench.engine.display): plain lines in a log, --quiet, the live view."""

from __future__ import annotations

import io
import re
from typing import Any

from ssl_bench.engine.cells import CellOutcome
from ssl_bench.engine.cost import Estimate, ItemCost, ItemKey
from ssl_bench.engine.display import Display
from ssl_bench.engine.estimate import Estimator, RunEstimate
from ssl_bench.engine.eta import EtaTracker
from ssl_bench.engine.plan import Cell, Pretraining
from ssl_bench.engine.rates import CellRate, Rates
from ssl_bench.testing import FakeClock

CELLS = [Cell("m1", "b1", 0.1, 0), Cell("m1", "b1", 0.1, 1)]


def work(kind: str, key: str, stage: str, estimate: Estimate,
         fields: dict[str, str] | None = None, **kw: Any) -> tuple[ItemKey, ItemCost]:
    """One item of a run's estimate: its (kind, key) and its cost."""
    return (kind, key), ItemCost(stage, estimate, dict(fields or {}), **kw)


def plan_estimate() -> RunEstimate:
    """A pretraining guessed at 100 s, and two cells an earlier run measured at 50 s each."""
    fields = {"benchmark": "b1", "task": "t1", "protocol": "linear", "method": "m1",
              "label": "0.1", "profile": "cpu", "device": "cpu"}
    estimator = Estimator(Rates(cells={"b1|m1": CellRate(fields, 50.0, 3)}))
    items = [work("pretrain", "m1|surgical|0", "pretraining", Estimate(100.0, "guess", "g"),
                      steps=100)]
    items += [work("cell", c.key, "t1", estimator.cell(fields), fields) for c in CELLS]
    return RunEstimate(dict(items), [], estimator)


def drive(display: Display, clock: FakeClock, fail_second: bool = False) -> None:
    """A run of one pretraining (100 steps of 1 s) and two cells with a downstream stage."""
    display.begin(len(CELLS), EtaTracker(plan_estimate(), clock), pretraining_runs=1)
    display.log("loading the surgical pretraining pool")
    display.pretraining(Pretraining("m1", "surgical", 0))
    for step in range(1, 101):
        clock.now += 1.0
        display.progress("pretrain", step, 100, {"loss": 2.0 - step / 100, "batch": 8})
    display.pretrained(Pretraining("m1", "surgical", 0), ok=True)
    for i, cell in enumerate(CELLS):
        display.running(cell)
        for epoch in range(1, 11):
            clock.now += 5.0
            display.progress("downstream", epoch, 10, {"loss": 0.5})
        failed = fail_second and i == 1
        display.done(cell, CellOutcome("failed", "ValueError: boom", "trace", 50.0) if failed
                     else CellOutcome("ok", seconds=50.0))
    display.stop()


def test_plain_lines_in_a_log_every_30_s_and_one_per_cell() -> None:
    out, clock = io.StringIO(), FakeClock()
    drive(Display(False, stream=out, live=False, every_s=30.0, clock=clock), clock)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("run: 2 cells and 1 pretraining runs to compute; estimated 0:03:20 "
                        "(2 measured, 1 guess)")
    assert lines[1] == "loading the surgical pretraining pool"
    # pretraining: a status line at 30, 60 and 90 s, with loss, img/s and both ETAs
    status = [line for line in lines
              if line.startswith("pretraining m1 (surgical, seed 0): pretrain ")]
    assert [line.split()[6].rstrip(",") for line in status] == ["30/100", "60/100", "90/100"]
    assert status[0] == ("pretraining m1 (surgical, seed 0): pretrain 30/100, loss 1.7, 8 img/s, "
                         "ETA 0:01:10; run ETA 0:02:50")
    assert "pretraining m1 (surgical, seed 0): 100 steps in 100 s; run ETA 0:01:40" in lines
    # each cell: one line at 30 s of its 50 s, and one when it is done
    assert "m1|b1|0.1|0: downstream 6/10, loss 0.5, ETA 0:00:20; run ETA 0:01:10" in lines
    done = [line for line in lines if line.startswith("[")]
    assert done == ["[1/2] ok      m1|b1|0.1|0  (50.0 s; run ETA 0:00:50)",
                    "[2/2] ok      m1|b1|0.1|1  (50.0 s; run ETA 0:00:00)"]
    assert len(lines) == 2 + 3 + 1 + 2 * 2


def test_quiet_prints_nothing_but_failures() -> None:
    out, clock = io.StringIO(), FakeClock()
    drive(Display(True, stream=out, live=False, every_s=30.0, clock=clock), clock,
          fail_second=True)
    assert out.getvalue() == "failed  m1|b1|0.1|1: ValueError: boom\n"


def test_live_display_renders_the_stage_and_the_run_eta(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    out, clock = io.StringIO(), FakeClock()
    display = Display(False, stream=out, live=True, every_s=30.0, clock=clock)
    display.begin(len(CELLS), EtaTracker(plan_estimate(), clock), pretraining_runs=1)
    display.pretraining(Pretraining("m1", "surgical", 0))
    for step in range(1, 51):
        clock.now += 1.0
        display.progress("pretrain", step, 100, {"loss": 1.5, "batch": 8})
    assert display.progress_bars is not None
    assert display._stage_info() == "loss 1.5, 8 img/s, ETA 0:00:50"
    assert display.eta() == 50.0 + 100.0  # pretraining at its live pace, then the cells
    display.stop()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "pretraining m1 (surgical, seed 0) pretrain" in text and "50/100" in text
    assert "ok 0  run ETA 0:02:30" in text
