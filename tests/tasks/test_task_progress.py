"""The built-in tasks and the pretraining report their stages through the progress channel
(``CellInputs.progress``, ``run_pretraining(progress=...)``), which the live display shows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ssl_bench.default_plugins.tasks.phase import PhaseRecognition
from ssl_bench.default_plugins.tasks.segmentation import SemanticSegmentation
from ssl_bench.default_plugins.tasks.tools import ToolPresence
from ssl_bench.engine.pretrain import run_pretraining
from ssl_bench.testing import (
    DummyMethod,
    TinySegDataset,
    TinyVideoDataset,
    smoke_method,
    tiny_cell,
    tiny_pool,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

Event = tuple[str, int, int, dict[str, Any]]


def recorded(cell: Any) -> list[Event]:
    events: list[Event] = []
    cell.progress = lambda stage, done, total, extras: events.append(
        (stage, done, total, dict(extras)))
    return events


def check_stages(events: list[Event], cell: Any, epochs: int) -> None:
    units = len(cell.label_units) + len(cell.units["val"]) + len(cell.units["test"])
    features = [(done, total) for stage, done, total, _ in events if stage == "features"]
    assert features == [(n, units) for n in range(units + 1)]
    downstream = [(done, total, extras) for stage, done, total, extras in events
                  if stage == "downstream"]
    assert [(d, t) for d, t, _ in downstream] == [(e, epochs) for e in range(1, epochs + 1)]
    assert all(math.isfinite(extras["loss"]) for _, _, extras in downstream)


@pytest.mark.parametrize("task_cls,dataset_cls,benchmark", [
    (PhaseRecognition, TinyVideoDataset, "tiny-phase"),
    (SemanticSegmentation, TinySegDataset, "tiny-seg"),
    (ToolPresence, TinyVideoDataset, "tiny-tools"),
])
def test_linear_cells_report_feature_units_and_epochs(tmp_path: Path, task_cls: Any,
                                                       dataset_cls: Any, benchmark: str) -> None:
    cell = tiny_cell(tmp_path, dataset_cls(Path(".")), benchmark_id=benchmark)
    events = recorded(cell)
    task = task_cls(task_cls.make_config("smoke"))
    task.evaluate(cell)
    check_stages(events, cell, task.config.epochs)


def test_phase_finetune_reports_its_fine_tuning_epochs(tmp_path: Path) -> None:
    cell = tiny_cell(tmp_path, TinyVideoDataset(Path(".")), protocol="finetune")
    events = recorded(cell)
    task = PhaseRecognition(PhaseRecognition.make_config("smoke"))
    task.evaluate(cell)
    finetune = [(done, total) for stage, done, total, _ in events if stage == "fine-tuning"]
    epochs = task.config.finetune_epochs
    assert finetune == [(e, epochs) for e in range(1, epochs + 1)]
    check_stages(events, cell, task.config.epochs)


def test_pretraining_reports_every_step_with_its_loss_and_batch(tmp_path: Path) -> None:
    events: list[Event] = []
    method = smoke_method(DummyMethod, max_steps=4)
    _net, steps = run_pretraining(method, tiny_pool(size=32), tmp_path / "run", 0,
                                  log=lambda _m: None,
                                  progress=lambda *event: events.append(event))
    assert [(s, d, t) for s, d, t, _ in events] == [("pretrain", i, steps)
                                                      for i in range(1, steps + 1)]
    assert all(math.isfinite(e[3]["loss"]) and e[3]["batch"] == method.config.batch_size
               for e in events)
