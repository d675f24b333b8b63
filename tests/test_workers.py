"""`ssl-bench run --jobs N` (ssl_bench.engine.workers): pretrainings and cells over worker
processes give the records of a one-process run; the order, the wall-time bound and --jobs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from ssl_bench.engine.cells import CellOutcome
from ssl_bench.engine.cost import Estimate, ItemCost
from ssl_bench.engine.display import Display
from ssl_bench.engine.estimate import Estimator, RunEstimate, spread
from ssl_bench.engine.eta import EtaTracker
from ssl_bench.engine.plan import WORKER_MEMORY_BYTES, Cell, Pretraining, resolve_jobs
from ssl_bench.engine.rates import CellRate, Rates
from ssl_bench.engine.work import CellItem, PretrainItem, WorkItem
from ssl_bench.engine.workers import live_order, next_item, schedule_order, scout_cells
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import iter_records
from ssl_bench.testing import FakeClock, cli_exit_code

# two pretrainings (dummy, and failing, which raises), a method without one (dummy-init), two
# benchmarks of the surgical domain, two seeds: 12 cells
RUN = ["run", "--methods", "dummy,failing,dummy-init", "--benchmarks", "tiny-phase,tiny-seg",
       "--label-frac", "0.5", "--seeds", "0,1", "--profile", "smoke", "--device", "cpu"]


def _records(results: Path) -> dict[tuple, dict[str, Any]]:
    records, warnings = iter_records(results)
    assert not warnings, warnings
    return {r.key: dict(status=r.status, error=r.error, metrics=r.metrics,
                        main_score=r.main_score, per_class=r.per_class,
                        label_units=r.label_units, cell_seed=r.cell_seed,
                        checkpoint=r.checkpoint, config_hash=r.config_hash, health=r.health,
                        pretrain_cached=r.timings.pretrain_cached,
                        pretrain_ran=r.timings.pretrain_s > 0)
            for r in records}


def test_workers_give_the_records_of_one_process(testing_plugin, torch_one_thread, tmp_path,
                                                 capsys, monkeypatch) -> None:
    from ssl_bench.engine import workers as workers_module

    # the workers compute with one torch thread, as this process does: with more threads the
    # parallel reductions split their sums differently and the last bits of the results (and
    # so metrics and health) change; by default each worker gets its share of the machine's
    # cores (several on a large machine)
    monkeypatch.setattr(workers_module, "threads_per_worker", lambda jobs: 1)
    one, workers = tmp_path / "one", tmp_path / "workers"
    assert cli_exit_code(RUN + ["--results", str(one), "--jobs", "1"]) == 1  # failing fails
    capsys.readouterr()
    assert cli_exit_code(RUN + ["--results", str(workers), "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    expected = _records(one)
    assert len(expected) == 12
    assert _records(workers) == expected  # one torch thread in both: the same bits
    statuses = {(k[1], v["status"]) for k, v in expected.items()}
    assert statuses == {("dummy", "ok"), ("dummy-init", "ok"), ("failing", "failed")}
    # each seed's pretraining ran once, in a worker; every cell of it says so, as in one process
    assert all(v["pretrain_ran"] and not v["pretrain_cached"]
               for k, v in expected.items() if k[1] == "dummy")
    assert len(list((workers / "cache" / "checkpoints" / "dummy").glob("*.safetensors"))) == 2
    assert len({v["checkpoint"] for k, v in expected.items() if k[1] == "dummy"}) == 2
    # a failed pretraining is run once per seed; its cells fail with its reason and traceback
    for seed in (0, 1):
        assert err.count(f"pretraining failing (surgical, seed {seed}) failed: ") == 1
    failed = [r for r in iter_records(workers)[0] if r.method.id == "failing"]
    assert len(failed) == 4
    assert all(r.error == "pretraining failed: RuntimeError: this method always fails"
               for r in failed)
    assert all("training_step" in (r.traceback or "") for r in failed)
    # worker events reached the parent's display: each cell's line, the pretraining's
    assert err.count("] ok      ") == 8 and err.count("] failed  ") == 4
    assert "pretraining dummy (surgical, seed 0): " in err


def test_pretrainings_first_then_cells_longest_first() -> None:
    cells = [CellItem(Cell("a", "b1", 0.5, s), Pretraining("a", "surgical", s)) for s in (0, 1)]
    cells.append(CellItem(Cell("r", "b1", 0.5, 0), None))
    pretrain = [PretrainItem(Pretraining("a", "surgical", 0)),
                PretrainItem(Pretraining("z", "ct", 0))]
    seconds = {("pretrain", "a|surgical|0"): 10.0, ("pretrain", "z|ct|0"): 30.0,
               ("cell", cells[0].key): 1.0, ("cell", cells[1].key): 5.0,
               ("cell", cells[2].key): 5.0}
    order = schedule_order(pretrain, cells, seconds)
    assert [i.key for i in order] == ["z|ct|0", "a|surgical|0", cells[1].key, cells[2].key,
                                      cells[0].key]
    # no estimate: the plan's order
    assert schedule_order(pretrain, cells, {}) == [*pretrain, *cells]


def test_the_order_follows_what_the_run_learns_on_a_machine_without_rates() -> None:
    est = Estimator(Rates())  # nothing measured: every cell is the same guess
    cells = [CellItem(Cell(m, "b1", 0.5, s), None) for m in ("fast", "slow") for s in (0, 1, 2)]

    def fields(item: CellItem) -> dict[str, str]:
        return {"benchmark": "b1", "task": "t1", "protocol": "linear",
                "method": item.cell.method, "label": "0.5", "profile": "cpu", "device": "cpu"}

    costs = {("cell", c.key): ItemCost("t1", est.cell(fields(c)), fields(c)) for c in cells}
    tracker = EtaTracker(RunEstimate(costs, [], est, jobs=2), FakeClock())
    waiting: list[WorkItem] = list(cells)
    assert live_order(waiting, tracker) == cells  # equal guesses: the plan's order
    tracker.finish("cell", cells[0].key, 10.0)  # fast, seed 0
    tracker.finish("cell", cells[3].key, 100.0)  # slow, seed 0
    waiting = [c for c in cells if c.cell.seed > 0]
    assert [c.key for c in live_order(waiting, tracker)] == [
        "slow|b1|0.5|1", "slow|b1|0.5|2", "fast|b1|0.5|1", "fast|b1|0.5|2"]


def test_a_task_no_cell_has_timed_sends_a_scout_cell_ahead_of_the_pretrainings() -> None:
    """On a machine without rates every cell is the same guess until one finishes: one ready
    cell of each untimed task goes before the pretrainings; a task timed by earlier runs, or
    with a cell running, or timed by this run, sends none."""
    stored = Rates(cells={"k": CellRate({"benchmark": "b3", "task": "known", "protocol":
                                         "linear", "method": "x", "label": "0.5",
                                         "profile": "cpu", "device": "cpu"}, 4.0)})
    est = Estimator(stored)
    bench_task = {"b1": "t1", "b2": "t2", "b3": "known"}

    def fields(item: CellItem) -> dict[str, str]:
        return {"benchmark": item.cell.benchmark, "task": bench_task[item.cell.benchmark],
                "protocol": "linear", "method": item.cell.method, "label": "0.5",
                "profile": "cpu", "device": "cpu"}

    runs = [Pretraining("ssl", "surgical", s) for s in (0, 1)]
    pretrain = [PretrainItem(r) for r in runs]
    cells = [CellItem(Cell("ssl", b, 0.5, s), runs[s]) for b in ("b1", "b2", "b3")
             for s in (0, 1)]
    cells += [CellItem(Cell("rand", b, 0.5, 0), None) for b in ("b1", "b2", "b3")]
    costs = {("cell", c.key): ItemCost(fields(c)["task"], est.cell(fields(c)), fields(c))
             for c in cells}
    costs.update({("pretrain", p.key): ItemCost("pretraining", Estimate(50.0, "guess", "g"))
                  for p in pretrain})
    tracker = EtaTracker(RunEstimate(costs, [], est, jobs=2), FakeClock())
    waiting: list[WorkItem] = [*pretrain, *cells]
    order = live_order(waiting, tracker)
    assert [i.key for i in order] == [
        "ssl|b1|0.5|0", "ssl|b1|0.5|1", "ssl|b2|0.5|0", "ssl|b2|0.5|1", "rand|b1|0.5|0",
        "rand|b2|0.5|0", "ssl|surgical|0", "ssl|surgical|1", "ssl|b3|0.5|0", "ssl|b3|0.5|1",
        "rand|b3|0.5|0"]

    def ready(item: WorkItem) -> bool:
        return isinstance(item, PretrainItem) or item.needs is None

    # the first ready scout: random init's cell of b1 (the ssl cells wait for a pretraining)
    first = next_item(order, ready, [])
    assert first is not None and first.key == "rand|b1|0.5|0"
    # with it running, t1 sends no more scouts: the next ready item is t2's scout
    rest = [i for i in order if i is not first]
    again = live_order(rest, tracker, [first])
    second = next_item(again, ready, [first])
    assert second is not None and second.key == "rand|b2|0.5|0"
    # once t1 is timed and t2's scout has failed (no time learned, but its turn is over),
    # the order is the schedule's: pretrainings first
    tracker.finish("cell", first.key, 3.0)
    tracker.finish("cell", second.key, 6.0, learn=False)
    later = live_order([i for i in rest if i is not second], tracker)
    assert [i.key for i in later[:2]] == ["ssl|surgical|0", "ssl|surgical|1"]
    assert scout_cells(later, tracker) == []


def test_a_cell_waits_while_a_cell_of_its_method_and_benchmark_runs() -> None:
    a0, a1 = (CellItem(Cell("a", "b1", 0.5, s), None) for s in (0, 1))
    a_b2 = CellItem(Cell("a", "b2", 0.5, 0), None)
    pre_run = Pretraining("r", "surgical", 0)
    pre = PretrainItem(pre_run)
    r0 = CellItem(Cell("r", "b1", 0.5, 0), pre_run)
    done: set[Pretraining] = set()

    def ready(item: WorkItem) -> bool:
        return isinstance(item, PretrainItem) or item.needs is None or item.needs in done

    # a0 runs: a1 would compute a0's features again, so the next ready item goes first
    assert next_item([a1, a_b2, r0], ready, [a0]) is a_b2  # another benchmark: its own
    assert next_item([a1, r0, pre], ready, [a0]) is pre  # r0 is not ready yet
    done.add(pre_run)
    assert next_item([a1, r0], ready, [a0, pre]) is r0
    # nothing else is ready: a1 runs rather than leave the worker idle
    assert next_item([a1], ready, [a0]) is a1
    assert next_item([a1, r0], ready, []) is a1  # the schedule's order when nothing runs
    # per-seed pretraining: seed 1 reads other weights than seed 0, so nothing is shared
    b0, b1 = (CellItem(Cell("a", "b1", 0.5, s), None, pretrain_seed=s) for s in (0, 1))
    assert next_item([b1, a_b2], ready, [b0]) is b1
    assert next_item([a1, r0], ready, [pre]) is a1  # a pretraining shares no features
    assert next_item([], ready, [a0]) is None
    done.clear()
    assert next_item([r0], ready, []) is None


def test_spread_shares_work_out_and_never_undercuts_the_longest_item() -> None:
    assert spread([100.0, 120.0, 120.0], 1) == 340.0
    assert spread([100.0, 120.0, 120.0], 2) == 170.0
    assert spread([300.0, 10.0, 10.0], 2) == 300.0  # one long item bounds the run
    assert spread([50.0, 0.0, 0.0], 4) == 50.0  # n/a cells (0 s) take no process
    assert spread([], 2) == 0.0


def test_jobs_auto_is_one_worker_per_core_within_memory_and_one_on_a_gpu(monkeypatch) -> None:
    from ssl_bench import environment

    monkeypatch.setattr(environment, "available_cores", lambda: 16)
    monkeypatch.setattr(environment, "memory_bytes", lambda: 24 * 2**30)
    assert resolve_jobs("auto", "cpu") == 24 * 2**30 // WORKER_MEMORY_BYTES == 8
    monkeypatch.setattr(environment, "available_cores", lambda: 2)
    assert resolve_jobs("auto", "cpu") == 2
    monkeypatch.setattr(environment, "memory_bytes", lambda: None)
    assert resolve_jobs("auto", "cpu") == 1  # memory unknown: one process
    assert resolve_jobs("auto", "cuda") == 1
    assert resolve_jobs("3", "cpu") == 3 and resolve_jobs(2, "cuda") == 2
    for bad in ("0", "-1", "many"):
        with pytest.raises(SSLBenchError, match=r"^--jobs .*: give a positive number of worker "
                                                r"processes, or auto$"):
            resolve_jobs(bad, "cpu")


def test_display_follows_two_items_at_once() -> None:
    out, clock = io.StringIO(), FakeClock()
    display = Display(False, stream=out, live=False, every_s=30.0, clock=clock)
    display.begin(1)
    display.pretraining(Pretraining("m1", "surgical", 0))
    display.running_key("r|b1|0.5|0")
    pre, cell = ("pretrain", "m1|surgical|0"), ("cell", "r|b1|0.5|0")
    for step in range(1, 41):
        clock.now += 1.0
        display.progress("pretrain", step, 40, {"loss": 1.0, "batch": 4}, item=pre)
        display.progress("downstream", step // 4, 10, {}, item=cell)
    assert display.images_per_s(pre) == pytest.approx(4.0)
    assert display.stage_eta(cell) == pytest.approx(0.0)
    display.done(Cell("r", "b1", 0.5, 0), CellOutcome("ok", seconds=40.0))
    display.pretrained(Pretraining("m1", "surgical", 0), ok=True, steps=40)
    display.stop()
    lines = out.getvalue().splitlines()
    # each item's own status line every 30 s, then the cell's line and the pretraining's;
    # the cell's stage went from 0 (at 1 s) to 7 (at 30 s): 3 x 29/7 s = 12.4 s left
    assert lines == ["pretraining m1 (surgical, seed 0): pretrain 30/40, loss 1, 4 img/s, "
                     "ETA 0:00:10",
                     "r|b1|0.5|0: downstream 7/10, ETA 0:00:12",
                     "[1/1] ok      r|b1|0.5|0  (40.0 s)",
                     "pretraining m1 (surgical, seed 0): 40 steps in 40 s"]


def test_quiet_keeps_the_longest_first_schedule(testing_plugin, tmp_path, monkeypatch) -> None:
    """--quiet silences the display only: the workers still get the run's ETA, whose estimates
    order their queue, and hand out the same items in the same order."""
    import ssl_bench.engine.sweep as sweep

    seen: list[tuple[Any, list[str]]] = []

    def fake_run_in_workers(plan, display, eta, jobs, setup) -> list[str]:
        seen.append((eta, [i.key for i in live_order(plan.items, eta)]))
        return []

    monkeypatch.setattr(sweep, "run_in_workers", fake_run_in_workers)
    for quiet in ([], ["--quiet"]):
        assert cli_exit_code(RUN + ["--results", str(tmp_path / f"r{len(quiet)}"), "--jobs", "2",
                                    *quiet]) == 0
    assert len(seen) == 2 and all(eta is not None for eta, _order in seen)
    assert list(seen[0][0].items) == list(seen[1][0].items)  # the same items and estimates
    assert seen[0][1] == seen[1][1]  # the same schedule


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, ended but not yet reaped, counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A parent killed by SIGKILL runs no clean-up; its worker watching it ends within seconds,
    while a twin process that does not watch lives on (so the test can tell the two apart)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    child = ("import os, sys, time\n"
             "if sys.argv[1] == 'watch':\n"
             "    from ssl_bench.engine.workers import exit_with_parent\n"
             "    exit_with_parent(int(sys.argv[2]), interval=0.1)\n"
             "open(sys.argv[3], 'w').close()\n"
             "time.sleep(120)\n")
    parent = ("import os, subprocess, sys, time\n"
              f"kids = [subprocess.Popen([sys.executable, '-c', {child!r}, mode, str(os.getpid()),"
              f" {str(tmp_path)!r} + '/' + mode]) for mode in ('watch', 'ignore')]\n"
              "print(' '.join(str(k.pid) for k in kids), flush=True)\n"
              "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    watcher, ignorer = (int(p) for p in proc.stdout.readline().split())
    try:
        deadline = time.monotonic() + 120  # importing torch on a loaded machine
        while not all((tmp_path / m).exists() for m in ("watch", "ignore")):
            assert time.monotonic() < deadline, "the child processes did not start"
            time.sleep(0.1)
        assert _alive(watcher) and _alive(ignorer)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(watcher) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(watcher), "the watching worker outlived its killed parent"
        assert _alive(ignorer), "the control process ended too: the test cannot tell"
    finally:
        proc.kill()
        for pid in (watcher, ignorer):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
