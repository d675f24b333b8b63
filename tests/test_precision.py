"""Mixed precision: every pretraining method, built-in and plugin, takes a smoke-profile step
through the engine's optimiser wrapper under bf16 autocast, and on a fixed batch its bf16 loss
stays close to its fp32 loss; ``--precision`` enters the options, the record, the cell
identity and the environment line, and old records without it read as fp32."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import nn

from ssl_bench.api import Method
from ssl_bench.engine.amp import PrecisionOptimWrapper
from ssl_bench.engine.pretrain import build_optimizer
from ssl_bench.engine.steps import apply_losses
from ssl_bench.errors import SSLBenchError
from ssl_bench.precision import autocast, pretraining_precision, resolve_precision
from ssl_bench.testing import first_batch, installed_methods, smoke_method, tiny_pool

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: |bf16 loss - fp32 loss| <= ATOL + RTOL * |fp32 loss| on one fixed batch of COMPARE_BATCH.
#: bfloat16 keeps 8 bits of mantissa (a relative rounding error of 2**-9 per operation), and
#: the smoke networks amplify it: batch norm over a small batch of similar synthetic frames
#: subtracts nearly equal numbers, and contrastive logits are divided by a temperature of
#: 0.1-0.2. Measured here at 16 frames (seeds 0-2 of the weights): simclr, byol and dino moved
#: by 1-4 %, moco-v2 by up to 8 %, reprec by up to 11 %, simsiam (a loss near 0) by 0.01 in
#: absolute terms; at 4 frames by up to 37 %, so the comparison uses 16. 15 % plus 0.05 holds
#: that rounding and still catches a real fault (a wrong dtype, an overflow, a loss computed
#: from other inputs), which moves a loss by far more or makes it non-finite.
RTOL, ATOL = 0.15, 0.05
BATCH, COMPARE_BATCH = 4, 16


def _pretraining_methods() -> list[type[Method]]:
    """Every installed method class (core and plugins/) with a pretraining stage."""
    return [c for c in installed_methods()
            if c.meta.kind == "pretrain" and c.meta.pretrain_input != "none"]


METHODS = _pretraining_methods()


def _method(cls: type[Method], precision: str) -> Method:
    method = smoke_method(cls)
    method.context = dataclasses.replace(method.context, precision=precision)
    return method


def _batch(method: Method, size: int = BATCH) -> Any:
    domain = "surgical" if "surgical" in method.meta.domains else "ct"
    torch.manual_seed(0)
    return first_batch(method.pretrain_dataset(tiny_pool(domain, size=method.config.image_size)),
                       batch_size=size)


def _state(net: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in net.state_dict().values()]


def _loss(method: Method, net: nn.Module, batch: Any, precision: str) -> float:
    torch.manual_seed(1)  # the step's own draws (masks, crops) are the same in both precisions
    net.train()
    with torch.no_grad(), autocast(precision, "cpu"):
        return float(method.training_step(net, batch, 0.0)["loss"].float())


def test_the_plugin_methods_are_covered() -> None:
    ids = {c.meta.id for c in METHODS}
    assert {"simclr", "moco-v2", "byol", "dino", "mae", "distill-self", "reprec", "simsiam",
            "laparoflow-ssl", "iboot"} <= ids


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.meta.id)
def test_a_smoke_step_under_bf16_autocast(cls: type[Method]) -> None:
    """One step through the engine's wrapper (autocast in ``optim_context``, then
    ``apply_losses``): finite loss, finite updated weights, and reduced-precision compute."""
    torch.manual_seed(0)
    method = _method(cls, "bf16")
    net = method.build()
    batch = _batch(method)
    precision = pretraining_precision(method)
    wrapper = PrecisionOptimWrapper(build_optimizer(method, net), precision)
    seen: list[torch.dtype] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
             for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    before = _state(net)
    torch.manual_seed(1)
    with wrapper.optim_context(net):
        losses = method.training_step(net, batch, 0.0)
    for h in hooks:
        h.remove()
    out = apply_losses(losses, wrapper, "step 0")
    method.after_step(net, 1.0)
    assert torch.isfinite(out["loss"]).all()
    after = _state(net)
    assert all(torch.isfinite(t).all() for t in after if t.is_floating_point())
    # the step changed the model (weights, or only statistics for batch-norm adaptation)
    assert any(not torch.equal(b, a) for b, a in zip(before, after))
    if precision == "bf16":
        assert torch.bfloat16 in seen
    else:  # the method declared it needs fp32: nothing ran in bf16
        assert cls.needs_fp32 and torch.bfloat16 not in seen


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.meta.id)
def test_bf16_loss_is_close_to_fp32_on_a_fixed_batch(cls: type[Method]) -> None:
    method = _method(cls, "fp32")
    batch = _batch(method, COMPARE_BATCH)
    torch.manual_seed(0)
    reference = _loss(method, method.build(), batch, "fp32")
    torch.manual_seed(0)  # the same weights again
    reduced = _loss(method, method.build(), batch, "bf16")
    assert abs(reduced - reference) <= ATOL + RTOL * abs(reference), (reference, reduced)


def test_precision_choices_and_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(SSLBenchError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(SSLBenchError, match="use fp32, bf16, fp16"):
        resolve_precision("fp8", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision(None, "cuda") == "fp32"  # a GPU without bfloat16
    with pytest.raises(SSLBenchError, match="does not support bfloat16"):
        resolve_precision("bf16", "cuda:0")
    assert resolve_precision("fp16", "cuda") == "fp16"


def test_precision_enters_identity_record_and_environment_and_old_ones_read_fp32() -> None:
    from ssl_bench.environment import current_environment
    from ssl_bench.records import CellIdentity, CellRecord

    assert CellRecord.model_fields["precision"].default == "fp32"
    identity: dict[str, Any] = dict(
        benchmark="b", benchmark_version="1", protocol="linear",
        method=dict(id="m", version="1", config_hash="c", distribution="d",
                    distribution_version="1", source_hash="s"),
        task=dict(id="t", version="1", config_hash="c"),
        dataset=dict(id="d", version="1", fingerprint="f"),
        profile="cpu", label_subset="x", ssl_bench_version="0")
    old = CellIdentity.model_validate(identity)  # written before precision was kept
    assert old.precision == "fp32"
    assert old.differences(CellIdentity.model_validate({**identity, "precision": "fp32"})) == []
    assert old.differences(CellIdentity.model_validate({**identity, "precision": "bf16"})) == [
        "precision fp32 -> bf16"]
    assert current_environment("cpu", "bf16").summary().endswith("; bf16")
    assert current_environment("cpu").precision is None  # an old record's environment


def test_checkpoint_key_keeps_fp32_and_separates_bf16() -> None:
    from ssl_bench.default_plugins.methods.simclr import SimCLR
    from ssl_bench.engine.pretrain import checkpoint_key

    fp32 = checkpoint_key(_method(SimCLR, "fp32"), "pool", 0)
    assert checkpoint_key(smoke_method(SimCLR), "pool", 0) == fp32
    assert checkpoint_key(_method(SimCLR, "bf16"), "pool", 0) != fp32

    class NeedsFp32(SimCLR):
        needs_fp32 = "a test"

    assert pretraining_precision(_method(NeedsFp32, "bf16")) == "fp32"


@pytest.mark.parametrize("task_id,protocol", [("semantic-segmentation", "linear"),
                                              ("phase-recognition", "finetune"),
                                              ("tool-presence", "finetune")])
def test_tasks_run_under_bf16_and_cache_their_features_apart(tmp_path: Any, task_id: str,
                                                             protocol: str) -> None:
    """Feature extraction and downstream training under the cell's precision give finite
    scores; features extracted in bf16 are cache entries of their own."""
    from ssl_bench.cache import ArrayCache
    from ssl_bench.default_plugins.tasks.phase import PhaseRecognition
    from ssl_bench.default_plugins.tasks.segmentation import SemanticSegmentation
    from ssl_bench.default_plugins.tasks.tools import ToolPresence
    from ssl_bench.task_toolkit import feature_key
    from ssl_bench.testing import TinySegDataset, TinyVideoDataset, tiny_cell

    task_cls: Any = {"semantic-segmentation": SemanticSegmentation,
                     "phase-recognition": PhaseRecognition,
                     "tool-presence": ToolPresence}[task_id]
    dataset = TinySegDataset(".") if task_id == "semantic-segmentation" else TinyVideoDataset(".")
    cell = tiny_cell(tmp_path, dataset, protocol=protocol, cache=ArrayCache(tmp_path / "cache"),
                     benchmark_id="tiny-tools" if task_id == "tool-presence" else None)
    cell = dataclasses.replace(cell, precision="bf16")
    result = task_cls(task_cls.make_config("smoke")).evaluate(cell)
    main = task_cls.meta.main_score
    assert result.metrics[main] is not None and torch.isfinite(torch.tensor(result.metrics[main]))
    unit = cell.units["train"][0]
    fp32_cell = dataclasses.replace(cell, precision="fp32")
    assert feature_key(cell, "k", unit, "f") == feature_key(fp32_cell, "k", unit, "f") + "/bf16"


def test_a_bf16_run_records_its_precision_and_an_fp32_rerun_recomputes(
        testing_plugin: None, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``ssl-bench run --precision bf16`` pretrains on mmengine's Runner through the precision
    wrapper and writes the precision into the record, its identity and its environment; the
    same command in fp32 does not reuse those records, and says why."""
    from ssl_bench.records import iter_records
    from ssl_bench.testing import cli_exit_code

    results = tmp_path / "results"
    run = ["run", "--methods", "dummy", "--benchmarks", "tiny-seg", "--label-frac", "0.5",
           "--seeds", "0", "--profile", "smoke", "--device", "cpu", "--quiet",
           "--results", str(results)]
    assert cli_exit_code([*run, "--precision", "bf16"]) == 0
    records, warnings = iter_records(results)
    assert not warnings and len(records) == 1
    (record,) = records
    assert record.status == "ok", record.error
    assert record.precision == "bf16" and record.identity is not None
    assert record.identity.precision == "bf16"
    assert record.environment is not None and record.environment.precision == "bf16"
    capsys.readouterr()
    assert cli_exit_code([*run, "--precision", "fp32", "--dry-run"]) == 0
    assert "precision bf16 -> fp32" in capsys.readouterr().out


def test_prepare_module_channels_last_on_cuda_only_and_compile_in_place(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl_bench.precision import prepare_module

    def cnn() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))

    weight = prepare_module(cnn(), "cpu")[0].weight
    assert not weight.is_contiguous(memory_format=torch.channels_last)
    weight = prepare_module(cnn(), "cuda")[0].weight  # the layout only: no device is needed
    assert weight.is_contiguous(memory_format=torch.channels_last)
    compiled: list[str] = []
    monkeypatch.setattr(nn.Module, "compile",
                        lambda self, *a, **k: compiled.append(type(self).__name__))
    net = cnn()
    keys = list(net.state_dict())
    assert prepare_module(net, "cpu", compile=True) is net and list(net.state_dict()) == keys
    assert compiled == ["Conv2d", "Flatten", "Linear"]
