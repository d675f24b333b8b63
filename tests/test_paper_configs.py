"""The ``paper`` profile stays buildable: every installed method's paper config (core and
plugins/) builds its model at the paper's image size and takes one optimiser step on a tiny
batch, and every task family runs with the paper config of each benchmark that uses it (one
short epoch at 224 px). A config error (a wrong backbone name, mismatched widths, a crop larger
than the image) thus shows on a CPU, not after a GPU has been found. Only the batch size and
the epoch counts are overridden; every other paper setting is the one a paper run uses.

The method and task tests take about 45 s of CPU time together on a 2-core machine (100 s wall
measured under a load average of 11; iboot, dino, reprec and mae are the longest), so they
are not marked ``slow``; the semi-supervised one is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from ssl_bench.api import Method, Task
from ssl_bench.engine.pretrain import build_optimizer
from ssl_bench.testing import (
    TinySegDataset,
    TinyVideoDataset,
    TinyVolumeDataset,
    first_batch,
    installed_methods,
    smoke_method,
    tiny_cell,
    tiny_pool,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PAPER_SIZE = 224
BATCH = 2
METHODS = installed_methods()


def _domain(cls: type[Method]) -> str:
    return "surgical" if "surgical" in cls.meta.domains else "ct"


@pytest.mark.parametrize("cls", [c for c in METHODS if c.meta.kind == "pretrain"],
                         ids=lambda c: c.meta.id)
def test_paper_method_config_builds_and_steps(cls: type[Method]) -> None:
    torch.manual_seed(0)
    method = smoke_method(cls, "paper", batch_size=BATCH)
    assert method.config.image_size == PAPER_SIZE
    net = method.build()
    optimizer = build_optimizer(method, net)
    before = [t.detach().clone() for t in net.state_dict().values()]
    if cls.meta.pretrain_input == "none":  # no pretraining: the encoder a task trains
        net.train()
        maps = method.encoder(net)(torch.rand(BATCH, 3, PAPER_SIZE, PAPER_SIZE))
        loss = sum(m.float().mean() for m in maps)
    else:
        pool = tiny_pool(_domain(cls), size=PAPER_SIZE)
        batch = first_batch(method.pretrain_dataset(pool), batch_size=BATCH)
        net.train()
        loss = method.training_step(net, batch, 0.0)["loss"]
    assert isinstance(loss, torch.Tensor) and torch.isfinite(loss.detach()).all()
    optimizer.zero_grad(set_to_none=True)
    if loss.requires_grad:  # batch-norm adaptation learns statistics only
        loss.backward()
        optimizer.step()
    method.after_step(net, 0.0)
    after = list(net.state_dict().values())
    assert any(not torch.equal(b, a) for b, a in zip(before, after))


def _task_cases() -> list[tuple[str, str]]:
    from ssl_bench.plugins import resolved_registries

    regs = resolved_registries()
    return sorted({(b.obj.task, b.obj.id) for b in regs.benchmarks})


#: per task family: what keeps its paper config to one short epoch on the tiny data
TASK_OVERRIDES: dict[str, dict[str, Any]] = {
    "phase-recognition": {"epochs": 1, "finetune_epochs": 1, "finetune_batch_size": BATCH},
    "semantic-segmentation": {"epochs": 1, "finetune_epochs": 1, "batch_size": BATCH,
                              "steps_per_epoch": None, "max_steps_per_epoch": 1},
    "organ-segmentation": {"epochs": 1, "finetune_epochs": 1, "batch_size": BATCH,
                           "steps_per_epoch": 1, "max_steps_per_epoch": 1},
    "tool-presence": {"epochs": 1, "finetune_epochs": 1, "batch_size": BATCH,
                      "finetune_batch_size": BATCH},
}
TINY_DATA = {"phase-recognition": TinyVideoDataset, "tool-presence": TinyVideoDataset,
             "semantic-segmentation": TinySegDataset, "organ-segmentation": TinyVolumeDataset}


@pytest.mark.parametrize("task_id,benchmark_id", _task_cases())
def test_paper_task_config_runs_one_epoch(tmp_path: Any, task_id: str,
                                          benchmark_id: str) -> None:
    from ssl_bench.plugins import resolved_registries

    regs = resolved_registries()
    bench = regs.benchmarks.get(benchmark_id)
    task_cls: type[Task] = regs.tasks.get(task_id)
    fields = task_cls.Config.model_fields
    overrides = {k: v for k, v in TASK_OVERRIDES[task_id].items() if k in fields}
    config = task_cls.make_config("paper", {**bench.task_options_for("paper"), **overrides})
    dataset = TINY_DATA[task_id](".")
    cell = tiny_cell(tmp_path, dataset, protocol=bench.protocol,
                     benchmark_id="tiny-tools" if task_id == "tool-presence" else None)
    cell = dataclasses.replace(cell, image_size=PAPER_SIZE, profile="paper")
    result = task_cls(config).evaluate(cell)
    main = task_cls.meta.main_score
    assert main in result.metrics


@pytest.mark.slow
@pytest.mark.parametrize("cls", [c for c in METHODS if c.meta.kind == "semi-supervised"],
                         ids=lambda c: c.meta.id)
def test_paper_semi_supervised_config_trains_one_step(tmp_path: Any, cls: type[Method]) -> None:
    """A semi-supervised method trains inside the segmentation task: its paper config (one
    step of batch 1) on the tiny segmentation data at its own paper image size (mms: 288 x 512,
    two networks, each scored on every val and test frame). 75 s of CPU time on a 2-core
    machine (123 s wall under a load average of 11), hence ``slow``."""
    from ssl_bench.default_plugins.tasks.segmentation import SemanticSegmentation

    method = smoke_method(cls, "paper", epochs=1, max_steps=1, batch_size=1)
    cell = tiny_cell(tmp_path, TinySegDataset("."), method_cls=cls)
    cell = dataclasses.replace(cell, method=method, image_size=method.config.image_size,
                               profile="paper")
    config = SemanticSegmentation.make_config("paper")
    result = SemanticSegmentation(config).evaluate(cell)
    assert SemanticSegmentation.meta.main_score in result.metrics
